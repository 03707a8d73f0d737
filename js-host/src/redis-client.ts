/**
 * One node-redis client as the transport uses it, and the connection policy every client
 * shares (single, cluster node, Sentinel master): no offline queue, a bounded command queue,
 * reconnection forever with backoff, no per-command AbortSignal, replies as Buffers.
 */
import { getEventListeners } from 'node:events'

import { createClient, RESP_TYPES } from 'redis'

import type { Logger } from './log'

/** node-redis reply type mapping: bulk strings as Buffers (entries are binary). */
export const BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer } as const

/** Commands waiting for replies on one connection before new ones fail at once. */
export const MAX_QUEUED_COMMANDS = 1000

/**
 * Bytes of values (the `Buffer` arguments: entries being written) one connection may hold in
 * commands Redis has not answered before a new command with a value fails at once. node-redis
 * keeps a command's arguments until its reply comes or the socket closes, a command the
 * transport gave up on at its deadline included; while Redis hangs (paused, a long fork, a
 * saturated link) writes of up to `maxEntryBytes` each would otherwise pile up to
 * MAX_QUEUED_COMMANDS of them (before this bound, 200 writes of 1 MiB held 210 MB until Redis
 * answered: test/unanswered-values-memory.test.mjs). A command alone on the connection is
 * never refused, whatever its size.
 */
export const MAX_UNANSWERED_VALUE_BYTES = 64 * 1024 * 1024

/** Longest pause between reconnection attempts, in ms. */
export const MAX_RECONNECT_DELAY_MS = 2000

export interface RedisTransportOptions {
  url: string
  /**
   * Redis Cluster: `url` and these are seeds for topology discovery (node-redis `createCluster`),
   * and every command goes to the master of its first key's slot.
   */
  cluster?: boolean | undefined
  /** More cluster seeds besides `url`. */
  seeds?: readonly string[] | undefined
  /**
   * Redis Sentinel: `host:port` of the sentinels; `url`'s host is the master's name, its user,
   * password, database and scheme apply to the master.
   */
  sentinels?: readonly string[] | undefined
  /** Credentials of the sentinels themselves (the master's are in `url`). */
  sentinelUsername?: string | undefined
  sentinelPassword?: string | undefined
  /** PEM CA certificate(s) trusted for `rediss://` (default: Node's bundled CAs). */
  tlsCa?: string | undefined
  /** PEM client certificate and its key for `rediss://` (both or neither). */
  tlsCert?: string | undefined
  tlsKey?: string | undefined
  /** Default command budget when the caller gives none, in ms. */
  commandTimeoutMs: number
  /** How long a command may wait for the first connection, in ms. */
  connectTimeoutMs: number
  /**
   * The longest budget a command is sent with, in ms (`commandTimeoutMs` when not given): a
   * connection is given up only once it has answered nothing for longer than that, so no
   * command still within its budget is cut off by it (RedisTransport `hungAfterMs`).
   */
  longestCommandMs?: number | undefined
  log: Logger
  /** Called once, when the first connection is ready (nothing connects before a command). */
  onFirstReady?: (() => void) | undefined
}

/**
 * Reconnection delay: exponential from 50 ms to 2 s, with jitter so a fleet that lost Redis
 * at the same instant does not reconnect in lockstep. It never gives up: Redis restarts,
 * failovers and `CLIENT KILL` must heal by themselves.
 */
export function reconnectDelay(retries: number): number {
  const base = Math.min(50 * 2 ** Math.min(retries, 6), MAX_RECONNECT_DELAY_MS)
  return Math.round(base / 2 + Math.random() * (base / 2))
}

/** What the transport needs from a node-redis client or cluster. */
export interface Client {
  readonly isReady: boolean
  readonly isOpen: boolean
  connect(): Promise<unknown>
  destroy(): unknown
  on(event: string, listener: (err: unknown) => void): unknown
  /** Sends one raw command; bulk replies as Buffers. */
  run(argv: readonly (string | Buffer)[]): Promise<unknown>
  /**
   * The node (`host:port`) `argv` goes to, for a client with a connection per node (Cluster);
   * absent where every command shares one connection. Undefined: not known.
   */
  nodeOf?(argv: readonly (string | Buffer)[]): string | undefined
  /**
   * Whether `node` (`host:port`, as `nodeOf` names it) answers a new connection within
   * `timeoutMs`: a login and a PING. For a client whose connection to one node may be silent
   * while the node answers (Cluster).
   */
  answersAnew?(node: string, timeoutMs: number): Promise<boolean>
}

/**
 * Socket settings shared by a single client and every node of a cluster. With `sockets`, every
 * socket the client makes is destroyed when it is aborted (Node's `signal` option of a socket),
 * and the client stops reconnecting then: a socket made with an already aborted signal still
 * connects (Node 20, measured), until node-redis's connect timeout ends it. A client that
 * reconnects with it gathers the listeners of its closed sockets: see forgetClosedSockets (a
 * cluster's clients each get a signal derived from it instead: redis-cluster.ts).
 */
export function socketOptions(options: RedisTransportOptions, sockets?: AbortSignal) {
  return {
    connectTimeout: options.connectTimeoutMs,
    reconnectStrategy:
      sockets === undefined
        ? reconnectDelay
        : (retries: number) => (sockets.aborted ? false : reconnectDelay(retries)),
    ...(sockets === undefined ? {} : { signal: sockets }),
    ...(options.tlsCa === undefined ? {} : { ca: options.tlsCa }),
    ...(options.tlsCert === undefined ? {} : { cert: options.tlsCert }),
    ...(options.tlsKey === undefined ? {} : { key: options.tlsKey }),
  }
}

/**
 * Takes off `sockets` the abort listeners of sockets that have closed, for a signal that one
 * node-redis client alone carries, once it emits 'reconnecting': then every socket it made has
 * ended, and it makes the next one after that event. Node (20.20 and 24.22, measured) leaves a
 * socket's listener on its signal after the socket closed, holding that socket, so a client that
 * keeps one signal for its life gathered one a reconnection for as long as Redis stayed away.
 */
export function forgetClosedSockets(sockets: AbortSignal): void {
  for (const listener of getEventListeners(sockets, 'abort'))
    sockets.removeEventListener('abort', listener as EventListener)
}

/**
 * Signals derived from `sockets`, each aborted when it is, held weakly: a derived signal that no
 * socket's options hold any longer is collected with the listeners its closed sockets left on it.
 * AbortSignal.any would keep such a signal, and those sockets, for as long as `sockets` is not
 * aborted: Node holds a composite signal that has an abort listener (Node 20.20, measured: one
 * per topology read of a cluster with a master down, every second).
 */
export class DerivedSignals {
  readonly #sockets: AbortSignal
  readonly #derived = new Set<WeakRef<AbortSignal>>()
  readonly #controllers = new WeakMap<AbortSignal, AbortController>()

  constructor(sockets: AbortSignal) {
    this.#sockets = sockets
    sockets.addEventListener(
      'abort',
      () => {
        for (const ref of this.#derived) {
          const signal = ref.deref()
          if (signal !== undefined) this.#controllers.get(signal)?.abort()
        }
        this.#derived.clear()
      },
      { once: true },
    )
  }

  make(): AbortSignal {
    const controller = new AbortController()
    if (this.#sockets.aborted) {
      controller.abort()
      return controller.signal
    }
    for (const ref of this.#derived) if (ref.deref() === undefined) this.#derived.delete(ref)
    this.#controllers.set(controller.signal, controller)
    this.#derived.add(new WeakRef(controller.signal))
    return controller.signal
  }
}

/**
 * Socket options that give every client node-redis makes by spreading them (a Sentinel client's
 * master, replica and sentinel clients: sentinel/index.js #createClient, pub-sub-proxy.js) a
 * signal of its own from `derived`, and a reconnection strategy that takes the listeners of its
 * closed sockets off that signal before each new attempt (forgetClosedSockets): the spread reads
 * `signal`, then `reconnectStrategy` (the order of an object's own properties, which is why the
 * strategy is no property of the base options), and the strategy's getter takes the signal the
 * same spread made. A strategy read alone gets none and takes nothing off.
 */
export function perClientSocketOptions<Place extends object>(
  options: RedisTransportOptions,
  sockets: AbortSignal,
  derived: DerivedSignals,
  place: Place,
) {
  const base: Partial<ReturnType<typeof socketOptions>> = socketOptions(options)
  delete base.reconnectStrategy
  let made: AbortSignal | undefined
  return {
    ...base,
    ...place,
    get signal(): AbortSignal {
      made = derived.make()
      return made
    },
    get reconnectStrategy(): (retries: number) => number | false {
      const mine = made
      made = undefined
      return (retries) => {
        if (sockets.aborted) return false
        if (mine !== undefined) forgetClosedSockets(mine)
        return reconnectDelay(retries)
      }
    },
  }
}

/** A client of `options.url`; `sockets`: see socketOptions, and none but this client's. */
export function singleClient(options: RedisTransportOptions, sockets: AbortSignal): Client {
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
    // No CLIENT SETINFO in the handshake (here, on cluster nodes and behind Sentinel): Redis
    // 7.2+ and Valkey deny it to the least-privilege user of docs/operating.md and fill ACL LOG
    // with one denial per connection, and `+client|setinfo` cannot join that line (Redis 7.0
    // rejects it).
    disableClientInfo: true,
    // Nor node-redis's default `CLIENT MAINT_NOTIFICATIONS` (RESP3, Redis Enterprise's
    // maintenance events): an unknown subcommand before Redis 8, one error reply per connection,
    // and outside the ACL line where Redis knows it; fleetcache would not act on the events.
    maintNotifications: 'disabled',
    // No per-command AbortSignal.timeout (node-redis's default is 5 s): send() bounds every
    // command with an entry in the process's deadline queue instead (see there).
    commandOptions: { timeout: 0 },
    socket: socketOptions(options, sockets),
  })
  client.on('reconnecting', () => {
    forgetClosedSockets(sockets)
  })
  return {
    get isReady() {
      return client.isReady
    },
    get isOpen() {
      return client.isOpen
    },
    connect: () => client.connect(),
    destroy: () => {
      client.destroy()
    },
    on: (event, listener) => client.on(event, listener),
    run: (argv) => client.sendCommand(argv, { typeMapping: BUFFERS }),
  }
}
