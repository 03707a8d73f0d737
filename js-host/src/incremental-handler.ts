import { now } from './clock'
import { consumerWillServerCache } from './consumer'
import {
  optionsFromEnv,
  resolveOptions,
  type FleetcacheOptions,
  type ResolvedOptions,
} from './config'
import { describe } from './log'
import { runtimeFor, type Runtime } from './runtime'
import { fly, redisDown, Step, type Judgement } from './flight'
import { abandon, writeIo } from './write-io'
import { writeEntry } from './write-driver'
import type { Durations } from './tags'
import { describeIncrementalValue } from './incremental-envelope'
import { decodeValue, ValueKind, type IncrementalValue } from './value-codec'
import { inspectWindow } from './envelope-window'
import { wasm } from './wasm'

export type { IncrementalValue } from './value-codec'

/** Next's `CacheControl`. */
export interface CacheControl {
  revalidate: number | false
  expire: number | undefined
}

/** What `get` resolves to on a hit (Next's `CacheHandlerValue`). */
export interface IncrementalCacheEntry {
  lastModified: number
  value: IncrementalValue | null
  cacheControl?: CacheControl
}

/** The `ctx` of `get` (Next passes one of several shapes; these are the fields read here). */
export interface IncrementalGetContext {
  kind?: string
  /** FETCH: the fetch's own tags. */
  tags?: string[]
  /** FETCH: the route's implicit `_N_T_` tags. */
  softTags?: string[]
  /** FETCH: the request's revalidate, preferred over the stored one (as Next does). */
  revalidate?: number | false
  [key: string]: unknown
}

/** The `ctx` of `set`. FETCH writes carry `fetchCache: true` and `tags`, no `cacheControl`. */
export interface IncrementalSetContext {
  kind?: string
  fetchCache?: boolean
  tags?: string[]
  cacheControl?: CacheControl
  [key: string]: unknown
}

/** Next 16's singular `cacheHandler` instance. */
export interface IncrementalCacheHandler {
  get(cacheKey: string, ctx?: IncrementalGetContext): Promise<IncrementalCacheEntry | null>
  set(cacheKey: string, data: IncrementalValue | null, ctx?: IncrementalSetContext): Promise<void>
  revalidateTag(tags: string | string[], durations?: Durations): Promise<void>
  resetRequestCache(): void
}

/** The class Next constructs (`new Handler(ctx)`), several times per request. */
export type IncrementalCacheHandlerClass = new (ctx?: unknown) => IncrementalCacheHandler

/** Options of `createIncrementalCacheHandler`: the same as the `'use cache'` handler's. */
export type IncrementalCacheHandlerOptions = FleetcacheOptions

/** The singular handler's key space (segment `inc`), a typed value: never a handler name. */
const IFACE = wasm.Interface.incremental()
/** Entry keys are pure functions of the cache key; remember the short ones (see use-cache). */
const KEY_MEMO_ENTRIES = 4096
const KEY_MEMO_MAX_LENGTH = 512

const { Outcome } = wasm

/** The engine's codes for what a read found. */
const Found = { Fresh: 0, Stale: 1, Missing: 2 } as const

/** What one `get` reads and how it judges it. */
interface ReadContext {
  cacheKey: string
  key: string
  isFetch: boolean
  soft: string
  requestRevalidate: number
  kind: string | undefined
}

/** Whether this process is a `next build` worker (NEXT_PHASE is unset under `next start`). */
function isBuildPhase(): boolean {
  return process.env.NEXT_PHASE === 'phase-production-build'
}

function uniq(tags: Iterable<string>): string[] {
  return [...new Set(tags)]
}

/**
 * One process's singular handler. Next creates a new instance of the class for every
 * `IncrementalCache` (about three per request), so instances hold nothing but a reference to
 * this object, which lives as long as the runtime.
 */
class IncrementalCore {
  private readonly keys = new Map<string, string>()

  constructor(readonly rt: Runtime) {}

  private entryKey(cacheKey: string): string {
    let key = this.keys.get(cacheKey)
    if (key === undefined) {
      key = this.rt.engine.entryKey(IFACE, cacheKey)
      if (cacheKey.length <= KEY_MEMO_MAX_LENGTH) {
        if (this.keys.size >= KEY_MEMO_ENTRIES) this.keys.clear()
        this.keys.set(cacheKey, key)
      }
    }
    return key
  }

  async get(
    cacheKey: string,
    ctx: IncrementalGetContext = {},
    onDemand = false,
  ): Promise<IncrementalCacheEntry | null> {
    const started = now()
    const { entry, step } = await this.answer(cacheKey, ctx)
    try {
      // Where a regeneration of this key begins, if it does: its write is stamped with it.
      this.rt.engine.noteIncrementalRead(cacheKey, step, onDemand, started)
    } catch (err) {
      this.rt.log.error(`inc get: regeneration start not recorded: ${describe(err)}`)
    }
    return entry
  }

  /** The answer to a `get`, with the lease step it ended on (what Next does next). */
  private async answer(
    cacheKey: string,
    ctx: IncrementalGetContext,
  ): Promise<{ entry: IncrementalCacheEntry | null; step: number }> {
    const serve = (entry: IncrementalCacheEntry | null | undefined, step: number) => ({
      entry: entry ?? null,
      step: entry === undefined || entry === null ? Step.Regenerate : step,
    })
    const { store, tags, log } = this.rt
    try {
      // A FETCH read inside a page's regeneration: what it returns is baked into the page.
      const caches = consumerWillServerCache()
      const key = this.entryKey(cacheKey)
      const isFetch = ctx.kind === 'FETCH'
      const soft = isFetch ? uniq([...(ctx.tags ?? []), ...(ctx.softTags ?? [])]).join('\0') : ''
      const requestRevalidate =
        isFetch && typeof ctx.revalidate === 'number' ? ctx.revalidate : Number.NaN
      const how: ReadContext = { cacheKey, key, isFetch, soft, requestRevalidate, kind: ctx.kind }
      // No refreshTags hook on this interface: pull tag changes alongside the entry, so the
      // decision below sees every revalidation finished before this request, at no extra
      // round trip of latency (the refresh is coalesced with the other handler's).
      const refreshed = tags.refresh()
      const t0 = now()
      const local = store.peek(key, t0)
      let kept: Judgement<IncrementalCacheEntry> | undefined
      if (local !== null) {
        // The in-process tier (docs/decisions/0010-in-process-tier.md), judged only once the tag mirror is current.
        await refreshed
        const t = now()
        const j = this.judge(how, local, t)
        if (j.found === Found.Fresh) return serve(j.value, Step.Serve)
        if (j.value !== undefined && redisDown(this.rt, t)) return serve(j.value, Step.ServeStale)
        if (j.value === undefined) store.forget(key)
        else kept = j
      }
      let value: Buffer | null
      try {
        ;[value] = await Promise.all([store.get(key, t0), refreshed])
      } catch (err) {
        // Redis failed this read: what this process holds beats a miss, a copy kept for
        // outages only included.
        if (kept?.value === undefined) {
          const held = store.fallback(key, now())
          if (held !== null) {
            const j = this.judge(how, held, now())
            if (j.value !== undefined) kept = j
          }
        }
        if (kept?.value === undefined) throw err
        log.debug(`inc get ${key}: redis read failed (${describe(err)}), served from this process`)
        return serve(kept.value, Step.ServeStale)
      }
      const t = now()
      const first = this.judged(how, value, t)
      if (first.value === undefined && kept !== undefined && redisDown(this.rt, t)) {
        return serve(kept.value, Step.ServeStale)
      }
      const landing = await fly(this.rt, IFACE, cacheKey, first, t, caches, (value, at) =>
        this.judged(how, value, at),
      )
      const entry = landing.judgement.value
      if (entry === undefined) return serve(null, landing.step)
      switch (landing.step) {
        case Step.Serve:
        case Step.ServeStale:
          return serve(entry, landing.step)
        case Step.ServeAsFresh:
          // A follower: another instance regenerates, so Next must see no staleness here.
          log.debug(`inc get ${key} stale: served as fresh while another instance regenerates`)
          return serve({ ...entry, lastModified: now() }, landing.step)
        default:
          log.debug(`inc get ${key} miss: regenerating here (step ${String(landing.step)})`)
          return serve(null, landing.step)
      }
    } catch (err) {
      log.error(`inc get failed, treated as a miss: ${describe(err)}`)
      return serve(null, Step.Regenerate)
    }
  }

  /** Judges a Redis reply and keeps a servable one in the in-process tier. */
  private judged(
    how: ReadContext,
    value: Buffer | null,
    t: number,
  ): Judgement<IncrementalCacheEntry> {
    const { engine, store, log } = this.rt
    if (value === null) {
      engine.noteMiss(1)
      log.debug(`inc get ${how.key} miss`)
      return { found: Found.Missing, timestamp: Number.NaN, value: undefined }
    }
    const j = this.judge(how, value, t)
    if (j.value !== undefined) store.remember(how.key, value, j.keepUntil, j.outageOnly)
    return j
  }

  /** What a stored envelope is worth now; the engine decides, this decodes what it serves. */
  private judge(
    how: ReadContext,
    value: Buffer,
    t: number,
  ): Judgement<IncrementalCacheEntry> & { keepUntil: number; outageOnly: boolean } {
    const { engine, log } = this.rt
    const { cacheKey, key, isFetch, soft, requestRevalidate } = how
    const miss = (timestamp: number) => ({
      found: Found.Missing,
      timestamp,
      value: undefined,
      keepUntil: t,
      outageOnly: false,
    })
    const outcome = inspectWindow(
      value,
      (prefix) =>
        engine.inspectIncremental(cacheKey, prefix, value.byteLength, soft, requestRevalidate, t),
      () => engine.lastNeed,
    )
    switch (outcome) {
      case Outcome.Fresh:
      case Outcome.Stale:
        break
      case Outcome.Expired:
        // The core says why: its own lifetime, or a tag.
        log.debug(`inc get ${key} ${engine.lastLookup}`)
        return miss(engine.lastTimestamp)
      case Outcome.KeyMismatch:
        log.debug(`inc get ${key} hash collision with another key: miss`)
        return miss(engine.lastTimestamp)
      default:
        log.error(
          `unreadable entry at ${key} (${engine.lastError || 'corrupt'}): treated as a miss`,
        )
        // An unreadable value never counts as "newer" than this read.
        return miss(Number.MAX_VALUE)
    }
    const found = engine.incrementalFound(outcome, requestRevalidate, t)
    const timestamp = engine.lastTimestamp
    const keepUntil = engine.tierExpiry(t)
    const outageOnly = engine.tierOutageOnly
    const kind = engine.lastValueKind
    // Next throws an InvariantError when a FETCH read finds another kind or vice versa.
    if (isFetch !== (kind === ValueKind.FETCH) && !(kind === ValueKind.null && !isFetch)) {
      log.error(`entry at ${key} has value kind ${String(kind)}, read as ${String(how.kind)}: miss`)
      return miss(timestamp)
    }
    const lengths = engine.lastParts
    const parts: Buffer[] = new Array<Buffer>(lengths.length)
    let off = engine.lastPayloadOffset
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i] ?? 0
      parts[i] = value.subarray(off, off + len)
      off += len
    }
    const lastModified = engine.lastModified
    const hasCacheControl = engine.lastHasCacheControl
    const r = engine.lastCacheRevalidate
    const e = engine.lastCacheExpire
    let decoded: IncrementalValue | null
    try {
      decoded = decodeValue(kind, engine.lastValueFlags, engine.lastSegments, parts)
    } catch (err) {
      log.error(`unreadable value at ${key} (${describe(err)}): treated as a miss`)
      return miss(Number.MAX_VALUE)
    }
    const entry: IncrementalCacheEntry = { lastModified, value: decoded }
    if (hasCacheControl) {
      entry.cacheControl = {
        revalidate: Number.isNaN(r) ? false : r,
        expire: Number.isNaN(e) ? undefined : e,
      }
    }
    log.debug(`inc get ${key} ${found === Found.Fresh ? 'hit' : 'stale'}`)
    return { found, timestamp, value: entry, keepUntil, outageOnly }
  }

  async set(
    cacheKey: string,
    data: IncrementalValue | null,
    ctx: IncrementalSetContext = {},
  ): Promise<void> {
    const { engine, log } = this.rt
    let machine: ReturnType<typeof wasm.WriteMachine.incremental> | undefined
    try {
      const v = describeIncrementalValue(data, ctx)
      // Refuses a key that is not well-formed UTF-16 (ERR_KEY_ILL_FORMED).
      machine = wasm.WriteMachine.incremental(
        engine,
        cacheKey,
        v.kind,
        v.flags,
        v.segments,
        v.tags.join('\0'),
        v.revalidate,
        v.expire,
        Uint32Array.from(v.parts, (p) => p.byteLength),
        now(),
      )
      await writeEntry(engine, machine, v.parts, writeIo(this.rt))
    } catch (err) {
      log.error(`inc set failed, entry not stored: ${describe(err)}`)
      // Others may be waiting for this process's regeneration: let them go.
      if (machine === undefined) void abandon(this.rt, IFACE, cacheKey)
    }
  }

  async revalidateTag(tags: string | string[], durations?: Durations): Promise<void> {
    const list = typeof tags === 'string' ? [tags] : tags
    if (list.length === 0) return
    const { engine, log } = this.rt
    try {
      const t = now()
      const mode = durations === undefined ? 0 : 1
      const expire = durations?.expire ?? Number.NaN
      // Next sends every revalidation to the cacheHandlers' updateTags too, in the same tick;
      // when fleetcache's use-cache handler has just recorded it, it is already on its way to
      // Redis (docs/decisions/0005).
      if (engine.revalidationRecorded(list.join('\0'), mode, expire, t)) {
        log.debug(`inc revalidateTag ${list.join(',')}: already recorded by updateTags`)
        return
      }
      await this.rt.tags.update(list, durations, t)
    } catch (err) {
      log.error(
        `revalidation of ${list.join(',')} applied on this instance only, Redis not updated: ${describe(err)}`,
      )
    }
  }
}

/**
 * Whether Next constructed the handler for an on-demand revalidation (`res.revalidate()`,
 * `x-prerender-revalidate`): the request's headers come in the constructor's context.
 */
function isOnDemandRevalidation(ctx: unknown): boolean {
  if (typeof ctx !== 'object' || ctx === null) return false
  const headers = (ctx as { _requestHeaders?: unknown })._requestHeaders
  if (typeof headers !== 'object' || headers === null) return false
  const v = (headers as Record<string, unknown>)['x-prerender-revalidate']
  return typeof v === 'string' ? v !== '' : Array.isArray(v) && v.length > 0
}

/** Options for the build phase: no Redis (see docs/decisions/0006). */
function forPhase(resolved: ResolvedOptions): ResolvedOptions {
  return isBuildPhase() && resolved.redisUrl !== undefined
    ? { ...resolved, redisUrl: undefined }
    : resolved
}

/**
 * A Next 16 singular `cacheHandler` class backed by fleetcache. All state lives in the shared
 * runtime for `options` (the same engine, tag mirror and Redis connection as a `'use cache'`
 * handler with the same options), so constructing the class is free.
 */
export function createIncrementalCacheHandler(
  options?: IncrementalCacheHandlerOptions,
): IncrementalCacheHandlerClass {
  let resolved: ResolvedOptions
  if (options === undefined) {
    const env = optionsFromEnv()
    resolved = resolveOptions(env, env.deploymentSource)
  } else {
    resolved = resolveOptions(options)
  }
  resolved = forPhase(resolved)
  let core: IncrementalCore | undefined
  // Created on first use: Next loads the module in build workers and servers alike, and the
  // runtime is shared with (or created for) the 'use cache' handler of the same options.
  const shared = (): IncrementalCore => (core ??= new IncrementalCore(runtimeFor(resolved)))

  return class FleetcacheIncrementalHandler implements IncrementalCacheHandler {
    /** This request is an on-demand revalidation: Next regenerates whatever `get` finds. */
    private readonly onDemand: boolean

    // Next passes a context (fs, flushToDisk, ...) meant for file-system caches; only the
    // request's headers are read here.
    constructor(ctx?: unknown) {
      shared()
      this.onDemand = isOnDemandRevalidation(ctx)
    }

    get(cacheKey: string, ctx?: IncrementalGetContext): Promise<IncrementalCacheEntry | null> {
      return shared().get(cacheKey, ctx, this.onDemand)
    }

    set(
      cacheKey: string,
      data: IncrementalValue | null,
      ctx?: IncrementalSetContext,
    ): Promise<void> {
      return shared().set(cacheKey, data, ctx)
    }

    revalidateTag(tags: string | string[], durations?: Durations): Promise<void> {
      return shared().revalidateTag(tags, durations)
    }

    /** Nothing is memoized per request: every get already reads Redis and the mirror. */
    resetRequestCache(): void {
      /* nothing to reset */
    }
  }
}
