/**
 * The singular handler's envelope for one value, written at `createdAt`: what
 * `fleetcache/incremental`'s `set` stores, and `fleetcache seed`, which chooses the time itself
 * (docs/decisions/0023).
 */
import { joinTags } from './argv'
import type { CacheControl } from './incremental-handler'
import { encodeValue, headerTags, type IncrementalValue } from './value-codec'
import { wasm } from './wasm'
import { plannedEntry } from './packed'
import type { ValueKind } from '../wasm/node/fleetcache_wasm'

const Flag = wasm.ValueFlag

/** The `ctx` of a write: the fields the envelope takes from it. */
export interface EnvelopeContext {
  tags?: string[]
  cacheControl?: CacheControl
}

/**
 * An envelope ready to store, or why it is not stored (`ttlMs` NaN); `kind` is the value's
 * kind code.
 */
export type Envelope =
  | { stored: Buffer; ttlMs: number; droppedTags: string; kind: ValueKind }
  | { stored: undefined; ttlMs: number; droppedTags: string; kind: ValueKind }

/** A value as the write machine takes it: its descriptor, `cacheControl`, tags and parts. */
export interface DescribedValue {
  kind: ValueKind
  flags: number
  segments: number
  tags: string[]
  revalidate: number
  expire: number
  parts: Buffer[]
}

/** Encodes `data` into its parts and reads the numbers of its envelope from it and `ctx`. */
export function describeIncrementalValue(
  data: IncrementalValue | null,
  ctx: EnvelopeContext,
): DescribedValue {
  const enc = encodeValue(data)
  let flags = enc.flags
  let revalidate: number
  let expire = Number.NaN
  let tags: string[]
  const cc = ctx.cacheControl
  if (data !== null && data.kind === 'FETCH') {
    flags |= Flag.NoCacheControl
    revalidate = data.revalidate
    tags = [...new Set([...(ctx.tags ?? []), ...(data.tags ?? [])])]
  } else {
    tags = headerTags(data)
    if (cc === undefined) {
      flags |= Flag.NoCacheControl | Flag.RevalidateFalse
      revalidate = Number.NaN
    } else {
      if (cc.revalidate === false) flags |= Flag.RevalidateFalse
      revalidate = cc.revalidate === false ? Number.NaN : cc.revalidate
      if (cc.expire === undefined) flags |= Flag.NoExpire
      else expire = cc.expire
    }
  }
  return {
    kind: enc.kind,
    flags,
    segments: enc.segments,
    tags,
    revalidate,
    expire,
    parts: enc.parts,
  }
}

/** The engine call `encodeIncrementalEnvelope` makes: the tools module's `Engine` has it. */
export interface EntryPlanner {
  planIncrementalEntry(
    cacheKey: string,
    kind: ValueKind,
    flags: number,
    segments: number,
    tags: string,
    revalidate: number,
    expire: number,
    parts: Uint32Array,
    now: number,
  ): Uint8Array
}

/**
 * Encodes `data` for `cacheKey` as created at `createdAt`. `stored` is undefined when the
 * engine says the value is not cacheable (a `revalidate: 0` response, say). For `fleetcache
 * seed`: `planIncrementalEntry` is in the tools module only (a request's `set` steps a write
 * machine).
 */
export function encodeIncrementalEnvelope(
  engine: EntryPlanner,
  cacheKey: string,
  data: IncrementalValue | null,
  ctx: EnvelopeContext,
  createdAt: number,
): Envelope {
  const v = describeIncrementalValue(data, ctx)
  const plan = plannedEntry(
    engine.planIncrementalEntry(
      cacheKey,
      v.kind,
      v.flags,
      v.segments,
      joinTags(v.tags),
      v.revalidate,
      v.expire,
      Uint32Array.from(v.parts, (p) => p.byteLength),
      createdAt,
    ),
  )
  const { ttlMs, droppedTags } = plan
  if (!plan.stored) return { stored: undefined, ttlMs, droppedTags, kind: v.kind }
  return { stored: Buffer.concat([plan.header, ...v.parts]), ttlMs, droppedTags, kind: v.kind }
}
