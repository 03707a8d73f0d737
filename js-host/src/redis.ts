import { createClient, ErrorReply, RESP_TYPES, TimeoutError } from 'redis'

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
  private readonly client
  private connecting: Promise<void> | undefined
  private connectDeadline = 0
  private lastErrorLog = 0
  private suppressed = 0
  private closed = false

  constructor(private readonly options: RedisTransportOptions) {
    this.client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      commandsQueueMaxLength: MAX_QUEUED_COMMANDS,
      // No per-command AbortSignal.timeout (node-redis's default is 5 s): send() bounds every
      // command with one plain timer instead (see there).
      commandOptions: { timeout: 0 },
      socket: {
        connectTimeout: options.connectTimeoutMs,
        reconnectStrategy: reconnectDelay,
      },
    })
    // Without a listener node-redis would throw on 'error' and crash the server, and a
    // listener that throws stops reconnection (vercel/next.js#68221): this one cannot throw.
    // At most one line per 10 s, so an outage does not flood the logs.
    this.client.on('error', (err: unknown) => {
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
    })
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
      const attempt = this.client.connect().then(() => undefined)
      attempt.catch(() => undefined)
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
      return await withDeadline(
        this.client.sendCommand(argv, { typeMapping: BUFFERS }),
        timeout,
        `redis ${String(argv[0])}`,
      )
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
