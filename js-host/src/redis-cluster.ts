/** Redis Cluster: which node a command goes to, and the cluster client. */
import { createCluster } from 'redis'

import {
  BUFFERS,
  MAX_QUEUED_COMMANDS,
  socketOptions,
  type Client,
  type RedisTransportOptions,
} from './redis-client'

/** How often a cluster client re-reads the slot layout while a node is unreachable, in ms. */
const TOPOLOGY_REFRESH_MS = 1000

/**
 * The key a command routes by on a cluster: the first `KEYS` entry of a script, else the first
 * argument; none for key-less commands (`PING`), which go to any node.
 */
export function firstKey(argv: readonly (string | Buffer)[]): string | Buffer | undefined {
  const cmd = String(argv[0]).toUpperCase()
  if (cmd === 'EVALSHA' || cmd === 'EVAL' || cmd === 'EVALSHA_RO' || cmd === 'EVAL_RO') {
    return Number(String(argv[2])) > 0 ? argv[3] : undefined
  }
  if (cmd === 'PING' || cmd === 'SCRIPT' || cmd === 'INFO') return undefined
  return argv[1]
}

/** A cluster client; `sockets` ends every node's sockets (socketOptions). */
export function clusterClient(options: RedisTransportOptions, sockets: AbortSignal): Client {
  // Discovered nodes get `defaults` only (nothing from the seed URLs): credentials and TLS go
  // there, taken from the first seed.
  const seed = new URL(options.url)
  const seeds = [options.url, ...(options.seeds ?? [])]
  const cluster = createCluster({
    rootNodes: seeds.map((url) => ({ url })),
    // While a node cannot be reached, ask the cluster for its layout every second (node-redis
    // waits 5 s): a promoted replica then takes over this client's commands about 1 s after the
    // promotion, not 5 (tests/e2e/cluster-failover.test.mjs measures it).
    topologyRefreshOnReconnectionAttemptStrategy: TOPOLOGY_REFRESH_MS,
    defaults: {
      ...(seed.username === '' ? {} : { username: decodeURIComponent(seed.username) }),
      ...(seed.password === '' ? {} : { password: decodeURIComponent(seed.password) }),
      disableOfflineQueue: true,
      commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
      disableClientInfo: true,
      maintNotifications: 'disabled',
      socket: {
        ...socketOptions(options, sockets),
        ...(seed.protocol === 'rediss:' ? { tls: true as const } : {}),
      },
    },
    commandOptions: { timeout: 0 },
  })
  return {
    get isReady() {
      return cluster.isReady
    },
    get isOpen() {
      return cluster.isOpen
    },
    connect: () => cluster.connect(),
    close: () => cluster.close(),
    destroy: () => {
      cluster.destroy()
    },
    on: (event, listener) => cluster.on(event, listener),
    // Writes and reads alike go to the slot's master (no replica reads: a replica may lag a
    // revalidation).
    run: (argv) =>
      cluster.sendCommand(firstKey(argv), false, argv as (string | Buffer)[], {
        typeMapping: BUFFERS,
        timeout: 0,
      }),
  }
}
