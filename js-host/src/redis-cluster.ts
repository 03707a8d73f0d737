/** Redis Cluster: which node a command goes to, and the cluster client. */
import { createClient, createCluster } from 'redis'

import {
  BUFFERS,
  DerivedSignals,
  forgetClosedSockets,
  MAX_QUEUED_COMMANDS,
  reconnectDelay,
  socketOptions,
  type Client,
  type RedisTransportOptions,
} from './redis-client'
import { withDeadline } from './transport'

/** CRC16 (XMODEM) of every byte value: a slot is computed per command (`nodeOf`). */
const CRC16 = Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 8
  for (let i = 0; i < 8; i++)
    crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  return crc
})

/** The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag, else of all of it. */
export function keySlot(key: string | Buffer): number {
  let bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
  const open = bytes.indexOf(0x7b)
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1)
    if (close > open + 1) bytes = bytes.subarray(open + 1, close)
  }
  let crc = 0
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16[((crc >> 8) ^ byte) & 0xff] ?? 0)
  return crc % 16384
}

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

/**
 * Socket options for the clients node-redis makes of a cluster, each with a signal of its own
 * derived from `sockets` (DerivedSignals): aborting `sockets` still ends every socket, connecting
 * ones included, and a closed socket's listener, which Node leaves on its signal (20.20 and 24.22,
 * measured), is held by that client's signal alone, not by the one all node clients share.
 *
 * node-redis copies (spreads) a client's socket options once, when it makes the client, so the
 * `signal` getter runs once a client and gives each its own. That holds because the cluster has
 * no `defaults.socket`: node-redis then hands these objects to the client as they are (cluster-
 * slots.js #clientOptionsDefaults), where it would otherwise spread them with the defaults and
 * keep one signal for every client made from the copy. A topology read started from a node
 * client (a MOVED reply) reuses that client's options object: it gets a signal of its own from
 * the getter, never the node client's.
 *
 * `own`: the options of one node client (nodeAddressMap), whose first signal is its own, and
 * which it reconnects with. Its reconnection strategy takes the listeners off that signal before
 * each new attempt, when every socket it made has ended (forgetClosedSockets); a client made for
 * a topology read never calls it (node-redis sets no reconnection for those), and its signal is
 * collected with it.
 */
function derivedSocketOptions<Place extends object>(
  options: RedisTransportOptions,
  sockets: AbortSignal,
  derived: DerivedSignals,
  own: boolean,
  place: Place,
) {
  let first: AbortSignal | undefined
  return {
    ...socketOptions(options),
    ...place,
    get signal(): AbortSignal {
      const signal = derived.make()
      if (own) first ??= signal
      return signal
    },
    reconnectStrategy: (retries: number): number | false => {
      if (sockets.aborted) return false
      if (first !== undefined) forgetClosedSockets(first)
      return reconnectDelay(retries)
    },
  }
}

/** A cluster client; `sockets` ends every node's sockets (socketOptions, derivedSocketOptions). */
export function clusterClient(options: RedisTransportOptions, sockets: AbortSignal): Client {
  // Discovered nodes get `defaults` and nodeAddressMap's options only (nothing from the seed
  // URLs): credentials and TLS go there, taken from the first seed.
  const seed = new URL(options.url)
  const seeds = [options.url, ...(options.seeds ?? [])]
  const login = {
    ...(seed.username === '' ? {} : { username: decodeURIComponent(seed.username) }),
    ...(seed.password === '' ? {} : { password: decodeURIComponent(seed.password) }),
    disableOfflineQueue: true,
    disableClientInfo: true,
    maintNotifications: 'disabled' as const,
  }
  const tls = seed.protocol === 'rediss:' ? { tls: true as const } : {}
  const derived = new DerivedSignals(sockets)
  const cluster = createCluster({
    // A seed's URL sets its host, port and TLS.
    rootNodes: seeds.map((url) => ({
      url,
      socket: derivedSocketOptions(options, sockets, derived, false, {}),
    })),
    // Called for every client node-redis makes of a known node: its own object each time.
    nodeAddressMap: (address: string) => {
      const colon = address.lastIndexOf(':')
      return derivedSocketOptions(options, sockets, derived, true, {
        host: address.slice(0, colon),
        port: Number(address.slice(colon + 1)),
        ...tls,
      })
    },
    // While a node cannot be reached, ask the cluster for its layout every second (node-redis
    // waits 5 s): a promoted replica then takes over this client's commands about 1 s after the
    // promotion, not 5 (tests/e2e/cluster-failover.test.mjs measures it).
    topologyRefreshOnReconnectionAttemptStrategy: TOPOLOGY_REFRESH_MS,
    // No `socket` here: see derivedSocketOptions.
    defaults: {
      ...login,
      commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
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
    // The master of the key's slot in the layout known now; a key-less command goes to any
    // node (undefined), and one redirected (MOVED, ASK) is answered by another than this.
    nodeOf: (argv) => {
      const key = firstKey(argv)
      return key === undefined ? undefined : cluster.slots[keySlot(key)]?.master.address
    },
    // A connection of its own, logged in as the cluster's, that PINGs once: no reconnection,
    // destroyed at the deadline, and with the client's sockets when it is given up or closed.
    answersAnew: async (node, timeoutMs) => {
      const colon = node.lastIndexOf(':')
      const own = new AbortController()
      const probe = createClient({
        ...login,
        socket: {
          ...socketOptions(options, AbortSignal.any([sockets, own.signal])),
          ...tls,
          host: node.slice(0, colon),
          port: Number(node.slice(colon + 1)),
          connectTimeout: timeoutMs,
          reconnectStrategy: false,
        },
      })
      probe.on('error', () => undefined)
      try {
        const pong = withDeadline(
          probe.connect().then((c) => c.ping()),
          timeoutMs,
          'redis probe of a silent node',
        )
        return (await pong) === 'PONG'
      } catch {
        return false
      } finally {
        try {
          probe.destroy()
        } catch {
          // Never opened.
        }
        own.abort()
      }
    },
  }
}
