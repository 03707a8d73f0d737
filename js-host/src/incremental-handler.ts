import { currentTurn, now } from './clock'
import {
  localOnlyPhase,
  optionsFromEnv,
  resolveOptions,
  type FleetcacheOptions,
  type ResolvedOptions,
} from './config'
import { joinTags } from './argv'
import { describe, shortList } from './log'
import { runtimeFor, type Runtime } from './runtime'
import {
  leaseToken,
  ReadMachines,
  readNow,
  tierCopyKept,
  writeTexts,
  type Answer,
  type ReadIo,
  type ReadResult,
} from './read-driver'
import { freeAnswer, logAnswerSafely, nodeReadIo, readConsumer } from './read-io'
import { abandon, writeIo } from './write-io'
import { writeEntry } from './write-driver'
import type { Durations } from './tags'
import { currentCall, openRequestScope } from './consumer'
import { describeIncrementalValue } from './incremental-envelope'
import { engineFailure } from './tag-sync'
import { decodeValue, type IncrementalValue } from './value-codec'
import type * as Wasm from '../wasm/node/fleetcache_wasm'
import { wasm, type ReadMachine } from './wasm'

/** Every `ValueKind` the binding knows, by its number, to read one back from the fields area. */
const KINDS = new Map<number, Wasm.ValueKind>(
  Object.values(wasm.ValueKind)
    .filter((v): v is Wasm.ValueKind => typeof v === 'number')
    .map((v) => [v, v]),
)

export type { IncrementalValue } from './value-codec'

/** The answer sources that serve the tier's own bytes object (a Set: no enum comparison). */
const FROM_TIER = new Set<number>([wasm.Source.Tier, wasm.Source.Kept])

/**
 * The kinds whose decoded value is memoised for tier hits, as the core says
 * (`memoisedKind`, core `ValueKind::memoised`): asked once per kind here, not per hit.
 */
const MEMOISED = new Set<number>([...KINDS.keys()].filter((k) => wasm.memoisedKind(k)))

/**
 * The count of `{`, `[`, `:` and `,` bytes in a value's JSON part: what the core's charge of a
 * memo needs from the host, which alone holds the bytes (`memoryCharge`, core
 * `LruIndex::charge_decoded`, which owns the formula).
 */
export function structuralBytes(json: Uint8Array | undefined): number {
  let structural = 0
  if (json !== undefined) {
    for (let i = 0; i < json.length; i++) {
      const c = json[i]
      // { [ : ,
      if (c === 0x7b || c === 0x5b || c === 0x3a || c === 0x2c) structural++
    }
  }
  return structural
}

/** A copy of a headers object whose array values are copies too. */
function copyHeaders<H extends Record<string, unknown>>(h: H | undefined): H | undefined {
  if (h === undefined) return undefined
  const out: Record<string, unknown> = {}
  for (const k in h) {
    const x = h[k]
    out[k] = Array.isArray(x) ? [...(x as unknown[])] : x
  }
  return out as H
}

/**
 * A shape of a memoised value of its own for one hit, so that nothing Next does to what `get`
 * returned reaches a later hit: a new value object, a new headers object (arrays copied) and a
 * new `segmentData` Map; strings are immutable and shared, and so are the Buffers, which are
 * views of the tier's bytes on every hit with or without a memo.
 *
 * What Next does with them (next 16.3.8, target/next-releases/16.3.8/next-incremental/
 * node_modules/next/dist): server/lib/incremental-cache/index.js `get` builds its own entry
 * around `cacheData.value` (line 482: `value: cacheData.value`); server/response-cache/utils.js
 * copies `headers` into the response cache entry by reference; build/templates/app-route.js
 * reads `cacheEntry.value.headers` through `fromNodeOutgoingHttpHeaders` (a new Headers);
 * no `segmentData.set/delete` nor an assignment into a value's fields or its `headers` was
 * found in server/response-cache, server/lib/incremental-cache, build/templates/app-page.js,
 * server/base-server.js. Next's own file-system cache hands the same object to every hit of
 * its memory cache (file-system-cache.js `memoryCache.get`). The copies are the guard against
 * a release or a plugin that does mutate.
 */
function fresh(v: IncrementalValue | null): IncrementalValue | null {
  if (v === null) return null
  // Fields set only when present: an absent field stays absent, as the decode left it.
  if (v.kind === 'APP_PAGE') {
    const out = { ...v }
    if (v.headers !== undefined) out.headers = copyHeaders(v.headers)
    if (v.segmentData !== undefined) out.segmentData = new Map(v.segmentData)
    return out
  }
  if (v.kind === 'APP_ROUTE') return { ...v, headers: copyHeaders(v.headers) ?? v.headers }
  return v
}

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
  /** FETCH: which `fetch` / `unstable_cache` call of the render (or of the process) reads. */
  fetchIdx?: unknown
  [key: string]: unknown
}

/** The `ctx` of `set`. FETCH writes carry `fetchCache: true` and `tags`, no `cacheControl`. */
export interface IncrementalSetContext {
  kind?: string
  fetchCache?: boolean
  tags?: string[]
  cacheControl?: CacheControl
  /** FETCH: the writing call's `fetchIdx`, as in its read's context. */
  fetchIdx?: unknown
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

function uniq(tags: Iterable<string>): string[] {
  return [...new Set(tags)]
}

/** No read of the key by the writing request: the engine's record of the key stamps it. */
const NO_OWN_READ: OwnRead = { start: Number.NaN, freshAt: Number.NaN, freshDue: Number.NaN }
/** A served value's stamp for a write of it back, and when it was made. */
type WrittenBack = readonly [stamp: number, made: number]
const NOT_WRITTEN_BACK: WrittenBack = [Number.NaN, Number.NaN]

/** Keys one handler instance remembers its reads of; past it the oldest is forgotten. */
const OWN_READS_MAX = 256

/** What one handler instance's reads of a key left (core `Own`): each field the least over its answers, NaN for none. */
interface OwnRead {
  start: number
  freshAt: number
  freshDue: number
}

/** The lesser, where only one is a number, that one (core `Own::least`). */
function least(a: number, b: number): number {
  return a < b || Number.isNaN(b) ? a : b
}

/**
 * The call of a `fetch` or `unstable_cache` a read or write belongs to: Next's `fetchIdx`,
 * the same number in the call's `get` and `set` context (patch-fetch.js, unstable-cache.js,
 * every 16.x from 16.0 to 16.5), with what the call runs in (`currentCall`). Undefined for a
 * page or route entry, whose context has none.
 */
interface Call {
  readonly idx: number
  readonly owner: object | undefined
}

/** The call `ctx` (a `get` or `set` context) belongs to, if it names one. */
function callOf(ctx: { fetchIdx?: unknown }): Call | undefined {
  const idx = ctx.fetchIdx
  if (typeof idx !== 'number' || !Number.isFinite(idx)) return undefined
  return { idx, owner: currentCall() }
}

/** A map of `OwnReads`, past `OWN_READS_MAX` keys losing its oldest. */
function noteIn(reads: Map<string, OwnRead>, key: string): OwnRead {
  let had = reads.get(key)
  if (had === undefined) {
    // An instance that outlives a request (a custom server's, or the one Next shares between
    // calls) must not grow without bound.
    if (reads.size >= OWN_READS_MAX) {
      const oldest = reads.keys().next()
      if (oldest.done !== true) reads.delete(oldest.value)
    }
    had = { ...NO_OWN_READ }
    reads.set(key, had)
  }
  return had
}

/**
 * What one handler instance's reads left for its writes of the same keys, per cache key (per
 * call, below) until written: each of the answers' `Own*` fields folded to its least, handed back with the write,
 * where the core decides which read stamps it. Next builds an `IncrementalCache`, and with it a
 * handler instance, per request, and reads and writes a key of one request through it; two
 * requests that regenerate one `fetch` key at once each write it, and each write must be
 * stamped with its own request's read, which the engine's per-key record cannot tell apart.
 *
 * Next also hands one instance to concurrent calls: `unstable_cache` outside a render (the
 * Pages Router's data functions, API routes) uses the `IncrementalCache` the process built
 * last, and a proxy's or an edge route's work store holds that same one. So a `fetch` or
 * `unstable_cache` read is kept for its own call (`Call`: its `fetchIdx`, in its render or
 * request), and only that call's write takes it: a call that reads and never writes (its
 * function threw) leaves its read under a call no other write names, and the engine's own
 * record of the key (from which such a write takes nothing) stamps at most one write with it.
 *
 * Also the values it served: Next 16.5 writes the entry it read back, unchanged, when a
 * regeneration fails (`retainPreviousCacheEntry`, the very `value` object `get` returned);
 * such a write hands back the answer's `writtenBack`, the stamp the engine chose serving it,
 * and `writtenBackMade`, when the value was made.
 */
class OwnReads {
  /** Page and route entries (no call), by cache key. */
  private readonly reads = new Map<string, OwnRead>()
  /** `fetch` and `unstable_cache` reads, by `fetchIdx` and cache key, per render or request. */
  private readonly calls = new WeakMap<object, Map<string, OwnRead>>()
  /** The same for calls outside any render or request. */
  private readonly unowned = new Map<string, OwnRead>()
  private readonly served = new WeakMap<object, WrittenBack>()

  /** The map the reads of `call` (or of keys without one) are kept in. */
  private mapOf(call: Call | undefined, create: boolean): Map<string, OwnRead> | undefined {
    if (call === undefined) return this.reads
    if (call.owner === undefined) return this.unowned
    let map = this.calls.get(call.owner)
    if (map === undefined && create) {
      map = new Map()
      this.calls.set(call.owner, map)
    }
    return map
  }

  note(cacheKey: string, call: Call | undefined, answer: OwnAnswer, value: unknown): void {
    if (typeof value === 'object' && value !== null && !Number.isNaN(answer.writtenBack)) {
      this.served.set(value, [answer.writtenBack, answer.writtenBackMade])
    }
    const { ownStart, ownFreshAt, ownFreshDue } = answer
    if (Number.isNaN(ownStart) && Number.isNaN(ownFreshAt)) return
    const map = this.mapOf(call, true)
    if (map === undefined) return
    // `fetchIdx` holds no separator: the key cannot be another call's.
    const had = noteIn(map, call === undefined ? cacheKey : `${call.idx}:${cacheKey}`)
    had.start = least(had.start, ownStart)
    had.freshAt = least(had.freshAt, ownFreshAt)
    had.freshDue = least(had.freshDue, ownFreshDue)
  }

  /** What a write of `data` under `cacheKey` by `call` hands the engine, and what a value written back carries (NaN if not one). */
  take(cacheKey: string, call: Call | undefined, data: unknown): readonly [OwnRead, WrittenBack] {
    let got: OwnRead | undefined
    if (call !== undefined) {
      const map = this.mapOf(call, false)
      const key = `${call.idx}:${cacheKey}`
      got = map?.get(key)
      if (got !== undefined) map?.delete(key)
    }
    // A call whose read named none (a caller other than Next's fetch and unstable_cache):
    // the instance's reads of the key that named none either.
    if (got === undefined) {
      got = this.reads.get(cacheKey)
      if (got !== undefined) this.reads.delete(cacheKey)
    }
    const shown = typeof data === 'object' && data !== null ? this.served.get(data) : undefined
    return [got ?? NO_OWN_READ, shown ?? NOT_WRITTEN_BACK]
  }
}

/** The fields of a read answer an `OwnReads` keeps. */
type OwnAnswer = Pick<
  Answer,
  'ownStart' | 'ownFreshAt' | 'ownFreshDue' | 'writtenBack' | 'writtenBackMade'
>

/**
 * One process's singular handler. Next creates a new instance of the class for every
 * `IncrementalCache` (about three per request), so instances hold nothing but a reference to
 * this object, which lives as long as the runtime.
 */
class IncrementalCore {
  /** Read machines done with, for the next reads (`reuseIncremental`), and entry keys. */
  private readonly machines: ReadMachines<ReadMachine>
  /** What the read driver sends and awaits through (no writes in flight: Next has none here). */
  private readonly io: ReadIo
  constructor(readonly rt: Runtime) {
    this.io = nodeReadIo(rt)
    this.machines = new ReadMachines(this.io.binding)
  }

  get(
    cacheKey: string,
    ctx: IncrementalGetContext = {},
    onDemand = false,
    own?: OwnReads,
  ): Promise<IncrementalCacheEntry | null> {
    const { engine } = this.rt
    try {
      // Before any await: a FETCH read inside a page's regeneration is baked into the page.
      const consumer = readConsumer()
      const call = own === undefined ? undefined : callOf(ctx)
      const isFetch = ctx.kind === 'FETCH'
      const soft = isFetch ? joinTags(uniq([...(ctx.tags ?? []), ...(ctx.softTags ?? [])])) : ''
      const requestRevalidate =
        isFetch && typeof ctx.revalidate === 'number' ? ctx.revalidate : Number.NaN
      const t = now()
      // A step of the wall clock since (a pause) asks for a pull first (docs/decisions/0036).
      this.rt.tags.noteClocks()
      // Set when the reuse started the read with the tier's copy (one call into wasm for both).
      let started: number | undefined
      let offered: Uint8Array | null = null
      const machine = this.machines.open(
        cacheKey,
        () =>
          wasm.ReadMachine.incremental(
            engine,
            cacheKey,
            isFetch,
            soft,
            requestRevalidate,
            consumer,
            onDemand,
            leaseToken(),
            t,
          ),
        (m, entryKey) => {
          // The strings written in place: one call into wasm, where passing them makes four.
          if (writeTexts(this.io.binding, m, entryKey ?? '', soft, cacheKey)) {
            offered = entryKey === undefined ? null : tierCopyKept(this.io, entryKey)
            started = m.reuseIncrementalTexts(
              engine,
              entryKey?.length ?? 0,
              soft.length,
              cacheKey.length,
              isFetch,
              requestRevalidate,
              consumer,
              onDemand,
              offered?.byteLength ?? 0,
              t,
            )
            return
          }
          m.reuseIncremental(
            engine,
            cacheKey,
            entryKey,
            isFetch,
            soft,
            requestRevalidate,
            consumer,
            onDemand,
            t,
          )
        },
      )
      const entryKey = this.machines.entryKey(cacheKey, machine)
      const read = readNow(engine, machine, this.io, {
        entryKey,
        startedAt: t,
        started,
        offered,
        decode: (a, bytes) => this.decode(cacheKey, entryKey, a, bytes),
        release: () => {
          this.machines.release(machine)
        },
      })
      // A read that needed no I/O (a page from the tier) is answered in this turn, as the
      // 'use cache' handler takes it: no await of a promise around it, whose turn and
      // promises (each one seen by the promise hooks Next's async storage enables) cost a
      // page hit more than its calls into wasm.
      if (read instanceof Promise) {
        return read.then(
          (done) => this.served(cacheKey, call, own, done),
          (err: unknown) => this.failed(err),
        )
      }
      return Promise.resolve(this.served(cacheKey, call, own, read))
    } catch (err) {
      return Promise.resolve(this.failed(err))
    }
  }

  /**
   * What `get` resolves to for a read's result: its value, once the answer is noted, logged and
   * freed. Never throws.
   */
  private served(
    cacheKey: string,
    call: Call | undefined,
    own: OwnReads | undefined,
    { answer, value, readError }: ReadResult<IncrementalCacheEntry>,
  ): IncrementalCacheEntry | null {
    if (answer === undefined) return null
    const { log } = this.rt
    // Bookkeeping, past the read: what it throws costs the value nothing.
    try {
      own?.note(cacheKey, call, answer, value?.value)
    } catch (err) {
      log.error(
        `inc get of ${cacheKey}: its read not noted for this request's write, its value served: ${describe(err)}`,
      )
    }
    logAnswerSafely(log, answer, 'inc get', cacheKey, readError)
    freeAnswer(log, answer, 'inc get', cacheKey)
    return value ?? null
  }

  /** A `get` that failed: a miss and an error line. */
  private failed(err: unknown): null {
    this.rt.log.error(`inc get failed, treated as a miss: ${describe(err)}`)
    return null
  }

  /**
   * Next's shape of the value an answer serves: its parts decoded (value-codec), with the
   * machine's presentation. Undefined (and an error line) when the parts cannot be decoded.
   *
   * A value served from the in-process tier (source `Tier` or `Kept`, the very bytes object the
   * tier holds) of a kind the core memoises is decoded once and memoised alongside the tier's
   * copy, charged to its budget by the core (`keepDecoded`); each hit gets a fresh shape of it
   * (`fresh`).
   */
  private decode(
    cacheKey: string,
    entryKey: string,
    answer: Answer,
    bytes: Uint8Array,
  ): IncrementalCacheEntry | undefined {
    const store = this.rt.store
    const memoised = FROM_TIER.has(answer.source) && MEMOISED.has(answer.valueKind)
    const memo = memoised ? store.decoded?.(entryKey, bytes) : undefined
    let decoded: IncrementalValue | null
    if (memo !== undefined) {
      decoded = fresh(memo.value as IncrementalValue | null)
    } else {
      const buf = Buffer.isBuffer(bytes)
        ? bytes
        : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      const lengths = answer.parts()
      const parts: Buffer[] = new Array<Buffer>(lengths.length)
      let off = answer.payloadOffset
      for (let i = 0; i < lengths.length; i++) {
        const len = lengths[i] ?? 0
        parts[i] = buf.subarray(off, off + len)
        off += len
      }
      try {
        // The fields area carries the kind as a number; the binding wrote a `ValueKind` there.
        const kind = KINDS.get(answer.valueKind)
        if (kind === undefined) throw new Error(`value kind ${String(answer.valueKind)} unknown`)
        decoded = decodeValue(kind, answer.valueFlags, answer.segments, parts)
      } catch (err) {
        this.rt.log.error(`unreadable value of ${cacheKey} (${describe(err)}): treated as a miss`)
        return undefined
      }
      if (memoised && decoded !== null && store.keepDecoded !== undefined) {
        store.keepDecoded(entryKey, bytes, decoded, structuralBytes(parts[0]))
        // What was just memoised is never handed out: Next gets a shape of its own.
        decoded = fresh(decoded)
      }
    }
    const entry: IncrementalCacheEntry = { lastModified: answer.lastModified, value: decoded }
    if (answer.hasCacheControl) {
      const r = answer.cacheRevalidate
      const e = answer.cacheExpire
      entry.cacheControl = {
        revalidate: Number.isNaN(r) ? false : r,
        expire: Number.isNaN(e) ? undefined : e,
      }
    }
    return entry
  }

  async set(
    cacheKey: string,
    data: IncrementalValue | null,
    ctx: IncrementalSetContext = {},
    own?: OwnReads,
  ): Promise<void> {
    const { engine, log } = this.rt
    let machine: ReturnType<typeof wasm.WriteMachine.incremental> | undefined
    try {
      const [read, [writtenBack, writtenBackMade]] = own?.take(cacheKey, callOf(ctx), data) ?? [
        NO_OWN_READ,
        NOT_WRITTEN_BACK,
      ]
      const v = describeIncrementalValue(data, ctx)
      const [t, wall] = [now(), Date.now()]
      // Refuses a key that is not well-formed UTF-16 (ERR_KEY_ILL_FORMED).
      machine = wasm.WriteMachine.incremental(
        engine,
        cacheKey,
        v.kind,
        v.flags,
        v.segments,
        joinTags(v.tags),
        v.revalidate,
        v.expire,
        Uint32Array.from(v.parts, (p) => p.byteLength),
        read.start,
        read.freshAt,
        read.freshDue,
        writtenBack,
        writtenBackMade,
        t,
        // As for a 'use cache' entry: stamped on the wall clock when this clock runs ahead.
        wall,
      )
      // The engine noted both clocks: a request compares against what it last saw.
      this.rt.tags.clocksTold(t, wall)
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
      const { RevalidationMode } = wasm
      const mode = durations === undefined ? RevalidationMode.Expire : RevalidationMode.Stale
      const expire = durations?.expire ?? Number.NaN
      // Next sends every revalidation to the cacheHandlers' updateTags first, in the same
      // synchronous loop; when fleetcache's use-cache handler has just recorded it in this run,
      // it is already on its way to Redis (docs/decisions/0005). Once: another report of the
      // same tags, or one in another run, is another revalidation.
      if (engine.revalidationRecorded(joinTags(list), mode, expire, t, currentTurn())) {
        log.debug(`inc revalidateTag ${shortList(list)}: already recorded by updateTags`)
        return
      }
      await this.rt.tags.update(list, durations, t)
    } catch (err) {
      // A trap in `revalidationRecorded` (logged here) or in the update (logged there): Next's
      // call must not resolve for a revalidation nobody got.
      const failed = engineFailure(list, err)
      if (failed !== undefined) {
        if (failed !== err) log.error(failed.message)
        throw failed
      }
      log.error(
        `revalidation of ${shortList(list)} applied on this instance only, Redis not updated: ${describe(err)}`,
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

/** Options for the build phase and a development server: no Redis (see docs/decisions/0006). */
function forPhase(resolved: ResolvedOptions): ResolvedOptions {
  return localOnlyPhase() !== undefined && resolved.redisUrl !== undefined
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
    /** This instance's (this request's) reads, for its writes of the same keys. */
    private readonly own = new OwnReads()

    // Next passes a context (fs, flushToDisk, ...) meant for file-system caches; only the
    // request's headers are read here.
    constructor(ctx?: unknown) {
      shared()
      this.onDemand = isOnDemandRevalidation(ctx)
    }

    get(cacheKey: string, ctx?: IncrementalGetContext): Promise<IncrementalCacheEntry | null> {
      return shared().get(cacheKey, ctx, this.onDemand, this.own)
    }

    set(
      cacheKey: string,
      data: IncrementalValue | null,
      ctx?: IncrementalSetContext,
    ): Promise<void> {
      return shared().set(cacheKey, data, ctx, this.own)
    }

    revalidateTag(tags: string | string[], durations?: Durations): Promise<void> {
      return shared().revalidateTag(tags, durations)
    }

    /**
     * Nothing is memoized per request. Next calls this on a request's `IncrementalCache` as the
     * request begins: the request's scope opens here, so that its render is served by the tag
     * pull its page read made (consumer.ts, `openRequestScope`).
     */
    resetRequestCache(): void {
      const { tags, log } = shared().rt
      try {
        openRequestScope(this, (scope) => {
          tags.requestBegan(scope)
        })
      } catch (err) {
        // Next's request must go on: without a scope its render pulls on its own.
        log.debug(`request scope not opened: ${describe(err)}`)
      }
    }
  }
}
