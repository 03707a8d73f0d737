import { now } from './clock'
import { consumerWillServerCache } from './consumer'
import { optionsFromEnv, resolveOptions, type FleetcacheOptions } from './config'
import { describe } from './log'
import { runtimeFor, type Runtime } from './runtime'
import { fly, redisDown, Step, type Judgement } from './flight'
import { abandon, writeIo } from './write-io'
import { writeEntry } from './write-driver'
import { bufferToStream, EarlyStream, streamToBuffer } from './streams'
import type { Durations } from './tags'
import { inspectWindow } from './envelope-window'
import { wasm, type Interface } from './wasm'

/** Next 16's `'use cache'` entry (`next/dist/server/lib/cache-handlers/types`). */
export interface CacheEntry {
  value: ReadableStream<Uint8Array>
  tags: string[]
  stale: number
  timestamp: number
  expire: number
  revalidate: number
}

/** Next 16's `cacheHandlers` interface, as Next 16.4 calls it. */
export interface CacheHandler {
  get(cacheKey: string, softTags: string[]): Promise<CacheEntry | undefined>
  set(cacheKey: string, pendingEntry: Promise<CacheEntry>): Promise<void>
  refreshTags(): Promise<void>
  getExpiration(tags: string[]): Promise<number>
  updateTags(tags: string[], durations?: Durations): Promise<void>
}

export interface UseCacheHandlerOptions extends FleetcacheOptions {
  /**
   * Key space of this handler. Handlers with the same name share entries; `fleetcache/use-cache`
   * uses `default` for both `cacheHandlers.default` and `cacheHandlers.remote`. `[a-z-]+`.
   */
  name?: string | undefined
}

/**
 * Entry keys are a pure function of the cache key; hashing one in wasm costs a few µs, a Map
 * hit a tenth of that. Only short keys are remembered, so the memo stays small.
 */
const KEY_MEMO_ENTRIES = 4096
const KEY_MEMO_MAX_LENGTH = 512

const { Outcome } = wasm

/** The engine's codes for what a read found. */
const Found = { Fresh: 0, Stale: 1, Missing: 2 } as const

const STEP_NAMES = [
  'hit',
  'stale: regenerating here',
  'stale: served as fresh while another instance regenerates',
  'lease',
  'poll',
  'miss: regenerating here',
  'miss: waited for another instance in vain, regenerating here',
  'miss: the other instance let its lease go without writing, regenerating here',
]

/** A servable entry as read, with the engine's presentations of it. */
interface Stored {
  payload: Buffer
  tags: string[]
  stale: number
  timestamp: number
  expire: number
  revalidate: number
  /** `revalidate` that presents it as fresh to a follower. */
  asFresh: number
  /**
   * `timestamp` and `revalidate` that make Next serve it once and regenerate it behind the
   * answer; NaN when Next cannot be told that without dropping it (then it is a miss).
   */
  staleTimestamp: number
  staleRevalidate: number
  /** Until when the in-process tier may keep it. */
  keepUntil: number
}

/**
 * The entry Next gets for the step the engine chose; undefined is a miss (Next regenerates).
 * `early` is the stream built during the Redis read, if there was one.
 */
function present(j: Judgement<Stored>, step: number, early?: EarlyStream): CacheEntry | undefined {
  const v = j.value
  if (v === undefined) {
    early?.discard()
    return undefined
  }
  let revalidate: number
  let timestamp = v.timestamp
  switch (step) {
    case Step.Serve:
      revalidate = v.revalidate
      break
    case Step.ServeStale:
      // Backdated, never a negative revalidate: Next copies an entry's revalidate into the
      // page that reads it, and a page below 1 s answers HTTP 500 (core:
      // stale_use_cache_presentation).
      if (Number.isNaN(v.staleTimestamp)) {
        early?.discard()
        return undefined
      }
      timestamp = v.staleTimestamp
      revalidate = v.staleRevalidate
      break
    case Step.ServeAsFresh:
      revalidate = v.asFresh
      break
    default:
      early?.discard()
      return undefined
  }
  return {
    // A fresh stream for every get: Next consumes it.
    value: early === undefined ? bufferToStream(v.payload) : early.fill(v.payload),
    tags: v.tags,
    stale: v.stale,
    timestamp,
    expire: v.expire,
    revalidate,
  }
}

class UseCacheHandler implements CacheHandler {
  /**
   * Writes in flight, so a `get` of the same key sees them (Next's contract). Each resolves to
   * the encoded envelope as soon as it exists (null when nothing will be stored), before the
   * Redis write: a reader never waits on the write's deadline.
   */
  private readonly pending = new Map<string, Promise<Buffer | null>>()
  private readonly keys = new Map<string, string>()
  /** This handler's key space; built once, so the name is checked at construction. */
  private readonly iface: Interface

  constructor(
    private readonly rt: Runtime,
    name: string,
  ) {
    this.iface = wasm.Interface.useCache(name)
  }

  private entryKey(cacheKey: string): string {
    let key = this.keys.get(cacheKey)
    if (key === undefined) {
      // Throws ERR_KEY_ILL_FORMED for a key with a lone surrogate: a miss and a log line
      // (get), not stored (set), never another key's value.
      key = this.rt.engine.entryKey(this.iface, cacheKey)
      if (cacheKey.length <= KEY_MEMO_MAX_LENGTH) {
        if (this.keys.size >= KEY_MEMO_ENTRIES) this.keys.clear()
        this.keys.set(cacheKey, key)
      }
    }
    return key
  }

  async get(cacheKey: string, softTags: string[]): Promise<CacheEntry | undefined> {
    const { store, log } = this.rt
    try {
      // Read before any await: Next calls this inside the consumer's work-unit store.
      const caches = consumerWillServerCache()
      const inFlight = this.pending.get(cacheKey)
      const written = inFlight === undefined ? null : await inFlight
      // Next refreshes the tag state before the first read of a request; a process that has
      // never loaded it (a refresh failed, or a caller outside Next) waits for one here, within
      // the read budget, rather than judge nothing fresh.
      if (!this.rt.engine.tagsSynced) await this.rt.tags.refresh()
      const key = this.entryKey(cacheKey)
      const soft = softTags.join('\0')
      const t = now()
      // This process's own write in flight, else the in-process tier (docs/decisions/0010-in-process-tier.md): judged like
      // a Redis reply, against the entry's lifetime and the tag mirror Next has just refreshed.
      const local = written ?? store.peek(key, t)
      let first: Judgement<Stored> | undefined
      let kept: Judgement<Stored> | undefined
      if (local !== null) {
        const j = this.judge(cacheKey, key, local, soft, t)
        if (j.found === Found.Fresh) return present(j, Step.Serve)
        // Redis is out of reach: what this process holds is the best there is.
        if (j.value !== undefined && redisDown(this.rt, t)) return this.handOut(j, Step.ServeStale)
        if (written !== null) first = j
        else if (j.value === undefined) store.forget(key)
        else kept = j
      }
      let early: EarlyStream | undefined
      if (first === undefined) {
        const reading = this.read(cacheKey, key, soft, t)
        // After the read is sent: the stream for a hit is built while the reply travels.
        if (this.rt.transport !== undefined) early = new EarlyStream()
        try {
          first = await reading
        } catch (err) {
          // Redis failed this read: what this process holds beats a miss.
          if (kept === undefined) {
            early?.discard()
            throw err
          }
          log.debug(`get ${key}: redis read failed (${describe(err)}), served from this process`)
          return this.handOut(kept, Step.ServeStale, early)
        }
      }
      if (first.value === undefined && kept !== undefined && redisDown(this.rt, now())) {
        return this.handOut(kept, Step.ServeStale, early)
      }
      const landing = await fly(this.rt, this.iface, cacheKey, first, t, caches, (value, at) =>
        this.judged(cacheKey, key, value, soft, at),
      )
      const entry = this.handOut(landing.judgement, landing.step, early)
      if (landing.step !== Step.Serve) {
        const who = caches ? ' (for a cache: a prerender or an outer cache)' : ''
        log.debug(`get ${key} ${STEP_NAMES[landing.step] ?? String(landing.step)}${who}`)
      }
      return entry
    } catch (err) {
      log.error(`get failed, treated as a miss: ${describe(err)}`)
      return undefined
    }
  }

  /**
   * `present`, and tells the engine when a stale entry is handed out: Next 16.4 may give a
   * request's answer to a page regeneration that joins it, and the engine then stamps that
   * page's write no later than the entry (crates/fleetcache-core/src/regen.rs).
   */
  private handOut(j: Judgement<Stored>, step: number, early?: EarlyStream): CacheEntry | undefined {
    const entry = present(j, step, early)
    if (entry !== undefined && step !== Step.Serve) {
      this.rt.engine.noteUseCacheAnswer(
        entry.tags.join('\0'),
        j.found,
        step,
        // When the entry was created, not the earlier timestamp a stale one is shown with:
        // a page that may hold it is stamped no later than that.
        j.value?.timestamp ?? entry.timestamp,
        now(),
      )
    }
    return entry
  }

  /** Reads the entry from Redis (shared with concurrent readers in this process) and judges it. */
  private async read(
    cacheKey: string,
    key: string,
    soft: string,
    t: number,
  ): Promise<Judgement<Stored>> {
    return this.judged(cacheKey, key, await this.rt.store.get(key, t), soft, t)
  }

  /** Judges a Redis reply and keeps a servable one in the in-process tier. */
  private judged(
    cacheKey: string,
    key: string,
    value: Buffer | null,
    soft: string,
    t: number,
  ): Judgement<Stored> {
    const { engine, store, log } = this.rt
    if (value === null) {
      engine.noteMiss(0)
      log.debug(`get ${key} miss`)
      return { found: Found.Missing, timestamp: Number.NaN, value: undefined }
    }
    const j = this.judge(cacheKey, key, value, soft, t)
    if (j.value !== undefined) store.remember(key, value, j.value.keepUntil)
    return j
  }

  /** What a stored envelope is worth now (the engine decides; this only collects its answers). */
  private judge(
    cacheKey: string,
    key: string,
    value: Buffer,
    soft: string,
    t: number,
  ): Judgement<Stored> {
    const { engine, log } = this.rt
    const outcome = inspectWindow(
      value,
      (prefix) => engine.inspect(cacheKey, prefix, value.byteLength, soft, t),
      () => engine.lastNeed,
    )
    const found = engine.useCacheFound(outcome, t)
    switch (outcome) {
      case Outcome.Fresh:
      case Outcome.Stale: {
        const tags = engine.lastTags
        return {
          found,
          timestamp: engine.lastTimestamp,
          value: {
            payload: value.subarray(engine.lastPayloadOffset),
            tags: tags === '' ? [] : tags.split('\0'),
            stale: engine.lastStale,
            timestamp: engine.lastTimestamp,
            expire: engine.lastExpire,
            revalidate: engine.lastRevalidate,
            asFresh: engine.followerRevalidate(t),
            staleTimestamp: engine.lastStaleTimestamp,
            staleRevalidate: engine.lastStaleRevalidate,
            keepUntil: engine.tierExpiry(t),
          },
        }
      }
      case Outcome.Expired:
        // The core says why: its own lifetime, or a tag.
        log.debug(`get ${key} ${engine.lastLookup}`)
        return { found, timestamp: engine.lastTimestamp, value: undefined }
      case Outcome.KeyMismatch:
        log.debug(`get ${key} hash collision with another key: miss`)
        return { found, timestamp: engine.lastTimestamp, value: undefined }
      default:
        log.error(
          `unreadable entry at ${key} (${engine.lastError || 'corrupt'}): treated as a miss`,
        )
        // An unreadable value never counts as "newer" than this read.
        return { found, timestamp: Number.MAX_VALUE, value: undefined }
    }
  }

  async set(cacheKey: string, pendingEntry: Promise<CacheEntry>): Promise<void> {
    let encoded: (value: Buffer | null) => void = () => undefined
    const written = new Promise<Buffer | null>((resolve) => {
      encoded = resolve
    })
    this.pending.set(cacheKey, written)
    // Once the write has started, it removes the pending entry itself when it lands.
    let writing = false as boolean
    const { engine, log } = this.rt
    try {
      let machine: ReturnType<typeof wasm.WriteMachine.useCache> | undefined
      try {
        const entry = await pendingEntry
        const payload = await streamToBuffer(entry.value)
        machine = wasm.WriteMachine.useCache(
          engine,
          this.iface,
          cacheKey,
          entry.tags.join('\0'),
          entry.timestamp,
          entry.revalidate,
          entry.expire,
          entry.stale,
          payload.byteLength,
          now(),
        )
        await writeEntry(engine, machine, payload, {
          ...writeIo(this.rt),
          built: (value, landed) => {
            encoded(Buffer.from(value.buffer, value.byteOffset, value.byteLength))
            writing = true
            void landed.then(() => {
              if (this.pending.get(cacheKey) === written) this.pending.delete(cacheKey)
            })
          },
        })
      } catch (err) {
        log.error(`set failed, entry not stored: ${describe(err)}`)
        // Others may be waiting for this process's regeneration: let them go.
        if (machine === undefined) void abandon(this.rt, this.iface, cacheKey)
      }
    } finally {
      if (!writing && this.pending.get(cacheKey) === written) this.pending.delete(cacheKey)
      // Idempotent: a no-op when the envelope was handed out already.
      encoded(null)
    }
  }

  refreshTags(): Promise<void> {
    return this.rt.tags.refresh()
  }

  getExpiration(tags: string[]): Promise<number> {
    try {
      return Promise.resolve(this.rt.engine.getExpiration(tags.join('\0'), now()))
    } catch (err) {
      this.rt.log.error(`getExpiration failed: ${describe(err)}`)
      return Promise.resolve(0)
    }
  }

  async updateTags(tags: string[], durations?: Durations): Promise<void> {
    try {
      await this.rt.tags.update(tags, durations, now())
    } catch (err) {
      this.rt.log.error(
        `revalidation of ${tags.join(',')} applied on this instance only, Redis not updated: ${describe(err)}`,
      )
    }
  }
}

/** A Next 16 `cacheHandlers` object. Options default to the environment of the running server. */
export function createUseCacheHandler(options?: UseCacheHandlerOptions): CacheHandler {
  let resolved
  if (options === undefined) {
    const env = optionsFromEnv()
    resolved = resolveOptions(env, env.deploymentSource)
  } else {
    resolved = resolveOptions(options)
  }
  return new UseCacheHandler(runtimeFor(resolved), options?.name ?? 'default')
}
