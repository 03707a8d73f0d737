/**
 * Next's singular-handler values <-> (one JSON part + raw byte parts), in the layout the core
 * defines (crates/fleetcache-core/src/incremental.rs). Bulky and binary fields (HTML, RSC,
 * segments, bodies, images) become parts of their own, never base64 or escaped JSON; the rest
 * goes through one `JSON.stringify`. Decoding hands back real `Buffer`s (views of the reply,
 * no copy) and a real `Map`, which Next needs (`Buffer.isBuffer`, `segmentData.get`).
 */

import type * as Wasm from '../wasm/node/fleetcache_wasm'
import { wasm } from './wasm'

/** Next's `OutgoingHttpHeaders`. */
export type Headers = Record<string, string | string[] | number | undefined>

/** Next 16's `IncrementalCacheValue` (`next/dist/server/response-cache/types`). */
export type IncrementalValue =
  | {
      kind: 'APP_PAGE'
      html: string
      rscData: Buffer | undefined
      headers: Headers | undefined
      postponed: string | undefined
      status: number | undefined
      segmentData: Map<string, Buffer> | undefined
    }
  | {
      kind: 'PAGES'
      html: string
      pageData: unknown
      headers: Headers | undefined
      status: number | undefined
    }
  | { kind: 'APP_ROUTE'; body: Buffer; status: number; headers: Headers }
  | {
      kind: 'FETCH'
      data: { headers: Record<string, string>; body: string; url: string; status?: number }
      tags?: string[]
      revalidate: number
    }
  | { kind: 'REDIRECT'; props: unknown }
  | {
      kind: 'IMAGE'
      etag: string
      upstreamEtag: string
      buffer: Buffer
      extension: string
      revalidate?: number
      isMiss?: boolean
      isStale?: boolean
    }

/** A value kind as the binding's enum. */
type ValueKindCode = Wasm.ValueKind

/** The binding's value kinds by Next's names (`kind` of an `IncrementalCacheValue`). */
export const ValueKind = {
  null: wasm.ValueKind.Null,
  APP_PAGE: wasm.ValueKind.AppPage,
  PAGES: wasm.ValueKind.Pages,
  APP_ROUTE: wasm.ValueKind.AppRoute,
  FETCH: wasm.ValueKind.Fetch,
  REDIRECT: wasm.ValueKind.Redirect,
  IMAGE: wasm.ValueKind.Image,
} as const

/** The descriptor's flag bits: the binding's `ValueFlag`. */
const Flag = wasm.ValueFlag

/** A value cut into the pieces the engine plans around. */
export interface EncodedValue {
  kind: ValueKindCode
  /** Only `ValueFlag.Rsc`; the handler adds the cacheControl bits. */
  flags: number
  segments: number
  /** The JSON part first, then the kind's byte parts. */
  parts: Buffer[]
}

/**
 * The JSON part: `v` holds the value's non-binary fields; `u` names fields that were present
 * but `undefined` (JSON drops them; Next's objects carry them); `n` keeps non-finite numbers
 * (JSON turns them into null); `s` lists APP_PAGE segment paths in part order.
 */
interface JsonPart {
  v: Record<string, unknown>
  u?: string[]
  n?: Record<string, string>
  s?: string[]
  /** FETCH: `data` had a `body` field (always, in Next; kept for exactness). */
  b?: 1
}

const NULL_JSON = Buffer.from('{"v":null}')

function bytes(v: unknown, what: string): Buffer {
  if (Buffer.isBuffer(v)) return v
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  throw new TypeError(`${what} is not a Buffer`)
}

function text(v: unknown, what: string): Buffer {
  if (typeof v !== 'string') throw new TypeError(`${what} is not a string`)
  return Buffer.from(v, 'utf8')
}

/** The JSON part of `value` without the `omit` fields (they travel as byte parts). */
function jsonPart(value: object, omit: readonly string[], extra: Partial<JsonPart> = {}): Buffer {
  const v: Record<string, unknown> = {}
  const u: string[] = []
  const n: Record<string, string> = {}
  for (const [k, x] of Object.entries(value)) {
    // Recorded even for omitted (byte-part) fields: an absent rscData is `undefined` in Next.
    if (x === undefined) u.push(k)
    else if (omit.includes(k)) continue
    else if (typeof x === 'number' && !Number.isFinite(x)) n[k] = String(x)
    else v[k] = x
  }
  const part: JsonPart = { v, ...extra }
  if (u.length > 0) part.u = u
  if (Object.keys(n).length > 0) part.n = n
  return Buffer.from(JSON.stringify(part), 'utf8')
}

/** Cuts a value into parts. Throws a `TypeError` on a shape Next does not produce. */
export function encodeValue(value: IncrementalValue | null): EncodedValue {
  if (value === null) return { kind: ValueKind.null, flags: 0, segments: 0, parts: [NULL_JSON] }
  switch (value.kind) {
    case 'APP_PAGE': {
      const parts: Buffer[] = []
      let flags = 0
      let paths: string[] | undefined
      const html = text(value.html, 'APP_PAGE html')
      const rsc = value.rscData === undefined ? undefined : bytes(value.rscData, 'rscData')
      const segs: Buffer[] = []
      if (value.segmentData !== undefined) {
        if (!(value.segmentData instanceof Map)) throw new TypeError('segmentData is not a Map')
        paths = []
        for (const [path, seg] of value.segmentData) {
          paths.push(path)
          segs.push(bytes(seg, `segment ${path}`))
        }
      }
      const json = jsonPart(
        value,
        ['html', 'rscData', 'segmentData'],
        paths === undefined ? {} : { s: paths },
      )
      parts.push(json, html)
      if (rsc !== undefined) {
        flags |= Flag.Rsc
        parts.push(rsc)
      }
      parts.push(...segs)
      return { kind: ValueKind.APP_PAGE, flags, segments: segs.length, parts }
    }
    case 'PAGES':
      return {
        kind: ValueKind.PAGES,
        flags: 0,
        segments: 0,
        parts: [jsonPart(value, ['html']), text(value.html, 'PAGES html')],
      }
    case 'APP_ROUTE':
      return {
        kind: ValueKind.APP_ROUTE,
        flags: 0,
        segments: 0,
        parts: [jsonPart(value, ['body']), bytes(value.body, 'APP_ROUTE body')],
      }
    case 'FETCH': {
      const { body, ...data } = value.data
      const json = jsonPart({ ...value, data }, [], { b: 1 })
      return {
        kind: ValueKind.FETCH,
        flags: 0,
        segments: 0,
        parts: [json, text(body, 'FETCH data.body')],
      }
    }
    case 'REDIRECT':
      return { kind: ValueKind.REDIRECT, flags: 0, segments: 0, parts: [jsonPart(value, [])] }
    case 'IMAGE':
      return {
        kind: ValueKind.IMAGE,
        flags: 0,
        segments: 0,
        parts: [jsonPart(value, ['buffer']), bytes(value.buffer, 'IMAGE buffer')],
      }
    default:
      throw new TypeError(`unknown value kind ${String((value as { kind: unknown }).kind)}`)
  }
}

function parseJson(part: Buffer | undefined): JsonPart {
  if (part === undefined) throw new Error('missing JSON part')
  const parsed = JSON.parse(part.toString('utf8')) as unknown
  if (typeof parsed !== 'object' || parsed === null || !('v' in parsed)) {
    throw new Error('JSON part has no value')
  }
  return parsed as JsonPart
}

function restore(j: JsonPart): Record<string, unknown> {
  // In place: `j` was parsed for this one decode and nothing else holds it. Copying it cost 40%
  // of the example's PPR page decode (7.2 -> 4.4 µs in a loop, 0.065 -> 0.038 ms p50 per
  // request under load; `node bench/page-cost.mjs`).
  const out = j.v
  for (const k of j.u ?? []) out[k] = undefined
  for (const [k, s] of Object.entries(j.n ?? {})) out[k] = Number(s)
  return out
}

function part(parts: readonly Buffer[], i: number): Buffer {
  const p = parts[i]
  if (p === undefined) throw new Error(`missing part ${String(i)}`)
  return p
}

/**
 * Rebuilds a value from the parts the engine located. `kind`, `flags` and `segments` come from
 * the engine, which has already checked that the part count fits them. Throws on a JSON part
 * that does not parse or does not match (the caller treats that as a miss).
 */
export function decodeValue(
  kind: ValueKindCode,
  flags: number,
  segments: number,
  parts: readonly Buffer[],
): IncrementalValue | null {
  const j = parseJson(parts[0])
  if (kind === ValueKind.null) return null
  const v = restore(j)
  switch (kind) {
    case ValueKind.APP_PAGE: {
      v.html = part(parts, 1).toString('utf8')
      let next = 2
      if ((flags & Flag.Rsc) !== 0) v.rscData = part(parts, next++)
      if (j.s !== undefined) {
        if (j.s.length !== segments) throw new Error('segment paths do not match the parts')
        const map = new Map<string, Buffer>()
        for (const path of j.s) map.set(path, part(parts, next++))
        v.segmentData = map
      }
      break
    }
    case ValueKind.PAGES:
      v.html = part(parts, 1).toString('utf8')
      break
    case ValueKind.APP_ROUTE:
      v.body = part(parts, 1)
      break
    case ValueKind.FETCH: {
      const data = v.data
      if (typeof data !== 'object' || data === null) throw new Error('FETCH value without data')
      if (j.b === 1) (data as Record<string, unknown>).body = part(parts, 1).toString('utf8')
      break
    }
    case ValueKind.IMAGE:
      v.buffer = part(parts, 1)
      break
    case ValueKind.REDIRECT:
      break
    default:
      throw new Error(`unknown value kind ${String(kind)}`)
  }
  return v as IncrementalValue
}

/** Tags of a response value: Next's `x-next-cache-tags` header (explicit and `_N_T_` tags). */
export function headerTags(value: IncrementalValue | null): string[] {
  if (value === null) return []
  if (value.kind !== 'APP_PAGE' && value.kind !== 'APP_ROUTE' && value.kind !== 'PAGES') return []
  const h = value.headers?.['x-next-cache-tags']
  const joined = Array.isArray(h) ? h.join(',') : typeof h === 'string' ? h : ''
  return joined === '' ? [] : joined.split(',')
}
