import {
  createClient,
  createCluster,
  createSentinel,
  ErrorReply,
  RESP_TYPES,
  TimeoutError,
} from 'redis'

import type { Logger } from './log'
import { describe } from './log'
import type { SendOptions, Transport } from './transport'
import { RedisReplyError, RedisTimeoutError, withDeadline } from './transport'

const BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer } as const

/** Commands waiting for replies on one connection before new ones fail at once. */
const MAX_QUEUED_COMMANDS = 1000

/** Longest pause between reconnection attempts, in ms. */
const MAX_RECONNECT_DELAY_MS = 2000

/** Minimum time between two logged connection errors, in ms. */
const ERROR_LOG_INTERVAL_MS = 10_000

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
  /** PEM CA certificate(s) trusted for `rediss://` (default: Node's bundled CAs). */
  tlsCa?: string | undefined
  /** Default command budget when the caller gives none, in ms. */
  commandTimeoutMs: number
  /** How long a command may wait for the first connection, in ms. */
  connectTimeoutMs: number
  log: Logger
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

/**
 * node-redis transport: one client per process, connected on first use and reconnected in
 * the background forever. Commands issued while disconnected fail at once instead of
 * queueing (`disableOfflineQueue`), the queue of commands sent but unanswered is bounded
 * (a hung Redis), and every command carries a deadline after which it is abandoned.
 */
export class RedisTransport implements Transport {
  readonly enforcesDeadlines = true
  private readonly client: Client
  private connecting: Promise<void> | undefined
  /** Fails the pending first connection at once (a refused login will not heal by waiting). */
  private failConnect: ((err: Error) => void) | undefined
  private connectDeadline = 0
  private lastErrorLog = 0
  private suppressed = 0
  private closed = false

  constructor(private readonly options: RedisTransportOptions) {
    this.client =
      options.sentinels !== undefined && options.sentinels.length > 0
        ? sentinelClient(options, options.sentinels)
        : options.cluster === true
          ? clusterClient(options)
          : singleClient(options)
    // Without a listener node-redis would throw on 'error' and crash the server, and a
    // listener that throws stops reconnection (vercel/next.js#68221): this one cannot throw.
    // At most one line per 10 s, so an outage does not flood the logs.
    const onError = (err: unknown): void => {
      if (this.failConnect !== undefined && isRefusal(err)) {
        // A connection failure for the breaker (not a reply error: Redis is not usable), so
        // the breaker opens and the log stays quiet until a probe logs in.
        this.failConnect(new Error(`redis refused the connection: ${describe(err)}`))
      }
      try {
        const t = Date.now()
        if (t - this.lastErrorLog < ERROR_LOG_INTERVAL_MS) {
          this.suppressed += 1
          return
        }
        const more = this.suppressed > 0 ? ` (${String(this.suppressed)} similar suppressed)` : ''
        this.lastErrorLog = t
        this.suppressed = 0
        options.log.error(
          `redis connection: ${describe(err)}${more}; reconnecting in the background`,
        )
      } catch {
        // Logging itself failed (closed stderr, say): nothing better to do than go on.
      }
    }
    this.client.on('error', onError)
    // A cluster reports node connection errors as 'node-error', Sentinel as 'client-error'.
    this.client.on('node-error', onError)
    this.client.on('client-error', onError)
  }

  /**
   * Resolves when a command can be sent. Only a connection attempt started by this call (the
   * first one, or one after the client was closed) is waited for, and only within the connect
   * budget; while node-redis reconnects in the background, commands fail at once. `connect()`
   * is only ever called on a client that is not open, so there is no "socket already opened".
   */
  private ensureConnected(): Promise<void> {
    if (this.client.isReady) return Promise.resolve()
    if (this.closed) return Promise.reject(new Error('redis transport is closed'))
    if (!this.client.isOpen) {
      this.connectDeadline = Date.now() + this.options.connectTimeoutMs
      // An error reply while connecting (WRONGPASS, NOPERM on HELLO) ends the wait at once;
      // node-redis itself keeps retrying in the background.
      const refused = new Promise<never>((_, reject) => {
        this.failConnect = reject
      })
      const attempt = Promise.race([this.client.connect().then(() => undefined), refused])
      attempt.catch(() => undefined).finally(() => (this.failConnect = undefined))
      this.connecting = attempt
    }
    const remaining = this.connectDeadline - Date.now()
    if (this.connecting === undefined || remaining <= 0) {
      return Promise.reject(new Error('redis is not connected (reconnecting in the background)'))
    }
    return withDeadline(this.connecting, remaining, 'redis connect')
  }

  async send(argv: readonly (string | Buffer)[], options?: SendOptions): Promise<unknown> {
    await this.ensureConnected()
    const timeout = options?.timeoutMs ?? this.options.commandTimeoutMs
    try {
      // One plain timer per command. node-redis's own `timeout` option would add an
      // AbortSignal.timeout per command, which cost ~15 % of a cache hit's CPU (measured with
      // --cpu-prof); a command abandoned here stays in node-redis's bounded queue until Redis
      // answers or the socket closes, and the breaker stops new ones while Redis hangs.
      return await withDeadline(this.client.run(argv), timeout, `redis ${String(argv[0])}`)
    } catch (err) {
      if (err instanceof ErrorReply) throw new RedisReplyError(err.message)
      if (err instanceof TimeoutError) {
        throw new RedisTimeoutError(
          `redis ${String(argv[0])} took longer than ${String(timeout)} ms`,
        )
      }
      throw err
    }
  }

  async close(): Promise<void> {
    this.closed = true
    if (!this.client.isOpen) return
    if (this.client.isReady) {
      // A graceful close waits for pending replies: bounded, since a hung Redis never sends them.
      try {
        await withDeadline(this.client.close(), 1000, 'redis close')
        return
      } catch {
        // fall through to destroy
      }
    }
    // A client that is (re)connecting or hung has nothing to flush; stop it at once.
    try {
      this.client.destroy()
    } catch {
      // Already closed.
    }
  }
}

/** What the transport needs from a node-redis client or cluster. */
interface Client {
  readonly isReady: boolean
  readonly isOpen: boolean
  connect(): Promise<unknown>
  close(): Promise<unknown>
  destroy(): unknown
  on(event: string, listener: (err: unknown) => void): unknown
  /** Sends one raw command; bulk replies as Buffers. */
  run(argv: readonly (string | Buffer)[]): Promise<unknown>
}

/** Socket settings shared by a single client and every node of a cluster. */
function socketOptions(options: RedisTransportOptions) {
  return {
    connectTimeout: options.connectTimeoutMs,
    reconnectStrategy: reconnectDelay,
    ...(options.tlsCa === undefined ? {} : { ca: options.tlsCa }),
  }
}

function singleClient(options: RedisTransportOptions): Client {
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
    // No per-command AbortSignal.timeout (node-redis's default is 5 s): send() bounds every
    // command with one plain timer instead (see there).
    commandOptions: { timeout: 0 },
    socket: socketOptions(options),
  })
  return {
    get isReady() {
      return client.isReady
    },
    get isOpen() {
      return client.isOpen
    },
    connect: () => client.connect(),
    close: () => client.close(),
    destroy: () => {
      client.destroy()
    },
    on: (event, listener) => client.on(event, listener),
    run: (argv) => client.sendCommand(argv, { typeMapping: BUFFERS }),
  }
}

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

function clusterClient(options: RedisTransportOptions): Client {
  // Discovered nodes get `defaults` only (nothing from the seed URLs): credentials and TLS go
  // there, taken from the first seed.
  const seed = new URL(options.url)
  const seeds = [options.url, ...(options.seeds ?? [])]
  const cluster = createCluster({
    rootNodes: seeds.map((url) => ({ url })),
    defaults: {
      ...(seed.username === '' ? {} : { username: decodeURIComponent(seed.username) }),
      ...(seed.password === '' ? {} : { password: decodeURIComponent(seed.password) }),
      disableOfflineQueue: true,
      commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
      socket: {
        ...socketOptions(options),
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

/**
 * Errors that waiting will not fix: an error reply during the handshake (WRONGPASS, NOPERM) or
 * a TLS certificate that is not trusted. A refused or silent TCP connection is not one of them:
 * Redis may be restarting.
 */
function isRefusal(err: unknown): boolean {
  if (err instanceof ErrorReply) return true
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)
}

function sentinelClient(options: RedisTransportOptions, sentinels: readonly string[]): Client {
  const u = new URL(options.url)
  const db = u.pathname.replace(/^\//, '')
  const sentinel = createSentinel({
    name: decodeURIComponent(u.hostname),
    sentinelRootNodes: sentinels.map((a) => {
      const colon = a.lastIndexOf(':')
      return { host: a.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(a.slice(colon + 1)) }
    }),
    nodeClientOptions: {
      ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
      ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
      ...(db === '' ? {} : { database: Number(db) }),
      disableOfflineQueue: true,
      commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
      socket: {
        ...socketOptions(options),
        ...(u.protocol === 'rediss:' ? { tls: true as const } : {}),
      },
    },
    sentinelClientOptions: { socket: { connectTimeout: options.connectTimeoutMs } },
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
    close: () => sentinel.close(),
    destroy: () => sentinel.destroy(),
    on: (event, listener) => sentinel.on(event, listener),
    // Everything goes to the master (no replica reads: a replica may lag a revalidation).
    run: (argv) =>
      sentinel.sendCommand(false, argv as (string | Buffer)[], {
        typeMapping: BUFFERS,
        timeout: 0,
      }),
  }
}
