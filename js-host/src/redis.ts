/**
 * The node-redis transport: the connection's life (first connect within its budget, failing
 * fast on a refusal, background reconnection, close), every command's deadline and error
 * mapping, and the throttled connection-error log. Which client it drives (single, cluster,
 * Sentinel) is built by the modules named for them.
 */
import {
  ClientClosedError,
  ClientOfflineError,
  ConnectionTimeoutError,
  DisconnectsClientError,
  ErrorReply,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
  TimeoutError,
} from 'redis'

import { deadlines } from './deadlines'
import { describe } from './log'
import {
  MAX_RECONNECT_DELAY_MS,
  MAX_UNANSWERED_VALUE_BYTES,
  singleClient,
  type Client,
  type RedisTransportOptions,
} from './redis-client'
import { clusterClient } from './redis-cluster'
import {
  connectionError,
  isRefusal,
  isReset,
  isUnreachable,
  RefusedError,
  refusalCause,
  refusalOf,
} from './redis-errors'
import { sentinelClient } from './redis-sentinel'
import type { SendOptions, Transport } from './transport'
import {
  HeldBackError,
  RedisConnectionError,
  RedisReplyError,
  RedisTimeoutError,
  withDeadline,
} from './transport'

export type { RedisTransportOptions } from './redis-client'

/**
 * A command sent while the connection is down and node-redis makes it again: one wording,
 * whether the transport finds it so before sending (its first connect budget run out) or
 * node-redis refuses the command (`The client is offline`, within that budget).
 */
const NOT_CONNECTED = 'redis is not connected (reconnecting in the background)'

/**
 * What a failed command rejects with: node-redis's errors mapped to the transport's.
 * `notConnected`: the error for a command refused while the connection is made again (it names
 * what refused the last attempt, a login or a certificate, when something did). Exported for
 * test/command-errors.test.mjs.
 */
export function commandError(
  err: unknown,
  argv: readonly (string | Buffer)[],
  timeout: number,
  notConnected: () => Error = () => new RedisConnectionError(NOT_CONNECTED),
): Error {
  if (err instanceof ErrorReply) return new RedisReplyError(err.message)
  if (err instanceof ClientOfflineError) return notConnected()
  // The connection closed with the command sent and no reply: no connection either.
  if (err instanceof SocketClosedUnexpectedlyError) return new RedisConnectionError(err.message)
  // The client was closed (this transport's close(), a connection given up for a new one, a
  // Cluster client closing a node's): the command was not sent, or its reply is lost with the
  // connection. No connection, not a failure of Redis's.
  if (err instanceof ClientClosedError || err instanceof DisconnectsClientError) {
    return new RedisConnectionError(`redis connection closed: ${err.message}`)
  }
  // A connect that timed out (the TCP or TLS handshake got no answer in the connect budget):
  // the command was not sent, no connection; not a command that took too long.
  if (err instanceof ConnectionTimeoutError) {
    return new RedisConnectionError(`redis connect timed out: ${err.message}`)
  }
  // node-redis's socket timeout (not set by fleetcache, which times each command itself)
  // destroys the socket: the connection is lost, and node-redis makes it again.
  if (err instanceof SocketTimeoutError) {
    return new RedisConnectionError(`redis connection lost: ${err.message}`)
  }
  if (err instanceof TimeoutError) {
    return new RedisTimeoutError(`redis ${String(argv[0])} took longer than ${String(timeout)} ms`)
  }
  return err instanceof Error ? err : new Error(String(err))
}

/** Bytes of the `Buffer` arguments of `argv`: the values a command carries. */
function valueBytes(argv: readonly (string | Buffer)[]): number {
  let bytes = 0
  for (const a of argv) if (typeof a !== 'string') bytes += a.byteLength
  return bytes
}

/** Minimum time between two logged connection errors, in ms. */
const ERROR_LOG_INTERVAL_MS = 10_000

/**
 * Added to a connect timeout on a `rediss://` URL: a Redis without TLS takes the handshake for
 * the start of a command and never answers, so a scheme mismatch looks like a slow network.
 */
const TLS_TIMEOUT_HINT =
  ' (the URL is rediss://: does the server speak TLS? A Redis without TLS never answers the handshake)'

/**
 * Added to a reset before the first connection on a `redis://` URL: a Redis listening with TLS
 * only resets it, and the reset alone does not say why.
 */
const PLAIN_RESET_HINT =
  ' (the URL is redis://: does the server require TLS? A Redis with TLS only resets a connection that does not begin with the handshake: use rediss://)'

/**
 * How long a connection may stay open and answer nothing before it is given up, in ms: longer
 * than any command's budget, and than node-redis's longest wait between two connection errors
 * while it retries on its own (a pause of up to MAX_RECONNECT_DELAY_MS, then an attempt of up to
 * the connect budget), so that a connection it is still retrying is left to it.
 */
function hungAfter(commandTimeoutMs: number, connectTimeoutMs: number): number {
  return Math.max(commandTimeoutMs, connectTimeoutMs) + connectTimeoutMs + MAX_RECONNECT_DELAY_MS
}

/** The replies of a connection (or of all): how many so far, and since when it has been silent. */
interface Line {
  /** `host:port` of a Cluster node's connection; '' for all of the transport's. */
  readonly node: string
  /** Replies (values or error replies): a command that timed out with none since it was sent heard nothing. */
  answers: number
  /** When the oldest command that timed out with no reply since it was sent was sent, if one did since the last reply (performance.now()). */
  silentSince: number | undefined
  /**
   * Given up: the commands still counted on it were sent on a client since replaced, and
   * those timing out with the one that gave it up (one call of the deadline queue) tell
   * nothing of the new one.
   */
  given: boolean
  /** A Cluster node's: a new connection to the node is being tried (`Client.answersAnew`). */
  probing: boolean
}

function newLine(node = ''): Line {
  return { node, answers: 0, silentSince: undefined, given: false, probing: false }
}

/** Cluster nodes whose replies are counted apart, at most (the others start over). */
const MAX_NODE_LINES = 64

/**
 * node-redis transport: one client per process, connected on first use and reconnected in
 * the background forever. Commands issued while disconnected fail at once instead of
 * queueing (`disableOfflineQueue`), the queue of commands sent but unanswered is bounded
 * (a hung Redis), and every command carries a deadline after which it is abandoned. A
 * connection that stays open and answers nothing is given up and a new one made
 * ({@link RedisTransport.hungAfterMs}).
 */
export class RedisTransport implements Transport {
  readonly enforcesDeadlines = true
  /** The node-redis client in use: a new one replaces one given up (`recycle`). */
  private client: Client
  /**
   * Destroys every socket the client in use made (socketOptions): aborted when it is given up
   * or the transport closed, since a Sentinel client's own teardown leaves its sockets open
   * while a login waits (`recycle`).
   */
  private sockets = new AbortController()
  /** Reports a connection error of the client in use (made in the constructor). */
  private readonly onError: (err: unknown) => void
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
  /** What a connect timeout's log line adds: the TLS hint on a `rediss://` URL, else nothing. */
  private readonly timeoutHint: string
  /** What a reset before the first connection adds: the TLS hint on a `redis://` URL. */
  private readonly resetHint: string
  /** A connection was ready once: a reset since then is not the server's TLS. */
  private connectedOnce = false
  /**
   * What refused the last connection attempt (the login, a TLS certificate), since the last
   * connection that became usable: `message` for the errors of commands that find no
   * connection, `cause` for the warnings that would otherwise say Redis is unreachable
   * (`RedisConnectionError.refusal`).
   */
  private refused: { message: string; cause: string } | undefined
  /** Bytes of values in commands sent and not answered yet (MAX_UNANSWERED_VALUE_BYTES). */
  private unansweredBytes = 0
  /**
   * Commands whose callers still wait for them: sent, neither settled nor abandoned at their
   * budget. `close()` waits for their replies only: one abandoned has nobody to read it.
   */
  private awaited = 0
  /** Resolves `close()`'s wait once no command is awaited (`settledOne`). */
  private noneAwaited: (() => void) | undefined
  /** When the held-back line was last logged, and the writes held back since. */
  private lastHeldBackLog = Number.NEGATIVE_INFINITY
  private heldBack = 0
  /**
   * A connection that answers nothing for this long (ms) is given up and a new one made: no
   * reply to any command since one that timed out was sent that long ago, or not usable that
   * long after a connection attempt or node-redis's last connection error (a login never
   * answered). node-redis reconnects only once its socket fails, and a proxy or load balancer
   * that keeps the client's end of a connection whose other end is gone, or a route lost
   * without a reset, may never fail it (test/hung-connection.test.mjs).
   */
  private readonly hungAfterMs: number
  /**
   * The replies of every connection (one, but on a Cluster); on a Cluster, also those of each
   * node's apart (`Client.nodeOf`): one node's connection that answers nothing while the
   * others answer is silent too.
   */
  private line: Line = newLine()
  private nodes = new Map<string, Line>()
  /** When a connection attempt began or node-redis last reported a connection error (performance.now()). */
  private lastConnectEvent = 0
  /** A connection was given up (`recycle`) and Redis has answered nothing since. */
  private recycledUnanswered = false

  constructor(private readonly options: RedisTransportOptions) {
    this.hungAfterMs = hungAfter(
      Math.max(options.commandTimeoutMs, options.longestCommandMs ?? 0),
      options.connectTimeoutMs,
    )
    this.timeoutHint = /^rediss:/i.test(options.url) ? TLS_TIMEOUT_HINT : ''
    this.resetHint = /^redis:/i.test(options.url) ? PLAIN_RESET_HINT : ''
    this.oneAddress =
      (options.sentinels === undefined || options.sentinels.length === 0) &&
      options.cluster !== true
    // Without a listener node-redis would throw on 'error' and crash the server, and a
    // listener that throws stops reconnection (vercel/next.js#68221): this one cannot throw.
    // At most one line per 10 s, so an outage does not flood the logs.
    this.onError = (err: unknown): void => {
      // This transport's own destroy() (`recycle`, `close`): said already, or nothing to say.
      if (err instanceof DisconnectsClientError) return
      this.lastConnectEvent = performance.now()
      const resetHint = !this.connectedOnce && isReset(err) ? this.resetHint : ''
      const refusal = isRefusal(err) ? refusalOf(err) : undefined
      // What the line says first: the refusal in words, but for a sentinel's, whose message
      // says it already (redis-sentinel.ts).
      const what = refusal === undefined || err instanceof RefusedError ? '' : `${refusal.words}: `
      // The latest attempt's: a refusal, or another failure that replaces it.
      this.refused =
        refusal === undefined
          ? undefined
          : // Without the ACL hint: the caller's log line adds it (describe()).
            { message: `${what}${connectionError(err)}`, cause: refusalCause(refusal) }
      if (this.failConnect !== undefined && this.refused !== undefined) {
        // A connection failure for the breaker (not a reply error: Redis is not usable), so
        // the breaker opens and the log stays quiet until a probe logs in.
        this.failConnect(new RedisConnectionError(this.refused.message, this.refused.cause))
      } else if (this.failConnect !== undefined && this.oneAddress && isUnreachable(err)) {
        // Nothing listens there (or no route): the kernel said so at once, and waiting out
        // the connect budget would only delay the miss (docs/failures.md). node-redis keeps
        // reconnecting in the background, so a Redis that comes up later is used then.
        this.failConnect(new RedisConnectionError(`redis is unreachable: ${connectionError(err)}`))
      } else if (this.failConnect !== undefined && this.oneAddress && resetHint !== '') {
        // Reset before any reply: the scheme, most likely, which waiting does not change.
        this.failConnect(
          new RedisConnectionError(
            `redis reset the connection: ${connectionError(err)}${resetHint}`,
          ),
        )
      }
      try {
        const t = Date.now()
        if (t - this.lastErrorLog < ERROR_LOG_INTERVAL_MS) {
          this.suppressed += 1
          return
        }
        const more = this.suppressed > 0 ? ` (${String(this.suppressed)} similar suppressed)` : ''
        const hint =
          err instanceof ConnectionTimeoutError
            ? this.timeoutHint
            : refusal !== undefined
              ? `; see ${refusal.doc}`
              : resetHint
        this.lastErrorLog = t
        this.suppressed = 0
        options.log.error(
          `redis connection: ${what}${describe(new Error(connectionError(err)))}${hint}${more}; reconnecting in the background`,
        )
      } catch {
        // Logging itself failed (closed stderr, say): nothing better to do than go on.
      }
    }
    this.client = this.newClient(this.sockets.signal)
  }

  /**
   * A node-redis client for the options, whose sockets `sockets` destroys, and whose errors
   * are reported while it is the one in use and the transport open: one given up (`recycle`)
   * is left to its teardown and says nothing more.
   */
  private newClient(sockets: AbortSignal): Client {
    const options = this.options
    const client =
      options.sentinels !== undefined && options.sentinels.length > 0
        ? sentinelClient(options, options.sentinels, sockets)
        : options.cluster === true
          ? clusterClient(options, sockets)
          : singleClient(options, sockets)
    const onError = (err: unknown): void => {
      if (client === this.client && !this.closed) this.onError(err)
    }
    client.on('error', onError)
    // A cluster reports node connection errors as 'node-error', Sentinel as 'client-error'.
    client.on('node-error', onError)
    client.on('client-error', onError)
    return client
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
      this.lastConnectEvent = performance.now()
      // An error reply while connecting (WRONGPASS, NOPERM on HELLO) ends the wait at once;
      // node-redis itself keeps retrying in the background.
      let fail: ((err: Error) => void) | undefined
      const refused = new Promise<never>((_, reject) => {
        fail = reject
      })
      this.failConnect = fail
      const client = this.client
      const attempt = Promise.race([
        client.connect().then(() => {
          // A Sentinel client given up (`recycle`) ends its attempt without connecting.
          if (client !== this.client) return
          this.refused = undefined
          if (this.connectedOnce) return
          this.connectedOnce = true
          this.options.onFirstReady?.()
        }),
        refused,
      ])
      // An attempt given up for a new one (`recycle`) may settle after the new one began.
      attempt
        .catch(() => undefined)
        .finally(() => {
          if (this.failConnect === fail) this.failConnect = undefined
        })
      this.connecting = attempt
    }
    const remaining = this.connectDeadline - Date.now()
    if (this.connecting === undefined || remaining <= 0) {
      const unusable = performance.now() - this.lastConnectEvent
      if (unusable >= this.hungAfterMs) {
        this.recycle(
          `not usable ${String(Math.round(unusable))} ms after connecting (no answer to its login)`,
        )
      }
      return Promise.reject(this.notConnected())
    }
    // The message names the configured budget, not what was left of it for this command.
    return withDeadline(
      this.connecting,
      remaining,
      'redis connect',
      `redis connect took longer than ${String(this.options.connectTimeoutMs)} ms${this.timeoutHint}`,
    )
  }

  /**
   * A command whose budget began at `sentAt` (performance.now()) timed out on `line` (all of
   * the transport's, {@link RedisTransport.line}, or a Cluster node's); `heard`: that line had
   * a reply since it was sent. True when this call gave the client up: the transport's line
   * silent for `hungAfterMs` (on a Cluster, the whole client, every node's connection with
   * it). A Cluster node's line silent that long returns false: the client is given up later,
   * and only if the node answers a new connection (`Client.answersAnew`). A node that answers
   * nothing at all (paused, hung) would hold a new cluster client's connect() too, which
   * waits for every master, and the other masters' keys would miss with it.
   */
  private timedOut(line: Line, sentAt: number, heard: boolean): boolean {
    if (heard || line.given || line.probing) return false
    if (line.silentSince === undefined || sentAt < line.silentSince) line.silentSince = sentAt
    const silent = performance.now() - line.silentSince
    if (silent < this.hungAfterMs) return false
    if (line.node === '') {
      this.recycle(`no reply for ${String(Math.round(silent))} ms`)
      return true
    }
    const client = this.client
    if (client.answersAnew === undefined) return false
    line.probing = true
    client
      .answersAnew(line.node, this.options.connectTimeoutMs)
      .catch(() => false)
      .then((answers) => {
        line.probing = false
        // Answered since, given up or closed meanwhile: nothing to do.
        if (line.silentSince === undefined || line.given || client !== this.client) return
        if (!answers) {
          // The node itself answers nothing: asked again a silence later.
          line.silentSince = undefined
          return
        }
        const since = Math.round(performance.now() - line.silentSince)
        this.recycle(`no reply for ${String(since)} ms from ${line.node}`)
      })
      .catch(() => undefined)
    return false
  }

  /**
   * Gives up the connection (`why`, for the log line) and begins a new one: node-redis would
   * wait on it for as long as its socket lives. Its unanswered commands fail as disconnected;
   * those past their deadline already failed.
   */
  private recycle(why: string): void {
    if (this.closed) return
    this.line.given = true
    for (const node of this.nodes.values()) node.given = true
    this.line = newLine()
    this.nodes = new Map()
    // One line per outage: a Redis that stays paused leaves every new connection's login
    // unanswered too, and each is given up in turn.
    const line = `redis connection: ${why}, though still open; closing it and connecting anew`
    if (this.recycledUnanswered) this.options.log.debug(line)
    else this.options.log.warn(line)
    this.recycledUnanswered = true
    // A new client, not the old one connected again: node-redis's reconnection loop of a
    // connection given up while it waited for its login resumes once its client is open
    // again, beside the new attempt, and the connection it opens is never closed (four left
    // open after three logins given up: test/hung-connection.test.mjs); and a Sentinel
    // client's destroy() waits for its connection attempt, which a login never answered
    // never ends.
    const old = this.client
    const oldSockets = this.sockets
    this.sockets = new AbortController()
    this.client = this.newClient(this.sockets.signal)
    this.destroy(old, oldSockets)
    // Begun now, not by the next command: that one then finds it ready.
    this.ensureConnected().catch(() => undefined)
  }

  send(argv: readonly (string | Buffer)[], options?: SendOptions): Promise<unknown> {
    // Connected: the command is queued in this very call, before it returns (no await in
    // between), so work a caller queues after `send` runs after the command's write
    // (EarlyStream in streams.ts relies on it).
    if (this.client.isReady) return this.run(argv, options, options?.startedAt)
    // After a wait for the connection the budget counts from the command's sending.
    return this.ensureConnected().then(() => this.run(argv, options, undefined))
  }

  private run(
    argv: readonly (string | Buffer)[],
    options: SendOptions | undefined,
    startedAt: number | undefined,
  ): Promise<unknown> {
    // close() waits only for the commands awaited when it was called (node-redis refused new
    // ones from its graceful close on, which close() no longer calls).
    if (this.closed) return Promise.reject(new Error('redis transport is closed'))
    const timeout = options?.timeoutMs ?? this.options.commandTimeoutMs
    // One promise and one entry in the process's deadline queue per command (deadlines.ts: one
    // timer for all of them), settled straight from node-redis's reply: every layer of promises
    // between the reply and the read costs a microtask turn on each cache hit. node-redis's own
    // `timeout` option would add an AbortSignal.timeout per command, which cost ~15 % of a
    // cache hit's CPU (measured with --cpu-prof); a command
    // abandoned here stays in node-redis's bounded queue until Redis answers or the socket
    // closes, and the breaker stops new ones while Redis hangs.
    const bytes = valueBytes(argv)
    // No allocation per command for this: two lines at most, their counts in locals.
    const all = this.line
    const node = this.nodeLineOf(argv)
    const allAnswers = all.answers
    const nodeAnswers = node?.answers ?? 0
    return new Promise((resolve, reject) => {
      const deadline = deadlines.add(
        timeout,
        () => {
          this.settledOne()
          reject(
            new RedisTimeoutError(
              `redis ${String(argv[0])} took longer than ${String(timeout)} ms`,
            ),
          )
          // When its budget began: `timeout` ago (no clock is read per command for this).
          const sentAt = performance.now() - timeout
          // One give-up per timeout: the node's line is no longer the transport's after one.
          if (!this.timedOut(all, sentAt, all.answers !== allAnswers) && node !== undefined) {
            this.timedOut(node, sentAt, node.answers !== nodeAnswers)
          }
        },
        startedAt,
      )
      const failed = (err: unknown): void => {
        if (err instanceof ErrorReply) this.answered(all, node)
        if (deadlines.settle(deadline)) this.settledOne()
        reject(commandError(err, argv, timeout, this.notConnected))
      }
      this.awaited += 1
      let sent: Promise<unknown>
      try {
        sent = this.client.run(argv)
      } catch (err) {
        failed(err)
        return
      }
      if (bytes > 0) {
        // Held by node-redis until Redis answers or the socket closes, not until the deadline.
        this.unansweredBytes += bytes
        const answered = (): void => {
          this.unansweredBytes -= bytes
        }
        sent.then(answered, answered)
      }
      sent.then((reply) => {
        this.answered(all, node)
        if (deadlines.settle(deadline)) this.settledOne()
        resolve(reply)
      }, failed)
    })
  }

  /**
   * The error of a command refused while the connection is made again: naming what refused the
   * last attempt (the login, a TLS certificate), if something did.
   */
  private readonly notConnected = (): RedisConnectionError => {
    const refused = this.refused
    return refused === undefined
      ? new RedisConnectionError(NOT_CONNECTED)
      : new RedisConnectionError(`${NOT_CONNECTED}: ${refused.message}`, refused.cause)
  }

  /** A command awaited is no longer (settled, or abandoned at its budget). */
  private settledOne(): void {
    this.awaited -= 1
    if (this.awaited === 0) this.noneAwaited?.()
  }

  /** The line of the Cluster node `argv` goes to; undefined: one connection, or not known. */
  private nodeLineOf(argv: readonly (string | Buffer)[]): Line | undefined {
    const node = this.client.nodeOf?.(argv)
    if (node === undefined) return undefined
    let line = this.nodes.get(node)
    if (line === undefined) {
      // Addresses come and go with failovers: bounded, a command in flight keeps its own.
      if (this.nodes.size >= MAX_NODE_LINES) this.nodes.clear()
      line = newLine(node)
      this.nodes.set(node, line)
    }
    return line
  }

  /** Redis answered a command: its lines are not silent. */
  private answered(all: Line, node: Line | undefined): void {
    all.answers += 1
    all.silentSince = undefined
    if (node !== undefined) {
      node.answers += 1
      node.silentSince = undefined
    }
    this.recycledUnanswered = false
    this.refused = undefined
  }

  holdsBack(argv: readonly (string | Buffer)[]): HeldBackError | undefined {
    if (this.unansweredBytes === 0) return undefined
    const bytes = valueBytes(argv)
    if (bytes === 0 || this.unansweredBytes + bytes <= MAX_UNANSWERED_VALUE_BYTES) return undefined
    // One line per burst: a writer faster than Redis (or the link) meets the bound every write.
    const t = Date.now()
    if (t - this.lastHeldBackLog >= ERROR_LOG_INTERVAL_MS) {
      const more =
        this.heldBack > 0 ? ` (${String(this.heldBack)} more since the last such line)` : ''
      this.lastHeldBackLog = t
      this.heldBack = 0
      this.options.log.warn(
        `redis writes held back: ${String(this.unansweredBytes)} bytes of values already wait for Redis to answer on this connection (at most ${String(MAX_UNANSWERED_VALUE_BYTES)}); entries not stored${more}`,
      )
    } else {
      this.heldBack += 1
    }
    return new HeldBackError(
      `redis ${String(argv[0])} held back: ${String(this.unansweredBytes)} bytes of values already wait for Redis to answer on this connection`,
    )
  }

  /**
   * Stops `client` at once, and its sockets with it: a Sentinel client's destroy() first waits
   * for its connection attempt, which a login never answered never ends, and until then keeps
   * its sockets to the master and a sentinel open (test/sentinel.test.mjs). destroy() comes
   * first, so that its connection attempt, ended by the sockets' errors, makes no new one.
   */
  private destroy(client: Client, sockets: AbortController): void {
    try {
      // Not awaited; a Sentinel client's teardown that fails has nothing left to stop.
      Promise.resolve(client.destroy()).catch(() => undefined)
    } catch {
      // Already closed.
    }
    sockets.abort()
  }

  /** The close under way, or done: a second call waits for the first. */
  private closing: Promise<void> | undefined

  close(): Promise<void> {
    this.closing ??= this.closeNow()
    return this.closing
  }

  private async closeNow(): Promise<void> {
    this.closed = true
    if (!this.client.isOpen) {
      this.sockets.abort()
      return
    }
    // Waits for the replies still awaited (bounded, since a hung Redis never sends them), then
    // closes at once; with none, there is nothing to wait for: replies to commands abandoned at
    // their budget (an outage) have no reader, and waiting for them cost every close() during
    // an outage its 1 s. Counted here, not left to node-redis's graceful close: a cluster's
    // waits only for the commands in a node's queue, and a command between a MOVED or ASK
    // reply and its resend is in none (it failed with "Cluster closed";
    // test/cluster-close-redirect.test.mjs). New commands fail from the call on (`run`).
    // Whether the client is ready or not: a Sentinel client following a failover is not, and
    // sends a command it had sent to the old master again once the new one is connected
    // (test/sentinel-close-failover.test.mjs); a single client that lost its connection failed
    // its commands with it (no offline queue), so none is awaited there.
    if (this.awaited > 0) {
      let done: (() => void) | undefined
      const drained = new Promise<void>((resolve) => {
        done = resolve
      })
      this.noneAwaited = done
      try {
        await withDeadline(drained, 1000, 'redis close')
      } catch {
        // Still awaited at the bound: they fail as disconnected below.
      } finally {
        this.noneAwaited = undefined
      }
    }
    // Nothing awaited is left, or the bound is over: stop it at once (no graceful QUIT).
    this.destroy(this.client, this.sockets)
  }
}
