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
/** How often a cluster client re-reads the slot layout while a node is unreachable, in ms. */
const TOPOLOGY_REFRESH_MS = 1000

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
  /**
   * One address to connect to (neither Cluster nor Sentinel): a refused or unroutable
   * connection to it ends the wait for the first connection at once. With several seeds or
   * sentinels, one dead address does not mean the others are.
   */
  private readonly oneAddress: boolean

  constructor(private readonly options: RedisTransportOptions) {
    this.client =
      options.sentinels !== undefined && options.sentinels.length > 0
        ? sentinelClient(options, options.sentinels)
        : options.cluster === true
          ? clusterClient(options)
          : singleClient(options)
    this.oneAddress =
      (options.sentinels === undefined || options.sentinels.length === 0) &&
      options.cluster !== true
    // Without a listener node-redis would throw on 'error' and crash the server, and a
    // listener that throws stops reconnection (vercel/next.js#68221): this one cannot throw.
    // At most one line per 10 s, so an outage does not flood the logs.
    const onError = (err: unknown): void => {
      if (this.failConnect !== undefined && isRefusal(err)) {
        // A connection failure for the breaker (not a reply error: Redis is not usable), so
        // the breaker opens and the log stays quiet until a probe logs in.
        // Without the ACL hint: the caller's log line adds it (describe()).
        this.failConnect(new Error(`redis refused the connection: ${connectionError(err)}`))
      } else if (this.failConnect !== undefined && this.oneAddress && isUnreachable(err)) {
        // Nothing listens there (or no route): the kernel said so at once, and waiting out
        // the connect budget would only delay the miss (docs/failures.md). node-redis keeps
        // reconnecting in the background, so a Redis that comes up later is used then.
        this.failConnect(new Error(`redis is unreachable: ${connectionError(err)}`))
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
          `redis connection: ${describe(new Error(connectionError(err)))}${more}; reconnecting in the background`,
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

  send(argv: readonly (string | Buffer)[], options?: SendOptions): Promise<unknown> {
    // Connected: the command is queued in this very call, before it returns (no await in
    // between), so work a caller queues after `send` runs after the command's write
    // (EarlyStream in streams.ts relies on it).
    if (this.client.isReady) return this.run(argv, options)
    return this.ensureConnected().then(() => this.run(argv, options))
  }

  private async run(argv: readonly (string | Buffer)[], options?: SendOptions): Promise<unknown> {
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
    ...(options.tlsCert === undefined ? {} : { cert: options.tlsCert }),
    ...(options.tlsKey === undefined ? {} : { key: options.tlsKey }),
  }
}

function singleClient(options: RedisTransportOptions): Client {
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
    // No CLIENT SETINFO in the handshake (here, on cluster nodes and behind Sentinel): Redis
    // 7.2+ and Valkey deny it to the least-privilege user of docs/operating.md and fill ACL LOG
    // with one denial per connection, and `+client|setinfo` cannot join that line (Redis 7.0
    // rejects it).
    disableClientInfo: true,
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
 * A failure that waiting will not fix, found by fleetcache rather than as Redis's reply (a
 * sentinel's refused login), its message already written for the log.
 */
class RefusedError extends Error {}

/**
 * Errors that waiting will not fix: an error reply during the handshake (WRONGPASS, NOPERM) or
 * a TLS certificate that is not trusted or not presented. A refused or silent TCP connection is
 * not one of them: Redis may be restarting.
 */
function isRefusal(err: unknown): boolean {
  if (err instanceof ErrorReply || err instanceof RefusedError) return true
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)
}

/** Socket errors the kernel reports at once and a wait for the same address does not change. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND'])

/**
 * A connection attempt that failed at once: refused (nothing listens on the port), no route, or
 * a host name that does not resolve. Node reports a dual-stack attempt (`localhost`) as an
 * AggregateError whose own code is the first address's.
 */
function isUnreachable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string') return UNREACHABLE.has(code)
  const inner = (err as { errors?: unknown } | null)?.errors
  return (
    Array.isArray(inner) &&
    inner.length > 0 &&
    inner.every((e: unknown) => {
      const c = (e as { code?: unknown } | null)?.code
      return typeof c === 'string' && UNREACHABLE.has(c)
    })
  )
}

/** What to do about a TLS error, from Node's / OpenSSL's code. */
function tlsHint(code: string): string {
  if (code.includes('CERTIFICATE_REQUIRED')) {
    return ' (the server requires a TLS client certificate: set FLEETCACHE_REDIS_CERT_FILE and FLEETCACHE_REDIS_KEY_FILE)'
  }
  if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|DECRYPT_ERROR)/.test(code)) {
    return " (the server did not accept the client certificate: it must be signed by a CA in the server's tls-ca-cert-file)"
  }
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED/.test(code)) {
    return " (the server's certificate is not signed by a CA Node trusts: set FLEETCACHE_REDIS_CA_FILE)"
  }
  return ''
}

/**
 * A connection error as one log line, without the ACL hint (`describe` adds it): OpenSSL's
 * multi-line `…:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:…` becomes its
 * reason, and TLS errors say which setting fixes them.
 */
export function connectionError(err: unknown): string {
  if (!(err instanceof Error)) return oneLine(String(err))
  const code = (err as Error & { code?: unknown }).code
  const reason = /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1]
  const message = oneLine(reason ?? err.message)
  if (typeof code !== 'string') return message
  return `${code}: ${message}${tlsHint(code)}`
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

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

function sentinelClient(options: RedisTransportOptions, sentinels: readonly string[]): Client {
  const u = new URL(options.url)
  const db = u.pathname.replace(/^\//, '')
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
      socket: {
        ...socketOptions(options),
        ...(u.protocol === 'rediss:' ? { tls: true as const } : {}),
      },
    },
    sentinelClientOptions: {
      // The sentinels' ACL user is least-privilege too (docs/operating.md).
      disableClientInfo: true,
      ...(options.sentinelUsername === undefined ? {} : { username: options.sentinelUsername }),
      ...(options.sentinelPassword === undefined ? {} : { password: options.sentinelPassword }),
      socket: { connectTimeout: options.connectTimeoutMs },
    },
    commandOptions: { timeout: 0 },
  })
  const errorListeners: ((err: unknown) => void)[] = []
  // node-redis retries a master login that Redis refuses (WRONGPASS, NOAUTH) inside its
  // connect loop and reports it nowhere but to its tracer, so the refusal is taken from there:
  // a wrong master password then fails at once, with a log line, like on a plain client.
  const tracer = {
    push: (...messages: string[]): number => {
      for (const m of messages) {
        const reply = /^#connect: exception ((?:WRONGPASS|NOAUTH|NOPERM)\b.*)$/s.exec(m)?.[1]
        if (reply === undefined) continue
        // The sentinels accepted the login already (they were asked for the master), so a
        // refused login is the master's; a refused subscription or SENTINEL command is theirs.
        const err = /'(p?subscribe|sentinel\b[^']*)'/i.test(reply)
          ? sentinelError(new ErrorReply(reply))
          : new ErrorReply(`master: ${reply}`)
        for (const l of errorListeners) l(err)
      }
      return 0
    },
  }
  sentinel.setTracer(tracer as unknown as string[])
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
    on: (event, listener) => {
      if (event === 'error') {
        errorListeners.push(listener)
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
