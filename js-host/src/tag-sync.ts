/**
 * The tag state's synchronisation with Redis, shared by the Node handlers and the workers entry
 * (compiled into both bundles: no Node API, replies as `Uint8Array`). The runtime supplies the
 * script runner, the clock, the logger and, where background work may outlive a request, a
 * timer.
 */
import { docLink } from './doc-link.js'
import type { Logger } from './log.js'
import { describe, isFailedProbe, printable, shortList, tagText } from './log.js'
import { joinTags, splitArgv } from './argv.js'
import { revalidated } from './packed.js'

/**
 * The engine calls tag synchronisation makes (both bindings' `Engine` has them). Written out
 * rather than picked from a binding's declarations: the Node package's declarations must not
 * name the workers glue (an ES module), nor the workers bundle Node's.
 */
export interface TagEngine {
  /** The `EVALSHA` argvs come NUL-joined (`splitArgv`). */
  planTagRefresh(): string
  planTagPull(now: number): string
  tagPullFailed(now: number): void
  followTagsByPush(maxPullIntervalMs: number): void
  readonly tagAnnounceChannel: string
  tagChannelUp(): void
  tagChannelDown(): void
  applyAnnouncement(msg: Uint8Array, now: number): AnnouncementCode
  tagsCaughtUp(now: number): boolean
  noteClocks(now: number, wall: number): void
  /** How far the clocks' distance may move before `noteClocks` is called (the core's number). */
  readonly clockNoteMs: number
  /** Arms the retry (the engine keeps its time: `pollTimeout`). */
  armRetry(now: number): void
  /** When the one timer should next wake (this process's clock), or negative for none. */
  pollTimeout(now: number): number
  /** What the one timer does now (`TagEnums.Wake`), or undefined: nothing is due. */
  handleTimeout(now: number): WakeCode | undefined
  applyRefresh(reply: Uint8Array, now: number): number
  missingPermission(message: string): string
  revalidate(
    tags: string,
    mode: RevalidationModeCode,
    expireSeconds: number,
    now: number,
    wall: number,
    queue: boolean,
    pairedTurn: number,
  ): Uint8Array
  readonly outboxDropped: number
  readonly outboxParked: number
  readonly outboxLength: number
  readonly outboxHeadSeq: number
  planOutboxHead(): string
  refuseOutbox(seq: number, message: string, now: number): OutboxRefusalCode
  failOutbox(seq: number, now: number): void
  ackOutbox(seq: number): boolean
  applyUpdateReply(reply: Uint8Array): void
  readonly resendLength: number
  readonly resendRecords: number
  readonly tagRecordsLost: number
  readonly tagsFolded: number
  planResend(): string
  ackResend(): void
  readonly tagsSynced: boolean
  readonly tagsCatchingUp: boolean
  outboxRetryInMs(now: number): number
  breakerState(now: number): BreakerStateCode
}

/** A value of one of the binding's numeric enums (the module's own enum type at run time). */
type RevalidationModeCode = number
type OutboxRefusalCode = number
type BreakerStateCode = number
type AnnouncementCode = number
type WakeCode = number

/**
 * The binding's enums tag synchronisation reads (numeric, as wasm-bindgen exports them): the
 * wasm module object itself, passed in because the Node and workers glue are different modules.
 */
export interface TagEnums {
  readonly RevalidationMode: { readonly Expire: number; readonly Stale: number }
  readonly OutboxRefusal: {
    readonly Kept: number
    readonly Dropped: number
    readonly Parked: number
  }
  readonly BreakerState: { readonly Closed: number }
  readonly Announcement: { readonly Known: number; readonly Gap: number }
  readonly Wake: { readonly Pull: number; readonly Retry: number; readonly Send: number }
}

/**
 * Runs an `EVALSHA` argv the engine planned (loading the script on `NOSCRIPT`) under the
 * engine's budget for `kind`. Rejects with an error whose `code` is `ERR_REDIS_REPLY` when Redis
 * answered with an error, `ERR_REDIS_CIRCUIT_OPEN` when the breaker kept Redis from being asked
 * (never with `force`: the last attempt at the outbox and at the records to give back when
 * the process closes).
 */
export type ScriptRunner = (
  argv: string[],
  kind: 'read' | 'write',
  force?: boolean,
) => Promise<unknown>

/** What the announcement channel tells the tag synchronisation. */
export interface ChannelEvents {
  /** A message published on the channel, as published. */
  message(msg: Uint8Array): void
  /** The subscription is confirmed (first time, or again after a reconnection). */
  up(): void
  /** The subscription is down: the connection is lost or reconnecting. */
  down(): void
}

/**
 * Subscribes to a sharded pub/sub channel on a connection of its own and reports what
 * happens to `events`; returns what ends the subscription.
 */
export type Subscribe = (channel: string, events: ChannelEvents) => () => Promise<void>

/** A one-shot timer; the Node runtime's does not keep the process alive. */
export interface Timer {
  set(fn: () => void, ms: number): unknown
  clear(handle: unknown): void
}

export interface TagSyncOptions {
  /** Redis, or undefined when this process's revalidations are the whole tag state. */
  script: ScriptRunner | undefined
  /** The binding's enums (its module object). */
  enums: TagEnums
  /** Milliseconds on Next's scale, read for every decision. */
  now: () => number
  /**
   * The wall clock (`Date.now`), where `now` may part from it (Node: `now` follows the
   * monotonic clock from the process's start). A revalidation is stamped at the later of the
   * two; each pull and revalidation compares them and logs a difference of
   * {@link CLOCK_APART_LOG_MS} or more.
   */
  wall?: (() => number) | undefined
  log: Logger
  /**
   * Where background work may outlive a request (Node). With one, loading the whole tag state
   * goes on in the background after a request's first page, and a timer retries while Redis
   * is out of reach or something waits to be sent. Without one (a workers isolate, whose
   * background work may be cut off with the response), a refresh loads up to
   * {@link LOAD_STEPS} pages itself, and the next request retries.
   */
  timer?: Timer | undefined
  /**
   * The request the current call belongs to, or undefined where none can be identified (Node:
   * the scope opened when Next reset the request's `IncrementalCache`, recorded with
   * {@link TagSync.requestBegan}, or Next's per-render work store). A pull that started after
   * the request began serves every call of it; see {@link TagSync.refresh}. Without it every
   * refresh pulls.
   */
  request?: (() => object | undefined) | undefined
  /**
   * Follow the tag state by push (`tagSync: 'push'`): the subscription to the announcement
   * channel, and the longest time between pulls. Needs `timer` (the periodic pull runs on
   * it); without either, every request pulls.
   */
  push?: { subscribe: Subscribe; maxPullIntervalMs: number } | undefined
  /**
   * How long `stop()` waits for pulls (the one under way, those chained behind it, a load's
   * pages, its own): the Node runtime's is {@link LOAD_STEPS} read budgets, as long as that
   * many pulls answered just within their budget took before. Needs `timer`; without either,
   * it waits for at most {@link LOAD_STEPS} pulls.
   */
  closeWaitMs?: number | undefined
}

/** Next's `durations` argument of `updateTags` / `revalidateTag`. */
export interface Durations {
  expire?: number
}

/**
 * How far `now` may be from the wall clock before it is logged. Both follow the same rate
 * adjustments, so only a step of the wall clock after the process started parts them; a
 * second is far above the rounding of `Date.now()`.
 */
export const CLOCK_APART_LOG_MS = 1000
/** At most one line about the clocks per this many ms of wall clock. */
const CLOCK_LOG_EVERY_MS = 60_000

/**
 * Calls one pull makes at most: while the whole tag state loads without a timer, and while it
 * catches up on a refresh answered in parts (each a bounded step in Redis).
 */
export const LOAD_STEPS = 16

/** Where the log sends an operator whose ACL user lacks a permission. */
const ACL_DOC = `the ACL SETUSER line in ${docLink('docs/operating.md#access-control')}`

function code(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
}

/** An error reply from Redis (the transport contract's `ERR_REDIS_REPLY`), not a lost connection. */
function isReplyError(err: unknown): err is Error {
  return err instanceof Error && code(err) === 'ERR_REDIS_REPLY'
}

/** The breaker kept Redis from being asked (logged when it opened). */
function isCircuitOpen(err: unknown): boolean {
  return code(err) === 'ERR_REDIS_CIRCUIT_OPEN'
}

/** No reply within the command's budget (the transport contract's `ERR_REDIS_TIMEOUT`). */
function isTimeout(err: unknown): boolean {
  return code(err) === 'ERR_REDIS_TIMEOUT'
}

/**
 * Why a queued revalidation is still unsent, for the warning: a timeout or an open breaker is
 * not an unreachable Redis, and an operator reading "unreachable" looks in the wrong place.
 * `what`: the command Redis answered with an error (the merge of lost records, at close).
 */
function whyUnsent(err: unknown, what = 'the first queued revalidation'): string {
  if (isTimeout(err)) return 'Redis did not answer it in time'
  if (isCircuitOpen(err)) return 'the Redis circuit breaker is open'
  if (isReplyError(err)) {
    // The reply's first word is Redis's error code (OOM, MISCONF, READONLY, WRONGTYPE); its
    // whole text is in the line that logged the failure.
    return `Redis answered ${what} with ${replyCode(err)}`
  }
  // Redis refused the login, or its TLS certificate is not trusted: no connection, but not
  // one the network is to blame for; the transport names it (`RedisConnectionError.refusal`).
  const refused = refusalOf(err)
  if (refused !== undefined) return refused
  if (isConnectionError(err)) return 'Redis is unreachable'
  // Anything else (a bug, an error of the client this code does not know) is named: the line
  // that logged the failure may be a debug line (a quiet run), and "unreachable" would send
  // the operator to the network.
  return `sending ${what} failed: ${causeText(err)}`
}

/**
 * Socket errors that mean no connection to Redis: refused, reset, no route, a name that does
 * not resolve, a broken pipe, a connect that timed out in the kernel.
 */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ETIMEDOUT',
])

/**
 * A failure of the connection, not of the command: the transport's own (marked `connection`,
 * transport-errors.ts `RedisConnectionError`, which the breaker's `FailedProbeError` keeps as
 * its cause), or a socket error's code; an `AggregateError` (Node's dual-stack connect) when
 * each of its errors is one.
 */
function isConnectionError(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 3) return false
  const e = err as { connection?: unknown; code?: unknown; cause?: unknown; errors?: unknown }
  if (e.connection === true) return true
  if (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) return true
  if (isFailedProbe(err)) return isConnectionError(e.cause, depth + 1)
  return (
    Array.isArray(e.errors) &&
    e.errors.length > 0 &&
    e.errors.every((inner: unknown) => isConnectionError(inner, depth + 1))
  )
}

/**
 * What refused the connection, in words for a warning (a refused login, an untrusted TLS
 * certificate: the transport's `RedisConnectionError.refusal`, kept by the breaker's
 * `FailedProbeError` as its cause), printable; undefined when nothing refused it.
 */
function refusalOf(err: unknown, depth = 0): string | undefined {
  if (typeof err !== 'object' || err === null || depth > 3) return undefined
  const e = err as { refusal?: unknown; cause?: unknown }
  if (typeof e.refusal === 'string' && e.refusal !== '') return printable(e.refusal.slice(0, 400))
  return isFailedProbe(err) ? refusalOf(e.cause, depth + 1) : undefined
}

/** Longest text of an unexpected error a warning quotes (its own line has it all). */
const CAUSE_CHARS = 120

/** An error for a warning: `describe`d, cut at {@link CAUSE_CHARS}, escaped (`printable`). */
function causeText(err: unknown): string {
  const text = describe(err)
  return printable(text.length > CAUSE_CHARS ? `${text.slice(0, CAUSE_CHARS)}…` : text)
}

/** The error code an error reply starts with (OOM, MISCONF, READONLY), cut short. */
function replyCode(err: unknown): string {
  const word = err instanceof Error ? /^\S+/.exec(err.message)?.[0] : undefined
  return (word ?? 'an error').slice(0, 40)
}

/**
 * Why the revalidations of a quiet run are queued: Redis answers writes with an error (OOM,
 * MISCONF), or does not answer (the breaker open, a timeout, the connection down).
 */
type QuietKind = 'refused' | 'unanswered'

/**
 * A revalidation of a quiet run logged at debug only: its outbox number, its tags, and why it
 * was queued.
 */
interface QuietRevalidation {
  seq: number
  tags: string[]
  kind: QuietKind
}

/** How many revalidations were made during a quiet run, for the line that ends it. */
function madeCount(n: number): string {
  return `${String(n)} ${n === 1 ? 'was' : 'were'} made`
}

/** What the line at close says of the queued revalidations logged at debug only. */
function quietWhile(quiet: readonly QuietRevalidation[]): string {
  const refused = quiet.some((q) => q.kind === 'refused')
  const unanswered = quiet.some((q) => q.kind === 'unanswered')
  if (refused && unanswered) return 'while Redis refused writes or did not answer'
  return refused ? 'while Redis refused writes' : 'while Redis did not answer'
}

/**
 * A revalidation that did not reach Redis because the engine has failed (a trap:
 * docs/failures.md, "A trap in the engine"): either the engine could not record it at all, or
 * it failed after recording it, before the revalidation was sent. Next's call rejects with it,
 * so a Server Action that revalidates fails instead of reporting a revalidation that reached
 * nobody.
 */
export class EngineFailedError extends Error {
  readonly code = 'ERR_ENGINE_FAILED'
  /** `recorded`: the engine took the revalidation, then failed before it was sent. */
  constructor(tags: readonly string[], cause: unknown, recorded = false) {
    super(
      `revalidation of ${shortList(tags)} ${recorded ? 'not sent to Redis (the engine failed after recording it)' : 'not recorded, on this instance or in Redis'}: the engine ` +
        `has failed (${describe(cause)}); restart this process (${docLink('docs/failures.md#a-trap-in-the-engine')})`,
      { cause },
    )
    this.name = 'EngineFailedError'
  }
}

/**
 * Whether `err`, thrown by a call into the engine, says the engine has failed rather than that
 * it refused the input: the binding's errors carry a `code`; a trap is a
 * `WebAssembly.RuntimeError` and a call into an engine left borrowed by one a plain `Error`,
 * neither with a code.
 */
function failedEngine(err: unknown): boolean {
  if (err instanceof EngineFailedError) return true
  return typeof (err as { code?: unknown } | null)?.code !== 'string'
}

/**
 * `err`, thrown by a call into the engine while recording a revalidation of `tags`, as the
 * error Next's call rejects with when the engine has failed, or undefined when the engine
 * refused the input.
 */
export function engineFailure(
  tags: readonly string[],
  err: unknown,
): EngineFailedError | undefined {
  if (err instanceof EngineFailedError) return err
  return failedEngine(err) ? new EngineFailedError(tags, err) : undefined
}

/**
 * Keeps the engine's tag mirror in step with Redis, and gets this process's revalidations to
 * Redis through the engine's outbox.
 *
 * Refreshes are coalesced: a caller that arrives while one is in flight waits for the next
 * one, which starts after it arrived, so every caller sees every revalidation completed before
 * its call (docs/failures.md, "Freshness") and a burst of requests costs two round trips, not one each.
 * Within one identified request (`TagSyncOptions.request`), any pull that started after the
 * request began serves its calls, which is all the guarantee asks: pulls are numbered as they
 * start, and a request is known by the count when it began (`requestBegan`, or its first call).
 *
 * Revalidations are applied locally at once and queued in the engine; the queue is sent in
 * order, one update at a time, whenever Redis answers (on the revalidation itself, before
 * every refresh, and after any successful command while something waits), except while the
 * head waits the engine's backoff after a failed attempt: then the retry (`watch`) sends it
 * (without a timer, the next revalidation or refresh after the backoff does).
 * What cannot be sent stays queued and is logged once; what the bounded queue drops is logged
 * as a warning, and what it wrote is merged back (`resend`) after the queue is sent. One that
 * Redis refuses for want of an ACL permission is dropped, and one that
 * keeps meeting an error retrying does not fix is parked, so the queue moves on (the engine
 * decides both): one error line per run of either, not one per revalidation.
 */
export class TagSync {
  private inflight: Promise<boolean> | undefined
  private queued: Promise<boolean> | undefined
  /** Pulls started so far: a pull's number is this count once it has started. */
  private started = 0
  /** The number of the pull in flight (meaningful while `inflight` is set). */
  private inflightNumber = 0
  /** The number of the latest pull that succeeded; 0 before any. */
  private succeeded = 0
  /** Per identified request, the pulls started before it began: a later one serves it. */
  private began = new WeakMap<object, number>()
  private draining: Promise<boolean> | undefined
  /** Some revalidation could not be sent: the next successful replay says so in the log. */
  private backlogged = false
  /**
   * Revalidations awaiting the drain that sends them, each of which logs a line naming its
   * tags when it stays queued: a send that fails for want of a reply then leaves its error to
   * that line (one line per queued revalidation), at debug.
   */
  private reporting = 0
  /** The outbox's head last failed on an error reply (Redis answered), not for want of one. */
  private headRefused = false
  /**
   * Some failure of the current backlog got no reply (an outage, a timeout, the breaker):
   * the line when it is sent says Redis is back; otherwise Redis answered every attempt with
   * an error (OOM, MISCONF, READONLY) and the line says it accepts writes again.
   */
  private backlogUnanswered = false
  /**
   * An error reply of the current backlog was logged with its whole text (the error line): one
   * that follows failures without a reply (a timeout, then `OOM`) logs it too, once.
   */
  private backlogRefusalLogged = false
  /**
   * Redis refused some revalidation of the current backlog for good (parked, or dropped for a
   * permission): it refused that revalidation, not writes, so the line at the end says neither
   * that Redis is back nor that it accepts writes again.
   */
  private backlogSetAside = false
  /**
   * The quiet run under way (Redis refusing writes, or not answering, until the backlog is
   * sent), once a revalidation made during it was logged at warn: why the last one was queued
   * (a change of it is logged at warn again), how many were made during it of each kind, and
   * those logged at debug only after a warning (the ones the outbox still held at the last such
   * line), for the line at close.
   */
  private quietRun:
    { kind: QuietKind; refused: number; unanswered: number; quiet: QuietRevalidation[] } | undefined
  /**
   * A merge of records to give back failed and was logged at error, and none went through
   * since: the failures after it are debug lines. Redis refusing writes (`OOM`) answers every
   * attempt, with the breaker closed, so each retry would log one more.
   */
  private resendFailing = false
  /** The full outbox took a revalidation out since the backlog began, and that was logged. */
  private overflowLogged = false
  /** Replays that found the outbox empty at their end: one since a revalidation was queued has sent it (or taken it out). */
  private outboxEmptied = 0
  /** Why the last merge of records to give back failed (for the line at close). */
  private resendFailure: unknown
  /**
   * A command of the send under way when `stop()` was called reached out to Redis and failed
   * after it (not one the breaker kept back): the last attempt is not made, as it stops at the
   * first command that fails (the next would most likely fail alike, a write budget more).
   */
  private failedAtClose = false
  /** Why the last pull failed (read by `sendLast` for the pull it made itself). */
  private pullFailure: unknown
  /**
   * The last pull's failure was its command's: sent, and no reply read. False when Redis
   * answered and the engine did not take the reply, or the engine failed before sending:
   * neither says Redis is out of reach.
   */
  private pullUnanswered = false
  /**
   * A pull `stop()` waited for (its own, or one under way when it was called) failed without
   * an answer from Redis (not kept back by the breaker, not an error reply): the attempt ends
   * there, and the lines at close say so. `own`: the pull close() made itself.
   */
  private closePullUnanswered: { err: unknown; own: boolean } | undefined
  /**
   * `close()` stopped waiting for pulls (`LOAD_STEPS` of them) with one still going on (a load
   * of a large state, page by page): no pull is chained from then on, and the one left out
   * fails at debug only when the connection closes under it.
   */
  private pullsCut = false
  /** Why the outbox's head was last not sent (for the queued warning). */
  private sendFailure: unknown
  /** A refresh was refused for want of a permission and logged; none succeeded since. */
  private refreshRefused = false
  /** The mirror's first fold past `tagMirrorMaxTags` was logged (once per process). */
  private foldNoted = false
  /**
   * A refresh has loaded the shared tag state at least once (for the line of a failed one: a
   * state not in sync now is being loaded again or caught up on, not loaded for the first time).
   */
  private tagStateLoaded = false
  private stopped = false
  /** `stop()`'s work, once: a second call waits for the first. */
  private stopping: Promise<void> | undefined
  /**
   * The first failure of the engine seen here (a trap leaves it failed for good): a
   * revalidation recorded before it may never be sent, so `update` rejects once it is set.
   */
  private failure: { cause: unknown } | undefined
  private readonly script: ScriptRunner | undefined
  private readonly enums: TagEnums
  private readonly now: () => number
  private readonly wall: (() => number) | undefined
  /** When the clocks' difference was last logged (wall clock). */
  private clockLoggedAt = Number.NEGATIVE_INFINITY
  /**
   * The clocks' distance (wall clock minus `now`) last told the engine, by any call that hands
   * it both (`noteClocks`, a pull's, a revalidation's, a write's: `clocksTold`). The engine takes
   * a move from the distance it last saw as a step; compared against anything else (this
   * class's own last `noteClocks`), a step back seen by a pull and a pause bringing the clocks
   * back would look like no move here, and the engine would not hear of the pause.
   */
  private clocksNoted: number | undefined
  /**
   * How far the clocks' distance may move before a request tells the engine (`noteClocks`):
   * the core's number (`clockNoteMs`, `CLOCK_NOTE_MS` in crates/fleetcache-core/src/time.rs),
   * read once here, above what `Date.now()`'s whole milliseconds leave, so a request that finds
   * the clocks as they were makes no call into wasm (a tier hit is one). The engine takes a move
   * of more than its slack less this as a step, so the drift left untold here hides none.
   */
  private readonly clockNoteMs: number
  private readonly log: Logger
  private readonly timer: Timer | undefined
  private readonly closeWaitMs: number | undefined
  private readonly request: (() => object | undefined) | undefined
  /** Ends the announcement subscription (following by push). */
  private unsubscribe: (() => Promise<void>) | undefined
  /** The one timer (`poll`), while one is pending. */
  private wakeTimer: unknown
  /** The time `wakeTimer` was set for, as the engine gave it. */
  private wakeAt = 0

  constructor(
    private readonly engine: TagEngine,
    options: TagSyncOptions,
  ) {
    this.script = options.script
    this.enums = options.enums
    this.now = options.now
    this.wall = options.wall
    this.log = options.log
    this.timer = options.timer
    this.closeWaitMs = options.closeWaitMs
    this.request = options.request
    this.clockNoteMs = engine.clockNoteMs
    const push = options.push
    if (push !== undefined && this.script !== undefined && this.timer !== undefined) {
      engine.followTagsByPush(push.maxPullIntervalMs)
      this.unsubscribe = push.subscribe(engine.tagAnnounceChannel, {
        message: (msg) => {
          try {
            // A gap (missed messages, a failover): the engine pulls until a pull after it.
            const { Announcement } = this.enums
            const applied = this.engine.applyAnnouncement(msg, this.now())
            if (this.log.debugEnabled) {
              const what =
                applied === Announcement.Gap
                  ? 'a gap, pulling'
                  : applied === Announcement.Known
                    ? 'known'
                    : 'applied'
              this.log.debug(`tag announcement: ${what}`)
            }
            if (applied === Announcement.Gap) void this.pullAfterNow()
            else this.poll()
          } catch (err) {
            this.log.error(`unexpected tag announcement: ${describe(err)}`)
            this.channelCall('down', () => {
              this.engine.tagChannelDown()
            })
          }
        },
        up: () => {
          this.channelCall('up', () => {
            this.engine.tagChannelUp()
          })
          // Caught up only after a pull planned from here on.
          void this.pullAfterNow()
        },
        down: () => {
          this.channelCall('down', () => {
            this.engine.tagChannelDown()
            // No pull timer while not caught up: a failed pull it was to retry goes to the
            // retry now (the engine's).
            this.poll()
          })
        },
      })
    }
  }

  /**
   * A background step the engine failed (it has trapped: docs/failures.md, "A trap in the
   * engine"): logged, and treated as a failed step, so that no rejection goes unhandled, which
   * would end the process.
   */
  /** `failure`, read afresh (after an await, where the checker keeps its earlier narrowing). */
  private failedSince(): { cause: unknown } | undefined {
    return this.failure
  }

  private engineFailed(what: string, err: unknown): false {
    if (failedEngine(err)) this.failure ??= { cause: err }
    this.log.error(`${what} failed in the engine: ${describe(err)}`)
    return false
  }

  /**
   * Tells the engine the channel's state from a Redis client's event handler, where a throw
   * would escape as the client's `error` event, whose handler calls here again: uncaught, the
   * end of the process. An engine that throws here has trapped (docs/failures.md, "A trap in
   * the engine"); the reads and writes that reach it report that themselves.
   */
  private channelCall(what: string, call: () => void): void {
    try {
      call()
    } catch (err) {
      this.log.error(`tag announcements: channel ${what} not applied: ${describe(err)}`)
    }
  }

  /**
   * Pulls tag changes from Redis: resolves once a refresh that started after this call (or,
   * within an identified request, after the request began) has been applied or has failed.
   * Never rejects: on failure the mirror stays as it was.
   */
  refresh(): Promise<void> {
    if (this.script === undefined) return Promise.resolve()
    this.noteClocks()
    // Following by push and caught up: the mirror holds every revalidation announced, and
    // every one that resolved before the last pull, which started within the bound.
    if (this.engine.tagsCaughtUp(this.now())) return Promise.resolve()
    const request = this.currentRequest()
    if (request === undefined) return this.pullAfterNow().then(() => undefined)
    let began = this.began.get(request)
    if (began === undefined) {
      began = this.started
      this.began.set(request, began)
    }
    // The mirror holds what a pull started after the request began brought. A failed pull
    // serves nobody later: the next call waits for one that succeeds, or fails, after it.
    if (this.succeeded > began) return Promise.resolve()
    if (this.inflight !== undefined && this.inflightNumber > began) {
      return this.inflight.then(() => undefined)
    }
    return this.pullAfterNow().then(() => undefined)
  }

  /**
   * Records that `request` began before now, so that any pull that starts from here on serves
   * its calls (`TagSyncOptions.request` must then name it for them). A request first seen by
   * `refresh` began at that call. Recording one twice keeps the first.
   */
  requestBegan(request: object): void {
    if (!this.began.has(request)) this.began.set(request, this.started)
  }

  /** The request the caller belongs to; undefined when none can be told (then it pulls). */
  private currentRequest(): object | undefined {
    if (this.request === undefined) return undefined
    try {
      return this.request()
    } catch {
      return undefined
    }
  }

  /**
   * A refresh that starts now, or the one queued behind the refresh in flight (which may have
   * started before this call, so it cannot serve it). True when it succeeded.
   */
  private pullAfterNow(): Promise<boolean> {
    if (this.inflight === undefined) {
      const number = ++this.started
      const run = this.pull()
        .catch((err: unknown) => this.engineFailed('tag refresh', err))
        .then((ok) => {
          if (ok && number > this.succeeded) this.succeeded = number
          return ok
        })
        .finally(() => {
          if (this.inflight === run) this.inflight = undefined
        })
      this.inflight = run
      this.inflightNumber = number
      return run
    }
    // When the refresh in flight failed, Redis is sick: another attempt would most likely cost
    // the waiters a second read budget for nothing, so they go on with the mirror as it is.
    this.queued ??= this.inflight.then((ok) => {
      this.queued = undefined
      return ok ? this.pullAfterNow() : false
    })
    return this.queued
  }

  /**
   * One refresh, and the calls that catch up after it: a reply in parts (more changed tags
   * than one reply carries) or the refresh after a load's last page, so that the request
   * waiting on this pull is judged by all of them. Without a timer, up to `LOAD_STEPS` calls
   * of a load too; with one, a load goes on in the background (`page`). True when it
   * succeeded.
   */
  private async pull(): Promise<boolean> {
    for (let i = 0; i < LOAD_STEPS; i++) {
      if (!(await this.page())) return false
      if (this.engine.tagsSynced) return true
      if (this.timer !== undefined && !this.engine.tagsCatchingUp) return true
    }
    // Still catching up after as many calls: the rest in the background, as a load's pages.
    if (this.timer !== undefined && !this.pullsCut) void this.pullAfterNow()
    return true
  }

  /** One refresh call; true when the mirror took Redis's answer. */
  private async page(): Promise<boolean> {
    if (this.script === undefined) return true
    this.pullUnanswered = false
    // Queued revalidations go out alongside, not before: a replay is a write with the write
    // budget, and the request waiting on this refresh must not pay it. The mirror already
    // holds them (local records survive any refresh), so nothing is missed meanwhile.
    if (this.engine.outboxLength > 0) void this.drain()
    const t = this.now()
    this.checkClock(t)
    // The command's failure, not the engine's (planning it, or taking its reply).
    let asking = false
    try {
      const argv = splitArgv(this.engine.planTagPull(t))
      asking = true
      const reply = await this.script(argv, 'read')
      asking = false
      if (!(reply instanceof Uint8Array)) throw new Error('tag refresh returned a non-string reply')
      // Read when the reply came (not when the call went out): a refresh after a load's last
      // page, meant to catch up, which the mirror applies here.
      const catchUp = this.engine.tagsCatchingUp
      const lost = this.engine.tagRecordsLost
      const changed = this.engine.applyRefresh(reply, this.now())
      if (this.engine.tagsSynced) this.tagStateLoaded = true
      if (changed > 0) this.log.debug(`tags: ${String(changed)} changed`)
      this.refreshRefused = false
      if (this.engine.tagRecordsLost > lost) {
        this.log.warn(
          `tag state in Redis was replaced (flushed, restarted empty, restored or failed over) and lacks ` +
            `${String(this.engine.tagRecordsLost - lost)} revalidation record(s) this instance knows of: this ` +
            `instance keeps them in force and gives them back to Redis`,
        )
      }
      if (!this.foldNoted && this.engine.tagsFolded > 0) {
        this.foldNoted = true
        this.log.warn(
          `tag state: more live tags than tagMirrorMaxTags; this instance now folds the least ` +
            `recently revalidated, so entries made before those revalidations may be ` +
            `regenerated once more than needed (FLEETCACHE_TAG_MIRROR_MAX_TAGS, ${docLink('docs/operating.md#sizing')})`,
        )
      }
      const merging = this.engine.resendLength > 0
      if (merging) void this.drain()
      // Loading the whole state (a new process, a flush, a failover): one page per call, each
      // a bounded step in Redis, chained until the mirror is in sync. Requests meanwhile wait
      // for one step at most, and judge nothing tagged fresh until it is done. Catching up
      // is `pull`'s. A catch-up answered in full while a merge waits (records without an
      // epoch, whose meta hash only that merge makes anew, are answered in full to every
      // refresh) starts the next load on the retry (`watch`), after the merge: chained at once,
      // a merge that keeps failing (writes refused: OOM under noeviction, a read-only
      // replica) would have the process load the whole state again and again, as fast as
      // Redis answers, with nothing new to learn.
      if (
        this.timer !== undefined &&
        !this.pullsCut &&
        !this.engine.tagsSynced &&
        !this.engine.tagsCatchingUp
      ) {
        if (catchUp && merging) this.watch()
        else void this.pullAfterNow()
      }
      // The bound moved, and a revalidation learned while the pull was out (or recorded in
      // the ms it was planned in) may be due now.
      this.poll()
      return true
    } catch (err) {
      // The engine retries it on the one timer: following by push and still caught up, the
      // pull after its backoff (a revalidation this pull was to answer stays due); otherwise
      // the retry. An engine that trapped (here or while the pull was out) throws on this call
      // as on every other: the failure below is logged all the same, without asking the engine
      // anything more.
      this.pullFailure = err
      this.pullUnanswered = asking
      let trapped = false
      try {
        this.engine.tagPullFailed(this.now())
      } catch (trap) {
        trapped = true
        this.engineFailed('tag refresh', trap)
      }
      // One close() no longer waits for: the connection closing under it is no failure of
      // Redis (close()'s line said what was not read).
      if (this.pullsCut && !trapped) this.log.debug(`tag refresh at close cut: ${describe(err)}`)
      else this.logPullFailure(err, trapped)
      // No retry for a trapped engine: it stays trapped (docs/failures.md, "A trap in the
      // engine"), so each retry would only fail alike, and the timer's delay is the engine's.
      if (!trapped) this.poll()
      return false
    }
  }

  /** The log line for a failed pull; `trapped`: the engine cannot be asked about the error. */
  private logPullFailure(err: unknown, trapped: boolean): void {
    // Once stop() was called, a pull is close()'s, or one it waits for: what its failure costs
    // (records not given back) is the closing lines' to say, and nothing else is lost by it.
    if (this.stopped && !trapped) {
      this.log.debug(`tag refresh at close failed: ${describe(err)}`)
      return
    }
    // An open breaker was logged when it opened; one line per request would flood the logs.
    if (isCircuitOpen(err)) {
      this.log.debug('tag refresh skipped: redis circuit open')
      return
    }
    // The breaker's probe (the retry's, or a request's refresh that came first): it keeps the
    // breaker open in the outage already logged, once a `breakerMaxOpenMs` for as long as it
    // lasts; the guard's debug line says so.
    if (isFailedProbe(err)) {
      this.log.debug(`tag refresh failed as the breaker's probe: ${describe(err)}`)
      return
    }
    const missing = !trapped && isReplyError(err) ? this.engine.missingPermission(err.message) : ''
    if (isReplyError(err) && missing !== '') {
      // Refused for want of a permission: every request would fail alike, one line is enough.
      if (!this.refreshRefused) {
        this.refreshRefused = true
        this.log.error(
          `tag refresh refused by Redis: the ACL user needs ${missing} ` +
            `(see ${ACL_DOC}); this instance does not see other instances' revalidations until that is fixed ` +
            `(before it has loaded the tag state once, it serves no tagged entry), and says so once: ${err.message}`,
        )
      } else this.log.debug(`tag refresh refused: ${err.message}`)
    } else if (trapped ? this.tagStateLoaded : this.engine.tagsSynced) {
      this.log.error(`tag refresh failed, using the last known tag state: ${describe(err)}`)
    } else {
      // Not in sync: never loaded, or loading a replaced state again (a flush, a failover), or
      // catching up in parts. The engine judges no tagged entry fresh until it is
      // (`untrusted_before`), but, while the breaker is open, those made since this process
      // started: "the last known tag state" is not used.
      this.log.error(
        `tag refresh failed ${this.tagStateLoaded ? 'while the tag state is loaded again or caught up on' : 'before any tag state was loaded'}: ` +
          `no tagged entry is served until it is (while the breaker is open, but those this instance made since it started): ${describe(err)}`,
      )
    }
  }

  /**
   * Tells the engine both clocks as a request begins: following by push, a step of the wall
   * clock since the last time (a machine resumed after a pause, Next's clock held still) asks
   * for a pull before the mirror counts as caught up again (docs/decisions/0036). Without a
   * wall clock (the workers entry), nothing.
   */
  noteClocks(): void {
    if (this.wall === undefined) return
    const t = this.now()
    const wall = this.wall()
    const apart = wall - t
    if (this.clocksNoted !== undefined && Math.abs(apart - this.clocksNoted) <= this.clockNoteMs) {
      return
    }
    this.engine.noteClocks(t, wall)
    this.clocksTold(t, wall)
  }

  /**
   * Records the clocks an engine call other than `noteClocks` handed the engine (a write's
   * start: `now` and `Date.now()`), as the engine keeps them (a wall clock that is a time after
   * the epoch), so a request compares against the distance the engine last saw.
   */
  clocksTold(t: number, wall: number): void {
    const apart = wall - t
    if (wall > 0 && Number.isFinite(apart)) this.clocksNoted = apart
  }

  /**
   * Tells the engine both clocks (`noteClocks`), and logs (at most once a minute) when this
   * process's clock `t` is a second or more from the
   * wall clock. Behind, its entries look that much older to the fleet; ahead, they are stored
   * that much older than Next stamped them, so Next here judges them stale sooner. Either way,
   * those it writes in that many seconds after a revalidation (its own, stamped no earlier than
   * the wall clock, included) are judged stale by it (docs/failures.md, "Clocks"). Restarting
   * realigns the two clocks.
   */
  private checkClock(t: number): void {
    if (this.wall === undefined) return
    const wall = this.wall()
    this.engine.noteClocks(t, wall)
    this.clocksTold(t, wall)
    const behind = wall - t
    if (Math.abs(behind) < CLOCK_APART_LOG_MS || wall < this.clockLoggedAt + CLOCK_LOG_EVERY_MS) {
      return
    }
    this.clockLoggedAt = wall
    const secs = (Math.abs(behind) / 1000).toFixed(1)
    const where = behind > 0 ? 'behind' : 'ahead of'
    this.log.warn(
      `this process's clock (performance.timeOrigin + performance.now(), the one Next stamps ` +
        `entries with) is ${secs} s ${where} the wall clock, which was stepped after the process ` +
        `started (an NTP step, a machine resumed after a pause): ${
          behind > 0
            ? `its entries are stamped ${secs} s early, so those it writes in the ${secs} s after a revalidation (its own are stamped at the wall clock) are judged stale and regenerated`
            : `its entries are stored ${secs} s older than Next stamps them (on the wall clock), so those it writes in the ${secs} s after a revalidation are judged stale and regenerated, all are stale ${secs} s sooner here, and none whose expire is shorter is stored`
        } (${docLink('docs/failures.md#freshness')}, "Clocks"); restarting the process realigns it`,
    )
  }

  /**
   * Records a revalidation: in this process at once, then fleet-wide in Redis, in order after
   * any earlier one that is still waiting. Invalid input (no tag within the core's byte limit)
   * is logged and dropped; a Redis failure leaves the revalidation queued, and says so in the
   * log. Rejects only with `EngineFailedError`, logged: the engine has failed, before it
   * recorded the revalidation or after (then it may never be sent).
   */
  async update(
    tags: readonly string[],
    durations: Durations | undefined,
    now: number,
    pairedTurn = 0,
  ): Promise<void> {
    if (tags.length === 0) return
    if (this.failure !== undefined) {
      // The engine failed before (a refresh or a replay trapped): what it would record now
      // could never be sent, nor trusted here.
      const failed = new EngineFailedError(tags, this.failure.cause)
      this.log.error(failed.message)
      throw failed
    }
    this.checkClock(now)
    // The core stamps it at the later of `now` and the wall clock (docs/decisions/0036): a
    // process whose clock a step left behind would otherwise stamp it in the past. NaN: none.
    const wall = this.wall === undefined ? Number.NaN : this.wall()
    const { RevalidationMode } = this.enums
    // Next's arguments as given: the core records `{ expire: 0 }` (or less) as an expiry, as
    // no durations (`Revalidation::from_durations`); the log line says what it recorded.
    const mode = durations === undefined ? RevalidationMode.Expire : RevalidationMode.Stale
    const expireNow =
      durations === undefined || (durations.expire !== undefined && durations.expire <= 0)
    const expire = durations?.expire ?? Number.NaN
    const joined = joinTags(tags)
    const what = `${shortList(tags)} (${
      expireNow
        ? 'expire now'
        : durations.expire === undefined
          ? 'stale, no expiry'
          : `stale, expire in ${String(durations.expire)} s`
    })`
    let recorded: { droppedTags: string; evicted: string }
    // Made after close() (nothing sends it), or before, with its send under way or queued when
    // close() was called: close()'s last attempt tries that one, and the line at close counts it.
    const madeAfterClose = this.stopped
    // The engine takes both clocks before it plans (`Engine::queue_tag_update_at`).
    this.clocksTold(now, wall)
    try {
      // Without Redis the local mirror is all there is: nothing to queue.
      recorded = revalidated(
        this.engine.revalidate(
          joined,
          mode,
          expire,
          now,
          wall,
          this.script !== undefined,
          pairedTurn,
        ),
      )
    } catch (err) {
      const failed = engineFailure(tags, err)
      if (failed !== undefined) {
        this.log.error(failed.message)
        throw failed
      }
      // Invalid input (no tag within the core's byte limit): refused on every instance alike.
      const longest = tags.reduce((m, t) => Math.max(m, t.length), 0)
      this.log.error(
        `revalidation refused (${String(tags.length)} tags, the longest ${String(longest)} characters): ${describe(err)}`,
      )
      return
    }
    this.poll()
    // Tags past the core's byte limit are dropped one by one; the others apply.
    if (recorded.droppedTags !== '') {
      this.log.warn(`revalidation of ${shortList(tags)}: ${recorded.droppedTags}`)
    }
    this.log.debug(`revalidate ${what}`)
    if (this.script === undefined) return
    // Its place in the outbox, which holds consecutive numbers from its head (it only ever
    // loses its head): the line at close names it only while it is still queued.
    const queuedAs = this.engine.outboxHeadSeq + this.engine.outboxLength - 1
    let sent: boolean
    let waiting: number
    // Not sent once the drain is done: a drain that sent the outbox to its end, this one
    // included, answers false all the same when a merge of records to give back fails after it.
    // (One taken out of a full outbox meanwhile is counted as queued, as it was made unsent.)
    const emptied = this.outboxEmptied
    let unsent: boolean
    try {
      if (recorded.evicted !== '') {
        const line =
          `revalidation outbox full: took the oldest queued revalidation (${shortList(recorded.evicted.split('\0'))}) out of the queue; ` +
          `what it wrote is merged into Redis's tag state once the revalidations queued after it are sent ` +
          `(${String(this.engine.outboxDropped)} taken out so far)`
        // Once the queue is full, every revalidation takes one out: a warning each would be a
        // flood for as long as Redis stays away. The first of a backlog only.
        if (this.overflowLogged) this.log.debug(line)
        else
          this.log.warn(
            `${line}; the ones taken out after it until the queue is sent are logged at debug`,
          )
        this.overflowLogged = true
      }
      this.reporting += 1
      try {
        sent = await this.drain()
        // The drain that was running may have finished its last check just before this update
        // was queued; one more pass sends it.
        if (sent && this.engine.outboxLength > 0) sent = await this.drain()
      } finally {
        this.reporting -= 1
      }
      // A drain that failed in the engine (logged there) may have left this revalidation
      // recorded and unsent, with the outbox still reading as holding it.
      const failure = this.failedSince()
      if (failure !== undefined) throw failure.cause
      waiting = this.engine.outboxLength
      unsent = !sent && this.outboxEmptied === emptied
    } catch (err) {
      if (!failedEngine(err)) throw err
      const failed = new EngineFailedError(tags, err, true)
      this.log.error(failed.message)
      throw failed
    }
    if (unsent && this.headRefused && this.backingOff) {
      // Queued behind (or as) a revalidation Redis answered with an error (logged when it
      // happened); it is sent, or the failing one parked, after the engine's backoff. Said with
      // its tags, as any queued one is, but at warn only for the first of a run of refusals:
      // an error that lasts (OOM, MISCONF) would otherwise log a warning per revalidation for
      // as long as it lasts. The others are debug lines, counted in the line that ends the run,
      // and named by the line at close() when still queued then.
      // Retried, not promised: one that meets an error no retry fixes (WRONGTYPE) is parked,
      // with a line of its own.
      this.logQueued(
        'refused',
        `revalidation of ${what} applied on this instance; ${whyUnsent(this.sendFailure)}, so it is queued ` +
          `(${String(waiting)} waiting) and retried`,
        queuedAs,
        tags,
      )
    } else if (unsent && madeAfterClose) {
      this.log.warn(
        `revalidation of ${what} applied on this instance only: fleetcache's connections are closed (close())`,
      )
    } else if (unsent) {
      // Redis does not answer (the breaker open, a timeout, the connection down): the same
      // rule as for a run of refusals, or an outage of an hour with a revalidation a second
      // would log 3,600 warnings. The run ends with the line that says Redis is back.
      this.logQueued(
        'unanswered',
        `revalidation of ${what} applied on this instance; ${whyUnsent(this.sendFailure)}, so it is queued ` +
          `(${String(waiting)} waiting)` +
          (!this.stopped
            ? ' and will be sent when Redis answers'
            : // A command failed since close() was called (this one's send, say): that was the
              // attempt, which stops at the first failure; nothing more is sent.
              this.failedAtClose
              ? "; its send was close()'s last attempt"
              : '; close() makes one last attempt to send it'),
        queuedAs,
        tags,
      )
    }
  }

  /**
   * Logs a revalidation queued for want of Redis (`line` names its tags): at warn the first of
   * a quiet run, or the first after the run's kind changed (Redis refusing writes, then not
   * answering, or the reverse), saying that the ones after it are logged at debug; the others at
   * debug, counted in the line that ends the run and named by the line at close() when still
   * queued then.
   */
  private logQueued(
    kind: QuietKind,
    line: string,
    queuedAs: number,
    tags: readonly string[],
  ): void {
    const run = this.quietRun ?? { kind, refused: 0, unanswered: 0, quiet: [] }
    run[kind] += 1
    if (this.quietRun === undefined || this.quietRun.kind !== kind) {
      run.kind = kind
      this.quietRun = run
      this.log.warn(
        kind === 'refused'
          ? `${line}; while Redis refuses writes, the revalidations made after it are logged at debug, ` +
              `and counted when it accepts them again`
          : `${line}; while Redis does not answer, the revalidations made after it are logged at debug, ` +
              `and counted when it is back`,
      )
      return
    }
    // Those sent or set aside since are left out: they are not lost.
    const head = this.engine.outboxHeadSeq
    run.quiet = run.quiet.filter((q) => q.seq >= head)
    run.quiet.push({ seq: queuedAs, tags: [...tags], kind })
    this.log.debug(line)
  }

  /**
   * Sends queued revalidations, oldest first, until none is left or one fails. Resolves true
   * when the outbox is empty afterwards. One drain at a time; never rejects.
   */
  drain(): Promise<boolean> {
    if (this.draining !== undefined) return this.draining
    // Stopped: the last attempt (`sendLast`) was the queue's; nothing is sent after it.
    if (this.stopped) return Promise.resolve(this.engine.outboxLength === 0)
    if (
      this.script === undefined ||
      (this.engine.outboxLength === 0 && this.engine.resendLength === 0)
    ) {
      return Promise.resolve(true)
    }
    const run = this.replay(this.script)
      .then((ok) => {
        // An update or merge reply that named another state than the one the mirror follows
        // (a failover, a flush) owes a pull, which the engine arms the retry for when asked:
        // whoever drained (a request's revalidation, a reply's backlog signal, a pull, the
        // retry), an idle process must not wait for its next request to make it.
        this.poll()
        return ok
      })
      .catch((err: unknown) => this.engineFailed('revalidation replay', err))
      .finally(() => {
        if (this.draining === run) this.draining = undefined
      })
    this.draining = run
    return run
  }

  /** `last`: the attempt as the process closes, whatever the backoff and the breaker. */
  private async replay(script: ScriptRunner, last = false): Promise<boolean> {
    let sent = 0
    // Bounded: every pass removes the head or returns, and the outbox is bounded.
    while (this.engine.outboxLength > 0) {
      // The head failed a moment ago: the engine's backoff says when to try it again, and the
      // retry (`watch`) does (not the next successful command, nor the next request).
      if (this.backingOff && !last) {
        this.watch()
        return false
      }
      const argv = splitArgv(this.engine.planOutboxHead())
      const seq = this.engine.outboxHeadSeq
      let reply: unknown
      try {
        reply = await script(argv, 'write', last)
      } catch (err) {
        // The engine drops a revalidation refused for want of a permission, and parks one that
        // keeps meeting an error no retry fixes (WRONGTYPE after an operator mistake): the
        // queue moves on. Any other failure keeps it at the head, with a backoff.
        const refused = isReplyError(err)
        const { OutboxRefusal } = this.enums
        const outcome = refused
          ? this.engine.refuseOutbox(seq, err.message, this.now())
          : OutboxRefusal.Kept
        if (!refused) this.engine.failOutbox(seq, this.now())
        if (outcome === OutboxRefusal.Dropped) this.logRefused(err as Error)
        else if (outcome === OutboxRefusal.Parked) this.logParked(err as Error)
        else if (outcome !== OutboxRefusal.Kept) {
          this.log.debug(`revalidation refused by Redis and set aside: ${(err as Error).message}`)
        }
        if (outcome !== OutboxRefusal.Kept) {
          if (this.backlogged) this.backlogSetAside = true
          continue
        }
        this.headRefused = refused
        this.sendFailure = err
        this.noteFailedAtClose(err)
        if (!refused) this.backlogUnanswered = true
        // One line per run of failures of one revalidation, not one per attempt; none for the
        // breaker's probe, which fails in an outage already logged. None either when Redis did
        // not answer and a revalidation awaits this drain: the line it logs as queued names it
        // and why it was not sent (before, this error came first, then that warning: two lines
        // for one revalidation). An error reply keeps its line: its whole text is there only.
        const quiet = isCircuitOpen(err) || isFailedProbe(err) || (!refused && this.reporting > 0)
        if (this.stopped) {
          // Once close() was called nothing is retried: the closing line reports what is left.
          this.log.debug(`revalidation not sent to Redis at close: ${describe(err)}`)
        } else if (
          !quiet &&
          this.engine.outboxLength > 0 &&
          // The first failure of a backlog; or its first error reply, after failures without a
          // reply (a timeout, then OOM): Redis's text is said at debug only otherwise, and no
          // revalidation may come to name even its code.
          (!this.backlogged || (refused && !this.backlogRefusalLogged))
        ) {
          if (refused) this.backlogRefusalLogged = true
          this.log.error(
            `revalidation not sent to Redis, kept in the outbox and retried (${String(this.engine.outboxLength)} waiting): ${describe(err)}`,
          )
        } else if (!isCircuitOpen(err)) {
          this.log.debug(`revalidation not sent to Redis, retried: ${describe(err)}`)
        }
        this.backlogged = true
        this.watch()
        return false
      }
      this.engine.ackOutbox(seq)
      this.headRefused = false
      sent += 1
      try {
        if (reply instanceof Uint8Array) this.engine.applyUpdateReply(reply)
      } catch (err) {
        this.log.error(`unexpected tag update reply: ${describe(err)}`)
      }
    }
    if (this.backlogged) {
      const sentAll = `sent ${String(sent)} queued revalidation(s), in order`
      const refusedMade = this.quietRun?.refused ?? 0
      const made = refusedMade + (this.quietRun?.unanswered ?? 0)
      // Redis answered every attempt of this backlog with an error (it refused writes: OOM,
      // MISCONF, a read-only replica): it never went away, and the line says what changed.
      this.log.info(
        this.backlogUnanswered
          ? `redis is back: ${sentAll}` +
              (made > 0
                ? `; ${madeCount(made)} while ${refusedMade > 0 ? 'the queue waited' : 'it did not answer'}`
                : '')
          : this.backlogSetAside
            ? `${sentAll}, past the one(s) Redis refused (set aside: the lines above)` +
              (made > 0 ? `; ${madeCount(made)} while the queue waited` : '')
            : `redis accepts writes again (it had answered them with ${replyCode(this.sendFailure)}): ${sentAll}` +
              (made > 0 ? `; ${madeCount(made)} while it refused them` : ''),
      )
      this.backlogged = false
      this.backlogRefusalLogged = false
      this.backlogUnanswered = false
      this.backlogSetAside = false
      this.quietRun = undefined
    }
    // The queue is sent: a quiet run or a full outbox's run of debug lines ends here, also when
    // no failure of this replay's was seen (a revalidation that waited behind a drain whose
    // merge of records to give back failed), so the next outage's first line is a warning.
    if (this.engine.outboxLength === 0) {
      this.outboxEmptied += 1
      this.overflowLogged = false
      this.quietRun = undefined
    }
    return this.resend(script, last)
  }

  /**
   * Merges back, batch by batch, the tag records Redis lost and this process knows, or makes
   * the state's lost meta hash anew (a merge of no record). `last`: the attempt as the process
   * closes, whatever the breaker; a failure then is the line at close's to report.
   */
  private async resend(script: ScriptRunner, last = false): Promise<boolean> {
    let batches = 0
    // The tags given back, each counted once: a tag of a batch that failed may be queued again
    // (a newer record a later load found lacking) and go in a later batch of this run too.
    const given = new Set<string>()
    let remade = false
    // Said when the run ends, at a failure too: the batches before it landed.
    const report = (): void => {
      if (batches > 0) {
        this.log.info(
          `gave ${String(given.size)} lost tag record(s) back to Redis (${String(batches)} batch(es))`,
        )
      }
      if (remade) this.log.info("made the tag state's lost meta hash anew in Redis")
    }
    // Bounded: every pass acknowledges a batch taken off the queue or returns.
    while (this.engine.resendLength > 0) {
      const argv = splitArgv(this.engine.planResend())
      if (argv.length === 0) break
      const batch = recordsIn(argv)
      let reply: unknown
      try {
        reply = await script(argv, 'write', last)
      } catch (err) {
        report()
        this.resendFailure = err
        this.noteFailedAtClose(err)
        if (last) {
          this.log.debug(`lost tag records not given back to Redis at close: ${describe(err)}`)
          return false
        }
        if (isFailedProbe(err)) {
          this.log.debug(
            `lost tag records not yet given back to Redis (the breaker's probe): ${describe(err)}`,
          )
        } else if (!isCircuitOpen(err)) {
          const line =
            batch === 0
              ? `the tag state's lost meta hash not yet made anew in Redis: ${describe(err)}`
              : `lost tag records not yet given back to Redis (${String(this.engine.resendRecords)} waiting): ${describe(err)}`
          if (this.resendFailing) this.log.debug(line)
          else this.log.error(line)
          this.resendFailing = true
        }
        this.watch()
        return false
      }
      this.engine.ackResend()
      this.resendFailing = false
      if (batch === 0) remade = true
      else {
        batches += 1
        for (const tag of tagsIn(argv)) given.add(tag)
      }
      try {
        if (reply instanceof Uint8Array) this.engine.applyUpdateReply(reply)
      } catch (err) {
        this.log.error(`unexpected tag merge reply: ${describe(err)}`)
      }
    }
    report()
    return true
  }

  /**
   * Keeps trying on its own while Redis is out of reach or something waits to be sent: arms
   * the engine's retry (an armed one stays unless this one is due sooner), due when the
   * breaker admits its next probe (at least 100 ms, 1 s while the breaker is closed, sooner
   * for a revalidation a failed pull gave back), and sets the one timer (`poll`). The retry
   * refreshes the tag state (the probe, a failed pull's retry, a load to run) and sends what
   * waits, so an idle instance catches up, and replays its outbox, within about the breaker's
   * open time after Redis answers, not on its next request; armed for a send alone, it only
   * sends. The engine disarms it once nothing is left for it. Without a timer, does nothing.
   */
  watch(): void {
    if (this.timer === undefined || this.script === undefined || this.stopped) return
    this.engine.armRetry(this.now())
    this.poll()
  }

  /**
   * The one timer: does what is due now, and sets the timer for the engine's next time
   * (`pollTimeout`). The engine decides every part of it (docs/internals.md, "The one
   * timer"): the periodic pull a margin before the bound, a revalidation learned from an
   * announcement or made here, after a failed pull its backoff (none while a pull is out or
   * the mirror is not caught up), and the retry (`watch`; a failed pull's retry when the
   * pull timer has no time). This keeps only the timer and the time it is set for, so that
   * an event that moves nothing (a page write's announcement) does not set it again. Called
   * on every event that can move it, and when the timer fires: one that fires early (Node
   * runs a timer by the event loop's cached clock) finds nothing due and sets it again.
   */
  private poll(): void {
    const timer = this.timer
    if (timer === undefined || this.script === undefined || this.stopped) return
    const now = this.now()
    const { Wake } = this.enums
    const wake = this.engine.handleTimeout(now)
    if (wake === Wake.Pull) void this.pullAfterNow()
    else if (wake === Wake.Retry) this.retryNow(true)
    else if (wake === Wake.Send) this.retryNow(false)
    const at = this.engine.pollTimeout(now)
    if (this.wakeTimer !== undefined && !(at >= 0 && at === this.wakeAt)) {
      timer.clear(this.wakeTimer)
      this.wakeTimer = undefined
    }
    if (at < 0 || this.wakeTimer !== undefined) return
    this.wakeAt = at
    const handle = timer.set(
      () => {
        // Only this timer's own wake forgets it: a late one of a timer replaced since must
        // leave the pending one known, or the next poll would set a second.
        if (this.wakeTimer === handle) this.wakeTimer = undefined
        try {
          this.poll()
        } catch (err) {
          this.engineFailed('tag sync timer', err)
        }
      },
      Math.max(0, at - now),
    )
    this.wakeTimer = handle
  }

  /**
   * The retry, its time come: the breaker's probe or a failed pull's retry (a pull), when the
   * engine says it pulls (`Wake.Retry`; `Wake.Send`: only a send waits), then what waits is sent.
   */
  private retryNow(pull: boolean): void {
    // Not `refresh()`: the timer runs in the async context of the request that set it, and
    // that request's refresh must not stand in for this probe. A pull out already is one: one
    // queued behind it would ask Redis twice for one answer.
    void (pull ? (this.inflight ?? this.pullAfterNow()) : Promise.resolve())
      .then(() => this.drain())
      .then(() => {
        const open = this.engine.breakerState(this.now()) !== this.enums.BreakerState.Closed
        const waiting = this.engine.outboxLength > 0 || this.engine.resendLength > 0
        if (open || waiting) this.watch()
        // A send that reached another state owes a pull (the engine arms the retry for it).
        else this.poll()
      })
      .catch((err: unknown) => this.engineFailed('retry', err))
  }

  /**
   * Stops `watch`, the periodic pull and the subscription (the runtime is closing). A
   * revalidation still in the outbox reaches no other instance once this process is gone, and
   * the entries it invalidated would be served fresh by them; so does a tag record Redis lost
   * (a flush, a failover) that this process has not given back yet, unless another instance
   * that knows it gives it back. Both get one last attempt (whatever the backoff and the
   * breaker, each command under its budget): the queue in order, then the merges of lost
   * records, until one command fails, after the pull under way (which may be the one that
   * learns of a loss) and the send under way. What is left after it is logged as lost, one
   * line for each.
   */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow()
    return this.stopping
  }

  private async stopNow(): Promise<void> {
    this.stopped = true
    if (this.wakeTimer !== undefined) this.timer?.clear(this.wakeTimer)
    this.wakeTimer = undefined
    const unsubscribe = this.unsubscribe
    this.unsubscribe = undefined
    try {
      await this.sendLast()
    } finally {
      if (unsubscribe !== undefined) await unsubscribe()
    }
  }

  /**
   * The last attempt at the outbox and then at the records to give back, and the lines for
   * what it could not send. The outbox goes first, as in every drain: a revalidation it sends
   * takes its records off the queue of those to give back (each reaches Redis once), and the
   * merges wait for the queue's order. A command that fails ends the attempt: the next, a write
   * to the same Redis, would most likely fail alike, and close() would wait a budget more.
   */
  private async sendLast(): Promise<void> {
    const script = this.script
    if (script === undefined) return
    // One pull of its own unless one is out: a loss since the last (a failover that lost the
    // last writes, a flush) is learned only by a pull, and an instance that served no request
    // since would otherwise take the records Redis lacks with it. Only once the state was
    // loaded (before, it knows no record but its own queued ones, and a load at close would
    // read the whole state for nothing), and with nothing queued: a queue is left by writes
    // that failed, its last attempt most likely fails alike and no merge is tried after it,
    // and a pull would only report its own queued revalidations a second time (a state
    // answered in full lacks them).
    const own =
      this.failure === undefined &&
      this.engine.tagsSynced &&
      this.engine.outboxLength === 0 &&
      this.inflight === undefined
        ? this.pullAfterNow()
        : undefined
    await this.pullsUnderWay(own)
    if (this.queued !== undefined || this.inflight !== undefined) {
      // A load longer than close() waits for (a state that does not load within that time):
      // its comparison, which finds the records the state lacks, comes at its last page.
      this.pullsCut = true
      if (this.failure === undefined && !this.engine.tagsSynced) {
        this.log.warn(
          `closing before the tag state was loaded (${this.closeWaitLine()}): ` +
            `revalidation records this instance knows that Redis may have lost since its last ` +
            `pull are neither compared nor given back`,
        )
      }
    }
    // Checked after the pulls: one that found the engine trapped logged it, and a trapped
    // engine is asked nothing more.
    if (this.failure !== undefined || !this.waitingToSend()) return
    try {
      // A drain in progress first: the queue goes out in order, once.
      if (this.draining !== undefined) await this.draining
      // A command of that drain failed since stop() was called: that was the attempt.
      if (this.waitingToSend() && !this.failedAtClose) {
        // Registered as the drain: a reply's backlog signal or a retry in flight joins it
        // instead of sending the same head again.
        const last = this.replay(script, true)
        this.draining = last
        await last
      }
      const left = this.engine.outboxLength
      if (left > 0) {
        // Each was logged by its tags when it was queued ("revalidation of <tags> applied on
        // this instance; ... queued"): those lines say which, but those of a quiet run (Redis
        // refusing writes, or not answering) after its first, logged at debug: named here, each
        // as its line named it, all of them (no line at warn named them), and only those still
        // queued: one the queue sent since, or set aside (with a line of its own), is not lost
        // with it.
        const head = this.engine.outboxHeadSeq
        const quiet = this.quietRun?.quiet.filter((q) => q.seq >= head) ?? []
        const why =
          this.closePullUnanswered !== undefined
            ? this.notTriedForPull(this.closePullUnanswered)
            : whyUnsent(this.sendFailure)
        this.log.error(
          `closing with ${String(left)} queued revalidation(s) not sent to Redis ` +
            `(${why}): they took effect on this instance only and are lost ` +
            `to the rest of the fleet (the lines that queued them name their tags` +
            (quiet.length > 0
              ? `; ${String(quiet.length)} of them logged at debug only ${quietWhile(quiet)}: ${quiet.map((q) => shortList(q.tags)).join('; ')})`
              : ')'),
        )
      }
      this.logNotGivenBack(left > 0)
    } catch (err) {
      this.engineFailed('revalidation replay at close', err)
    }
  }

  /**
   * Waits for the pull under way when the process is told to stop, and the one queued behind
   * it (a load's next page among them, `own`: the one `sendLast` made), for at most
   * `closeWaitMs` (without it or a timer, at most `LOAD_STEPS` pulls): a pull is what learns
   * that Redis lost records (its reply names another state), and the records it finds lost
   * are this process's to give back at close. Not waited for, a pull out at close learned of
   * the loss after the last attempt, and those records were neither given back nor reported.
   * Each pull is under the read budget; one that fails ends the chain (a pull queued behind a
   * failed one does not ask Redis), so a Redis out of reach costs what is left of one budget;
   * one left unanswered ends the whole attempt (`failedAtClose`, `closePullUnanswered`).
   */
  private async pullsUnderWay(own: Promise<boolean> | undefined): Promise<void> {
    const timer = this.timer
    const wait = this.closeWaitMs
    let handle: unknown
    const deadline =
      timer !== undefined && wait !== undefined
        ? new Promise<'over'>((resolve) => {
            handle = timer.set(() => {
              resolve('over')
            }, wait)
          })
        : undefined
    try {
      for (let i = 0; deadline !== undefined || i < LOAD_STEPS; i++) {
        const pull = this.queued ?? this.inflight
        if (pull === undefined) return
        const ok = await (deadline === undefined ? pull : Promise.race([pull, deadline]))
        // Its time is over: the pull left out is cut (`pullsCut`, in `sendLast`).
        if (ok === 'over') return
        if (ok) continue
        // That pull got no answer (a timeout, the connection lost): it was the attempt's first
        // command to fail; a send after it would most likely fail alike, a write budget more.
        // One kept back by the open breaker asked Redis nothing, and one Redis answered with
        // an error says Redis is reachable, and so does one whose reply the engine did not
        // take: the attempt goes on. A pull queued behind a failed one asks Redis nothing: the
        // chain ends here either way.
        const err = this.pullFailure
        if (this.pullUnanswered && !isCircuitOpen(err) && !isReplyError(err)) {
          this.failedAtClose = true
          this.closePullUnanswered = { err, own: pull === own }
        }
        return
      }
    } finally {
      if (handle !== undefined) timer?.clear(handle)
    }
  }

  /** What close() waited for pulls, for the line that says the state was not loaded by then. */
  private closeWaitLine(): string {
    return this.timer !== undefined && this.closeWaitMs !== undefined
      ? `${String(this.closeWaitMs)} ms of pulls waited for`
      : `${String(LOAD_STEPS)} pulls waited for`
  }

  /** `<why>` for what the attempt did not try after a pull it waited for went unanswered. */
  private notTriedForPull(failed: { err: unknown; own: boolean }): string {
    const pull = failed.own ? 'the pull close() made' : 'a pull close() waited for'
    const refused = refusalOf(failed.err)
    return `not tried: ${
      isTimeout(failed.err)
        ? `Redis did not answer ${pull} in time`
        : refused !== undefined
          ? `${pull} got no connection: ${refused}`
          : `Redis was unreachable for ${pull}`
    }`
  }

  /** Notes a send's failure once `stop()` was called (`failedAtClose`). */
  private noteFailedAtClose(err: unknown): void {
    if (this.stopped && !isCircuitOpen(err)) this.failedAtClose = true
  }

  /** Something waits to be sent: queued revalidations, or records (or a meta hash) to give back. */
  private waitingToSend(): boolean {
    return this.engine.outboxLength > 0 || this.engine.resendLength > 0
  }

  /**
   * The line at close for the records Redis lost that the last attempt did not give back
   * (`notTried`: the outbox's last attempt failed first, so no merge was sent). Only the
   * state's meta hash to make anew (a merge of no record) loses nothing: the records are in
   * Redis, and an instance that loads the state makes it anew.
   */
  private logNotGivenBack(notTried: boolean): void {
    if (this.engine.resendLength === 0) return
    // The batch the next merge would send (the one that failed, planned again until
    // acknowledged): records are planned before a merge of none, so a merge of none means no
    // record waits. Nothing is sent after this (stopped).
    const batch = splitArgv(this.engine.planResend())
    const inBatch = recordsIn(batch)
    if (inBatch === 0) {
      this.log.debug(
        "closing without making the tag state's lost meta hash anew in Redis: no record is lost, " +
          'an instance that loads the state makes it anew',
      )
      return
    }
    // Records only, each a tag to revalidate again: not the meta hash this batch's merge
    // would make anew too. Then the batch is taken off the queue (nothing is sent after this).
    const waiting = this.engine.resendRecords
    this.engine.ackResend()
    const why = notTried
      ? 'not tried: the queued revalidations before them were not sent'
      : this.closePullUnanswered !== undefined
        ? this.notTriedForPull(this.closePullUnanswered)
        : whyUnsent(this.resendFailure, 'the merge')
    this.log.error(
      `closing with lost tag records not given back to Redis (${String(waiting)} waiting; ${why}): ` +
        `revalidations this instance knew that the tag state in Redis lacks (flushed, restarted ` +
        `empty, restored or failed over, or never sent there); other instances may serve entries ` +
        `those revalidations invalidated, unless an instance that knows them gives them back; ` +
        `among them: ${shortList(tagsIn(batch), waiting)}`,
    )
    if (!this.log.debugEnabled) return
    // Every one of them at debug, batch by batch as the merges would have sent them: taken off
    // the queue to be read (nothing is sent after this). Bounded: each pass takes a batch off.
    const every = tagsIn(batch)
    while (this.engine.resendLength > 0) {
      const next = splitArgv(this.engine.planResend())
      if (next.length === 0) break
      every.push(...tagsIn(next))
      this.engine.ackResend()
    }
    // A tag in the batch planned and queued again (a newer record found lacking since) is in
    // two batches: named once, as `waiting` counts it.
    this.log.debug(
      `closing: every lost tag record not given back to Redis: ${[...new Set(every)].map(tagText).join(',')}`,
    )
  }

  /** The outbox's head failed a moment ago and waits the engine's backoff. */
  private get backingOff(): boolean {
    return this.engine.outboxLength > 0 && this.engine.outboxRetryInMs(this.now()) > 0
  }

  /** The one line for a run of revalidations parked: Redis keeps answering them with an error. */
  private logParked(err: Error): void {
    this.log.error(
      `revalidation parked: Redis answered it repeatedly with an error that retrying does not fix, ` +
        `so it is set aside and the revalidations queued after it go on. It took effect on this instance; other instances ` +
        `may not see it (${String(this.engine.outboxParked)} parked so far; later ones are counted, not logged, until one ` +
        `goes through): ${err.message}`,
    )
  }

  /** The one line for a run of revalidations Redis refuses for want of a permission. */
  private logRefused(err: Error): void {
    const needs = this.engine.missingPermission(err.message)
    this.log.error(
      `revalidation dropped: Redis refused it, the ACL user needs ${needs === '' ? 'a permission fleetcache uses' : needs} ` +
        `(see ${ACL_DOC}). It took effect on this instance; other instances may not see it. ` +
        `Revalidations refused after it are dropped without a log line until one goes through: ${err.message}`,
    )
  }
}

/**
 * The records a planned `TAG_MERGE` gives back, from its argv (`EVALSHA`, the script, the key
 * count, the keys, the epoch candidate, then a tag and its record each): 0 for the merge that
 * only makes the meta hash anew.
 */
function recordsIn(argv: readonly string[]): number {
  const keys = Number(argv[2])
  return Number.isInteger(keys) ? Math.max(0, Math.floor((argv.length - 4 - keys) / 2)) : 0
}

/** The tags a planned `TAG_MERGE` gives records back for, from its argv (as `recordsIn`). */
function tagsIn(argv: readonly string[]): string[] {
  const first = 4 + Number(argv[2])
  const tags: string[] = []
  for (let i = 0; i < recordsIn(argv); i++) {
    const tag = argv[first + 2 * i]
    if (tag !== undefined) tags.push(tag)
  }
  return tags
}
