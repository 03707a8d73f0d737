/**
 * The errors of the transport contract (docs/transport.md), one `code` each, for both hosts:
 * the Node transport and guard (transport.ts re-exports them) and the workers entry's guard
 * (worker-src/index.ts) throw these very classes. Node-free, compiled into the worker bundle
 * too (docs/decisions/0027): one copy, so a name or a `code` cannot drift between the two.
 * The shared modules tell them apart by `code`, not by class (tag-sync.ts): a host's
 * transport may reject with any error that carries the code.
 */

/** Redis answered with an error reply (`NOSCRIPT`, `WRONGTYPE`, ...): Redis itself is healthy. */
export class RedisReplyError extends Error {
  readonly code = 'ERR_REDIS_REPLY'
  constructor(message: string) {
    super(message)
    this.name = 'RedisReplyError'
  }
}

/** No reply within the command's budget; the command was abandoned. */
export class RedisTimeoutError extends Error {
  readonly code = 'ERR_REDIS_TIMEOUT'
  constructor(message: string) {
    super(message)
    this.name = 'RedisTimeoutError'
  }
}

/**
 * No connection to Redis: the command was not sent (the connection is being made again, or the
 * first one failed at once), or the connection closed before its reply. Told by its
 * `connection` mark, not a `code`, so that the lines that quote it (`describe`, log.ts) read as
 * before; a socket error's own code (`ECONNREFUSED`, `ECONNRESET`, ...) says the same
 * (tag-sync.ts `isConnectionError`).
 */
export class RedisConnectionError extends Error {
  readonly connection = true
  /**
   * Why there is no connection when Redis refused it, in words for a warning (`Redis refused
   * the login (WRONGPASS; see <doc>)`, `the TLS certificate of Redis is not trusted (...)`):
   * the warnings that say `Redis is unreachable` for a connection error say this instead
   * (tag-sync.ts `whyUnsent`). Undefined when nothing refused it.
   */
  readonly refusal: string | undefined
  constructor(message: string, refusal?: string) {
    super(message)
    this.name = 'RedisConnectionError'
    this.refusal = refusal
  }
}

/** The circuit breaker is open: Redis was not asked (a read is a miss, a write is skipped). */
export class CircuitOpenError extends Error {
  readonly code = 'ERR_REDIS_CIRCUIT_OPEN'
  constructor() {
    super('redis circuit breaker is open: Redis not asked')
    this.name = 'CircuitOpenError'
  }
}

/**
 * A command held back by the transport's own bound (`Transport.holdsBack`, transport.ts), not
 * sent. Like the breaker's refusal, it is no failure of Redis: the breaker does not count it,
 * and a write it stops is skipped without an error line of its own (the transport logs the
 * bound).
 */
export class HeldBackError extends Error {
  readonly code = 'ERR_REDIS_HELD_BACK'
  constructor(message: string) {
    super(message)
    this.name = 'HeldBackError'
  }
}
