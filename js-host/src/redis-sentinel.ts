/** Redis Sentinel: the client of a monitored master, and its errors as the transport reports them. */
import { createSentinel, ErrorReply } from 'redis'

import {
  BUFFERS,
  DerivedSignals,
  MAX_QUEUED_COMMANDS,
  perClientSocketOptions,
  type Client,
  type RedisTransportOptions,
} from './redis-client'
import { RefusedError } from './redis-errors'

/** The address of a node-redis `client-error` event, and the error in it. */
interface ClientErrorEvent {
  type?: unknown
  node?: { host?: unknown; port?: unknown }
  error?: unknown
}

/**
 * A Sentinel client's errors for the transport: a sentinel's refused login says which setting
 * fixes it, and errors of the master's connections say where they come from.
 */
export function sentinelError(err: unknown): unknown {
  if (err instanceof ErrorReply) {
    if (err.message.startsWith('NOAUTH')) {
      return new RefusedError(
        'a sentinel requires a password and none was given: set FLEETCACHE_SENTINEL_PASSWORD (option sentinelPassword)',
      )
    }
    if (err.message.startsWith('WRONGPASS')) {
      return new RefusedError(
        'a sentinel refused the user name or password: check FLEETCACHE_SENTINEL_USERNAME and FLEETCACHE_SENTINEL_PASSWORD',
      )
    }
    return new ErrorReply(`sentinel: ${err.message}`)
  }
  const event = err as ClientErrorEvent | null
  if (event !== null && typeof event === 'object' && 'error' in event) {
    const where = `${String(event.type).toLowerCase()} ${String(event.node?.host)}:${String(event.node?.port)}`
    if (event.type === 'SENTINEL') return sentinelError(event.error)
    if (event.error instanceof ErrorReply) return new ErrorReply(`${where}: ${event.error.message}`)
    if (event.error instanceof Error) {
      const code = (event.error as Error & { code?: unknown }).code
      return Object.assign(new Error(`${where}: ${event.error.message}`), { code })
    }
  }
  return err
}

/** `host:port` (or `[v6]:port`) of a sentinel as node-redis takes it. */
export function sentinelNode(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':')
  return {
    host: address.slice(0, colon).replace(/^\[|\]$/g, ''),
    port: Number(address.slice(colon + 1)),
  }
}

/**
 * A Sentinel client; `sockets` ends the sockets of the master's clients and of the sentinels'
 * (socketOptions; each client has a signal of its own derived from it, perClientSocketOptions):
 * its destroy() waits for its connection attempt, which a login never answered never ends, so
 * that is what closes them then.
 */
export function sentinelClient(
  options: RedisTransportOptions,
  sentinels: readonly string[],
  sockets: AbortSignal,
): Client {
  const u = new URL(options.url)
  const db = u.pathname.replace(/^\//, '')
  const derived = new DerivedSignals(sockets)
  const sentinel = createSentinel({
    name: decodeURIComponent(u.hostname),
    sentinelRootNodes: sentinels.map(sentinelNode),
    nodeClientOptions: {
      ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
      ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
      ...(db === '' ? {} : { database: Number(db) }),
      disableOfflineQueue: true,
      commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
      disableClientInfo: true,
      maintNotifications: 'disabled',
      // Each client its own signal, derived from `sockets` (perClientSocketOptions).
      socket: perClientSocketOptions(
        options,
        sockets,
        derived,
        u.protocol === 'rediss:' ? { tls: true as const } : {},
      ),
    },
    sentinelClientOptions: {
      // The sentinels' ACL user is least-privilege too (docs/operating.md).
      disableClientInfo: true,
      maintNotifications: 'disabled',
      ...(options.sentinelUsername === undefined ? {} : { username: options.sentinelUsername }),
      ...(options.sentinelPassword === undefined ? {} : { password: options.sentinelPassword }),
      // node-redis reconnects no sentinel client (it asks the next sentinel instead).
      // Each its own signal, derived from `sockets`: a sentinel client's goes with it.
      socket: {
        connectTimeout: options.connectTimeoutMs,
        get signal(): AbortSignal {
          return derived.make()
        },
      },
    },
    commandOptions: { timeout: 0 },
  })
  return {
    get isReady() {
      return sentinel.isReady
    },
    get isOpen() {
      return sentinel.isOpen
    },
    connect: () => sentinel.connect(),
    destroy: () => sentinel.destroy(),
    on: (event, listener) => {
      if (event === 'error') {
        sentinel.on('error', (err: unknown) => {
          // A failed sentinel connection is reported twice: as text ("obseve client error:
          // ..."), then as the error itself. The second one is enough.
          if (typeof err !== 'string') listener(sentinelError(err))
        })
      } else {
        sentinel.on(event, (err: unknown) => {
          listener(sentinelError(err))
        })
      }
    },
    // Everything goes to the master (no replica reads: a replica may lag a revalidation).
    run: (argv) =>
      sentinel.sendCommand(false, argv as (string | Buffer)[], {
        typeMapping: BUFFERS,
        timeout: 0,
      }),
  }
}
