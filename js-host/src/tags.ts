import type { Engine } from './wasm'
import type { Logger } from './log'
import { describe } from './log'
import type { Transport } from './transport'
import { runScript } from './transport'

/** Next's `durations` argument of `updateTags` / `revalidateTag`. */
export interface Durations {
  expire?: number
}

/**
 * Keeps the engine's tag mirror in step with Redis. Refreshes are coalesced: a caller that
 * arrives while one is in flight waits for the next one, which starts after it arrived, so
 * every caller sees every revalidation completed before its call (design §3) and a burst of
 * requests costs two round trips, not one each.
 */
export class TagSync {
  private inflight: Promise<void> | undefined
  private queued: Promise<void> | undefined

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
      return this.inflight
    }
    this.queued ??= this.inflight.then(() => {
      this.queued = undefined
      return this.refresh()
    })
    return this.queued
  }

  private async pull(): Promise<void> {
    if (this.transport === undefined) return
    try {
      const reply = await runScript(this.transport, this.engine.planTagRefresh(), (sha) =>
        this.engine.scriptSource(sha),
      )
      if (!Buffer.isBuffer(reply)) throw new Error('tag refresh returned a non-string reply')
      const changed = this.engine.applyRefresh(reply)
      if (changed > 0) this.log.debug(`tags: ${changed} changed`)
    } catch (err) {
      this.log.error(`tag refresh failed, using the last known tag state: ${describe(err)}`)
    }
  }

  /**
   * Records a revalidation: in this process at once, then fleet-wide in Redis. Rejects when
   * Redis could not be updated (the local part has happened either way).
   */
  async update(
    tags: readonly string[],
    durations: Durations | undefined,
    now: number,
  ): Promise<void> {
    if (tags.length === 0) return
    const mode = durations === undefined ? 0 : 1
    const expire = durations?.expire ?? Number.NaN
    const argv = this.engine.planTagUpdate(tags.join('\0'), mode, expire, now)
    this.log.debug(
      `revalidate ${tags.join(',')} ${durations === undefined ? 'expire now' : `stale, expire in ${String(durations.expire)} s`}`,
    )
    if (this.transport === undefined) return
    const reply = await runScript(this.transport, argv, (sha) => this.engine.scriptSource(sha))
    if (Buffer.isBuffer(reply)) this.engine.applyUpdateReply(reply)
  }
}
