import { deadlines } from './deadlines'
import { RedisTimeoutError, type HeldBackError } from './transport-errors'

// Defined in a Node-free module the worker bundle compiles too; exported from here as before.
export {
  CircuitOpenError,
  HeldBackError,
  RedisConnectionError,
  RedisReplyError,
  RedisTimeoutError,
} from './transport-errors'

/**
 * What the engine needs from a Redis connection: raw commands with binary replies. node-redis
 * implements it for Node; any other runtime can supply its own (a fetch-based proxy, say).
 */
export interface Transport {
  /**
   * Runs one command; bulk-string replies come back as Buffers. Rejects on error or when
   * `options.timeoutMs` has passed: with a {@link RedisReplyError} when Redis answered with an
   * error, a {@link RedisTimeoutError} on the deadline, anything else when the connection failed.
   */
  send(argv: readonly (string | Buffer)[], options?: SendOptions): Promise<unknown>
  /**
   * The error for a command this transport would not send now for a reason of its own (the
   * node-redis one: the values already waiting in unanswered commands), else undefined. Asked
   * before the breaker admits the command: such a refusal says nothing of Redis's health.
   */
  holdsBack?(argv: readonly (string | Buffer)[]): HeldBackError | undefined
  /** Closes the connection; pending commands fail. */
  close(): Promise<void>
  /**
   * True when `send` itself rejects once `options.timeoutMs` (plus any connect wait it bounds)
   * has passed, so callers need no timer of their own. Timers per command are a measurable
   * share of a cache hit's CPU.
   */
  readonly enforcesDeadlines?: boolean
}

/** What a command is, for its budget (`lease`: the lease protocol, the engine's lease budget). */
export type OpKind = 'read' | 'write' | 'lease'

export interface SendOptions {
  /** Read (`GET`, tag refresh: on a request's path) or write. Default: from the command name. */
  kind?: OpKind | undefined
  /** Deadline in ms; set by the engine's budget for the kind. */
  timeoutMs?: number | undefined
  /**
   * When the caller took the command on, on the clock of clock.ts `now()`
   * (`performance.timeOrigin + performance.now()`), read just before `send`: the budget may
   * count from it, so a transport needs no clock read of its own (one costs about 0.1 µs on a
   * virtualized host, and the guard reads it anyway). A transport may ignore it.
   */
  startedAt?: number | undefined
  /**
   * Sent even while the circuit breaker refuses commands, still under its kind's budget: the
   * last attempt at revalidations still queued when the process closes, which no other
   * instance would learn otherwise.
   */
  force?: boolean | undefined
  /**
   * A script whose reply is `[entry or nil, ...]`: its first element is an entry read from
   * Redis (lease_poll.lua, page_read.lua), measured like a `GET`'s reply
   * (`fleetcache.entry.size`, https://github.com/fleetcache/fleetcache/blob/main/docs/observability.md). A transport may ignore it.
   */
  entryReply?: boolean | undefined
}

/**
 * Resolves or rejects like `promise`, or rejects with a {@link RedisTimeoutError} after `ms`;
 * the deadline (in the process's deadline queue, deadlines.ts) never outlives the promise.
 * `message` replaces the error's text (say, to name the whole budget when `ms` is only what is
 * left of it).
 */
export function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
  message?: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const deadline = deadlines.add(ms, () => {
      reject(new RedisTimeoutError(message ?? `${what} took longer than ${String(ms)} ms`))
    })
    promise.then(
      (v) => {
        deadlines.settle(deadline)
        resolve(v)
      },
      (e: unknown) => {
        deadlines.settle(deadline)
        reject(e instanceof Error ? e : new Error(String(e)))
      },
    )
  })
}

/**
 * Runs an `EVALSHA` argv planned by the engine, loading the script on `NOSCRIPT` (a Redis
 * restart or failover empties the script cache).
 */
export async function runScript(
  transport: Transport,
  argv: string[],
  source: (sha: string) => string | undefined,
  options?: SendOptions,
): Promise<unknown> {
  try {
    return await transport.send(argv, options)
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
    const sha = argv[1] ?? ''
    const lua = source(sha)
    if (lua === undefined) throw err
    return transport.send(['EVAL', lua, ...argv.slice(2)], options)
  }
}
