import { now } from './clock'
import { optionsFromEnv, resolveOptions, type FleetcacheOptions } from './config'
import { describe } from './log'
import { runtimeFor, type Runtime } from './runtime'
import { settleWithin } from './store'
import { bufferToStream, streamToBuffer } from './streams'
import type { Durations } from './tags'
import { IllFormedKeyError, isWellFormed } from './text'
import { wasm } from './wasm'

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

/** Bytes of a stored value handed to the engine to read the envelope header. */
const HEADER_WINDOW = 4096

/**
 * Entry keys are a pure function of the cache key; hashing one in wasm costs a few µs, a Map
 * hit a tenth of that. Only short keys are remembered, so the memo stays small.
 */
const KEY_MEMO_ENTRIES = 4096
const KEY_MEMO_MAX_LENGTH = 512

const { Outcome } = wasm

class UseCacheHandler implements CacheHandler {
  /**
   * Writes in flight, so a `get` of the same key sees them (Next's contract). Each resolves to
   * the encoded envelope as soon as it exists (null when nothing will be stored), before the
   * Redis write: a reader never waits on the write's deadline.
   */
  private readonly pending = new Map<string, Promise<Buffer | null>>()
  private readonly keys = new Map<string, string>()

  constructor(
    private readonly rt: Runtime,
    private readonly name: string,
  ) {
    // Fail at construction, not on the first request, when the name is unusable.
    rt.engine.entryKey(name, '')
  }

  private entryKey(cacheKey: string): string {
    let key = this.keys.get(cacheKey)
    if (key === undefined) {
      // A miss and a log line (get), not stored (set): never another key's value (issue 5).
      if (!isWellFormed(cacheKey)) throw new IllFormedKeyError()
      key = this.rt.engine.entryKey(this.name, cacheKey)
      if (cacheKey.length <= KEY_MEMO_MAX_LENGTH) {
        if (this.keys.size >= KEY_MEMO_ENTRIES) this.keys.clear()
        this.keys.set(cacheKey, key)
      }
    }
    return key
  }

  async get(cacheKey: string, softTags: string[]): Promise<CacheEntry | undefined> {
    const { engine, store, log } = this.rt
    try {
      const inFlight = this.pending.get(cacheKey)
      const written = inFlight === undefined ? null : await inFlight
      const key = this.entryKey(cacheKey)
      const t = now()
      const value = written ?? (await store.get(key, t))
      if (value === null) {
        log.debug(`get ${key} miss`)
        return undefined
      }
      let outcome = engine.inspect(
        cacheKey,
        value.subarray(0, HEADER_WINDOW),
        value.byteLength,
        softTags.join('\0'),
        t,
      )
      if (outcome === Outcome.NeedMore) {
        outcome = engine.inspect(
          cacheKey,
          value.subarray(0, engine.lastNeed),
          value.byteLength,
          softTags.join('\0'),
          t,
        )
      }
      switch (outcome) {
        case Outcome.Fresh:
        case Outcome.Stale: {
          const tags = engine.lastTags
          log.debug(`get ${key} ${outcome === Outcome.Fresh ? 'hit' : 'stale'}`)
          return {
            value: bufferToStream(value.subarray(engine.lastPayloadOffset)),
            tags: tags === '' ? [] : tags.split('\0'),
            stale: engine.lastStale,
            timestamp: engine.lastTimestamp,
            expire: engine.lastExpire,
            // A negative revalidate makes Next serve the entry and regenerate it in the background.
            revalidate: outcome === Outcome.Stale ? -1 : engine.lastRevalidate,
          }
        }
        case Outcome.Expired:
          log.debug(`get ${key} expired`)
          return undefined
        case Outcome.KeyMismatch:
          log.debug(`get ${key} hash collision with another key: miss`)
          return undefined
        default:
          log.error(
            `unreadable entry at ${key} (${engine.lastError || 'corrupt'}): treated as a miss`,
          )
          return undefined
      }
    } catch (err) {
      log.error(`get failed, treated as a miss: ${describe(err)}`)
      return undefined
    }
  }

  async set(cacheKey: string, pendingEntry: Promise<CacheEntry>): Promise<void> {
    let encoded: (value: Buffer | null) => void = () => undefined
    const written = new Promise<Buffer | null>((resolve) => {
      encoded = resolve
    })
    this.pending.set(cacheKey, written)
    // Once the write has started, it removes the pending entry itself when it lands.
    let writing = false
    const { engine, store, log } = this.rt
    try {
      const entry = await pendingEntry
      const payload = await streamToBuffer(entry.value)
      const t = now()
      const key = this.entryKey(cacheKey)
      const header = engine.planUseCacheSet(
        this.name,
        cacheKey,
        entry.tags.join('\0'),
        entry.timestamp,
        entry.revalidate,
        entry.expire,
        entry.stale,
        payload.byteLength,
        t,
      )
      const ttl = engine.lastTtlMs
      if (ttl < 0) {
        log.debug(`set ${key} skipped (not cacheable)`)
        return
      }
      const value = Buffer.concat([header, payload])
      encoded(value)
      const write = store.set(key, value, ttl, t).then(
        () => {
          log.debug(`set ${key} ${payload.byteLength} B ttl ${Math.round(ttl / 1000)} s`)
        },
        (err: unknown) => {
          log.error(`set failed, entry not stored: ${describe(err)}`)
        },
      )
      // Until the write lands, readers in this process get the envelope from `pending`.
      writing = true
      void write.finally(() => {
        if (this.pending.get(cacheKey) === written) this.pending.delete(cacheKey)
      })
      await settleWithin(write, engine.budgetMs(0))
    } catch (err) {
      log.error(`set failed, entry not stored: ${describe(err)}`)
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
