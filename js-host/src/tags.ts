import { now } from './clock'
import type { Engine } from './wasm'
import type { Logger } from './log'
import { describe } from './log'
import type { Transport } from './transport'
import { isCircuitOpen, runScript } from './transport'

/** Tags for a log line: the first few, each cut short, so hostile input cannot flood the log. */
function shortList(tags: readonly string[]): string {
  const shown = tags.slice(0, 5).map((t) => (t.length > 80 ? `${t.slice(0, 80)}…` : t))
  return tags.length > 5
    ? `${shown.join(',')} and ${String(tags.length - 5)} more`
    : shown.join(',')
}

/** An error reply from Redis (the transport contract's `ERR_REDIS_REPLY`), not a lost connection. */
function isReplyError(err: unknown): err is Error {
  return err instanceof Error && (err as Error & { code?: unknown }).code === 'ERR_REDIS_REPLY'
}

/** Where the log sends an operator whose ACL user lacks a permission. */
const ACL_DOC = "the ACL SETUSER line in docs/operating.md, 'Access control'"

/** Next's `durations` argument of `updateTags` / `revalidateTag`. */
export interface Durations {
  expire?: number
}

/**
 * Keeps the engine's tag mirror in step with Redis, and gets this process's revalidations to
 * Redis through the engine's outbox.
 *
 * Refreshes are coalesced: a caller that arrives while one is in flight waits for the next
 * one, which starts after it arrived, so every caller sees every revalidation completed before
 * its call (docs/failures.md, "Freshness") and a burst of requests costs two round trips, not one each.
 *
 * Revalidations are applied locally at once and queued in the engine; the queue is sent in
 * order, one update at a time, whenever Redis answers (on the revalidation itself, before
 * every refresh, and after any successful command while something waits), except while the
 * head waits the engine's backoff after a failed attempt: then the timer of `watch` sends it.
 * What cannot be sent stays queued and is logged once; what the bounded queue drops is logged
 * as an error. One that Redis refuses for want of an ACL permission is dropped, and one that
 * keeps meeting an error retrying does not fix is parked, so the queue moves on (the engine
 * decides both): one error line per run of either, not one per revalidation.
 */
export class TagSync {
  private inflight: Promise<boolean> | undefined
  private queued: Promise<void> | undefined
  private draining: Promise<boolean> | undefined
  /** Some revalidation could not be sent: the next successful replay says so in the log. */
  private backlogged = false
  /** The outbox's head last failed on an error reply (Redis answered), not for want of one. */
  private headRefused = false
  /** A refresh was refused for want of a permission and logged; none succeeded since. */
  private refreshRefused = false
  /** The timer of `watch`, while one is pending. */
  private retry: ReturnType<typeof setTimeout> | undefined
  private stopped = false

  constructor(
    private readonly engine: Engine,
    private readonly transport: Transport | undefined,
    private readonly log: Logger,
  ) {}

  /** Pulls tag changes from Redis. Never rejects: on failure the mirror stays as it was. */
  refresh(): Promise<void> {
    if (this.transport === undefined) return Promise.resolve()
    if (this.inflight === undefined) {
      this.inflight = this.pull().finally(() => {
        this.inflight = undefined
      })
      return this.inflight.then(() => undefined)
    }
    // When the refresh in flight failed, Redis is sick: another attempt would most likely cost
    // the waiters a second read budget for nothing, so they go on with the mirror as it is.
    this.queued ??= this.inflight.then((ok) => {
      this.queued = undefined
      return ok ? this.refresh() : undefined
    })
    return this.queued
  }

  /** One refresh; true when the mirror is now up to date with Redis. */
  private async pull(): Promise<boolean> {
    if (this.transport === undefined) return true
    // Queued revalidations go out alongside, not before: a replay is a write with the write
    // budget, and the request waiting on this refresh must not pay it. The mirror already
    // holds them (local records survive any refresh), so nothing is missed meanwhile.
    if (this.engine.outboxLength > 0) void this.drain()
    try {
      const reply = await runScript(
        this.transport,
        this.engine.planTagRefresh(),
        (sha) => this.engine.scriptSource(sha),
        { kind: 'read' },
      )
      if (!Buffer.isBuffer(reply)) throw new Error('tag refresh returned a non-string reply')
      const lost = this.engine.resendLength
      const changed = this.engine.applyRefresh(reply, now())
      if (changed > 0) this.log.debug(`tags: ${String(changed)} changed`)
      this.refreshRefused = false
      if (this.engine.resendLength > lost) {
        this.log.warn(
          `tag state in Redis lost ${String(this.engine.resendLength - lost)} revalidation record(s) this instance ` +
            `knew of (flushed, restarted empty, restored or failed over): this instance keeps them in force ` +
            `and gives them back to Redis`,
        )
      }
      if (this.engine.resendLength > 0) void this.drain()
      // Loading the whole state (a new process, a flush, a failover): one page per call, each
      // a bounded step in Redis, chained until the mirror is in sync. Requests meanwhile wait
      // for one step at most, and judge nothing tagged fresh until it is done.
      if (!this.engine.tagsSynced) void this.refresh()
      return true
    } catch (err) {
      // An open breaker was logged when it opened; one line per request would flood the logs.
      if (isCircuitOpen(err)) this.log.debug('tag refresh skipped: redis circuit open')
      else if (isReplyError(err) && this.engine.missingPermission(err.message) !== '') {
        // Refused for want of a permission: every request would fail alike, one line is enough.
        if (!this.refreshRefused) {
          this.refreshRefused = true
          this.log.error(
            `tag refresh refused by Redis: the ACL user needs ${this.engine.missingPermission(err.message)} ` +
              `(see ${ACL_DOC}); this instance does not see other instances' revalidations until that is fixed ` +
              `(before it has loaded the tag state once, it serves no tagged entry), and says so once: ${err.message}`,
          )
        } else this.log.debug(`tag refresh refused: ${err.message}`)
      } else this.log.error(`tag refresh failed, using the last known tag state: ${describe(err)}`)
      this.watch()
      return false
    }
  }

  /**
   * Records a revalidation: in this process at once, then fleet-wide in Redis, in order after
   * any earlier one that is still waiting. Never rejects: invalid input (no tag within the
   * core's byte limit) is logged and dropped; a Redis failure leaves the revalidation queued,
   * and says so in the log.
   */
  async update(
    tags: readonly string[],
    durations: Durations | undefined,
    now: number,
  ): Promise<void> {
    if (tags.length === 0) return
    const mode = durations === undefined ? 0 : 1
    const expire = durations?.expire ?? Number.NaN
    const joined = tags.join('\0')
    const what = `${shortList(tags)} (${durations === undefined ? 'expire now' : `stale, expire in ${String(durations.expire)} s`})`
    let dropped = ''
    try {
      if (this.transport === undefined) {
        // No Redis: the local mirror is all there is, nothing to queue.
        this.engine.planTagUpdate(joined, mode, expire, now)
      } else {
        dropped = this.engine.queueTagUpdate(joined, mode, expire, now)
      }
    } catch (err) {
      // Invalid input (no tag within the core's byte limit): refused on every instance alike.
      const longest = tags.reduce((m, t) => Math.max(m, t.length), 0)
      this.log.error(
        `revalidation refused (${String(tags.length)} tags, the longest ${String(longest)} characters): ${describe(err)}`,
      )
      return
    }
    // Tags past the core's byte limit are dropped one by one; the others apply.
    if (this.engine.lastDroppedTags !== '') {
      this.log.warn(`revalidation of ${shortList(tags)}: ${this.engine.lastDroppedTags}`)
    }
    this.log.debug(`revalidate ${what}`)
    if (this.transport === undefined) return
    if (dropped !== '') {
      this.log.error(
        `revalidation outbox full: dropped the oldest queued revalidation (${shortList(dropped.split('\0'))}); ` +
          `it took effect on this instance only (${String(this.engine.outboxDropped)} dropped so far)`,
      )
    }
    let sent = await this.drain()
    // The drain that was running may have finished its last check just before this update
    // was queued; one more pass sends it.
    if (sent && this.engine.outboxLength > 0) sent = await this.drain()
    if (!sent && this.headRefused && this.backingOff) {
      // Queued behind a revalidation Redis answered with an error (logged when it happened);
      // the timer of `watch` sends both, or parks the failing one, after the engine's backoff.
      this.log.debug(
        `revalidation of ${what} applied on this instance, queued (${String(this.engine.outboxLength)} waiting)`,
      )
    } else if (!sent) {
      this.log.warn(
        `revalidation of ${what} applied on this instance; Redis is unreachable, so it is queued ` +
          `(${String(this.engine.outboxLength)} waiting) and will be sent when Redis answers`,
      )
    }
  }

  /**
   * Sends queued revalidations, oldest first, until none is left or one fails. Resolves true
   * when the outbox is empty afterwards. One drain at a time; never rejects.
   */
  drain(): Promise<boolean> {
    if (this.draining !== undefined) return this.draining
    if (
      this.transport === undefined ||
      (this.engine.outboxLength === 0 && this.engine.resendLength === 0)
    ) {
      return Promise.resolve(true)
    }
    const run = this.replay(this.transport).finally(() => {
      if (this.draining === run) this.draining = undefined
    })
    this.draining = run
    return run
  }

  private async replay(transport: Transport): Promise<boolean> {
    let sent = 0
    // Bounded: every pass removes the head or returns, and the outbox is bounded.
    while (this.engine.outboxLength > 0) {
      // The head failed a moment ago: the engine's backoff says when to try it again, and the
      // timer of `watch` does (not the next successful command, nor the next request).
      if (this.backingOff) {
        this.watch()
        return false
      }
      const argv = this.engine.planOutboxHead()
      const seq = this.engine.outboxHeadSeq
      let reply: unknown
      try {
        reply = await runScript(transport, argv, (sha) => this.engine.scriptSource(sha), {
          kind: 'write',
        })
      } catch (err) {
        // The engine drops a revalidation refused for want of a permission, and parks one that
        // keeps meeting an error no retry fixes (WRONGTYPE after an operator mistake): the
        // queue moves on. Any other failure keeps it at the head, with a backoff.
        const outcome = isReplyError(err) ? this.engine.refuseOutbox(seq, err.message, now()) : 0
        if (!isReplyError(err)) this.engine.failOutbox(seq, now())
        if (outcome === 1) this.logRefused(err as Error)
        else if (outcome === 3) this.logParked(err as Error)
        else if (outcome !== 0) {
          this.log.debug(`revalidation refused by Redis and set aside: ${(err as Error).message}`)
        }
        if (outcome !== 0) continue
        this.headRefused = isReplyError(err)
        // One line per run of failures of one revalidation, not one per attempt.
        if (!isCircuitOpen(err) && this.engine.outboxLength > 0 && !this.backlogged) {
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
        if (Buffer.isBuffer(reply)) this.engine.applyUpdateReply(reply)
      } catch (err) {
        this.log.error(`unexpected tag update reply: ${describe(err)}`)
      }
    }
    if (this.backlogged) {
      this.backlogged = false
      this.log.info(`redis is back: sent ${String(sent)} queued revalidation(s), in order`)
    }
    return this.resend(transport)
  }

  /** Merges back, batch by batch, the tag records Redis lost and this process knows. */
  private async resend(transport: Transport): Promise<boolean> {
    let batches = 0
    // Bounded: every pass acknowledges a batch taken off the queue or returns.
    while (this.engine.resendLength > 0) {
      const argv = this.engine.planResend()
      if (argv.length === 0) break
      let reply: unknown
      try {
        reply = await runScript(transport, argv, (sha) => this.engine.scriptSource(sha), {
          kind: 'write',
        })
      } catch (err) {
        if (!isCircuitOpen(err)) {
          this.log.error(
            `lost tag records not yet given back to Redis (${String(this.engine.resendLength)} waiting): ${describe(err)}`,
          )
        }
        this.watch()
        return false
      }
      this.engine.ackResend()
      batches += 1
      try {
        if (Buffer.isBuffer(reply)) this.engine.applyUpdateReply(reply)
      } catch (err) {
        this.log.error(`unexpected tag merge reply: ${describe(err)}`)
      }
    }
    if (batches > 0)
      this.log.info(`gave lost tag records back to Redis (${String(batches)} batch(es))`)
    return true
  }

  /**
   * Keeps trying on its own while Redis is out of reach or something waits to be sent: one
   * timer at a time, due when the engine's breaker admits its next probe (at least 100 ms,
   * 1 s while the breaker is closed). It refreshes the tag state (the probe) and sends what
   * waits, so an idle instance catches up, and replays its outbox, within about the breaker's
   * open time after Redis answers, not on its next request. The timer does not keep the
   * process alive.
   */
  watch(): void {
    if (this.transport === undefined || this.stopped || this.retry !== undefined) return
    // The engine's decision: the breaker's next probe, or the outbox's backoff (100 ms to 5 s).
    const delay = this.engine.retryInMs(now())
    this.retry = setTimeout(() => {
      this.retry = undefined
      void this.refresh()
        .then(() => this.drain())
        .then(() => {
          const open = this.engine.breakerState(now()) !== 0
          const waiting = this.engine.outboxLength > 0 || this.engine.resendLength > 0
          if (open || waiting) this.watch()
        })
    }, delay)
    this.retry.unref()
  }

  /** Stops `watch` (the runtime is closing). */
  stop(): void {
    this.stopped = true
    if (this.retry !== undefined) clearTimeout(this.retry)
    this.retry = undefined
  }

  /** The outbox's head failed a moment ago and waits the engine's backoff. */
  private get backingOff(): boolean {
    return this.engine.outboxLength > 0 && this.engine.outboxRetryInMs(now()) > 0
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
