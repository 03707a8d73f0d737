/**
 * `fleetcache stats | tags | inspect | purge`: read-mostly views of a live Redis, in the key
 * layout of docs/internals.md. Every scan is bounded (`--max-keys`) and paged (SCAN), so the
 * commands are safe to run against a production Redis.
 */
import { now } from '../dist/clock'
import { inflateStored, storedCompressed } from '../dist/compression'
import { describe, FOLDED_TAG, printable } from '../dist/log'
import { nodeCodecs } from '../dist/node-codecs'
import { inspection } from '../dist/packed'
import type { Engine } from '../dist/wasm'
import { tools } from './tools'
import { ValueKind } from '../dist/value-codec'
import { globEscape, Progress, scanPages, scanTargets, type Conn } from './redis'

// The folded records' reserved tag (log.ts), which every tagged entry is judged by.
export { FOLDED_TAG } from '../dist/log'

/** Where a Redis key belongs in the layout. */
export type ParsedKey =
  | { type: 'entry' | 'lease'; deployment: string; iface: string }
  | { type: 'builds'; deployment: string }
  | { type: 'tags'; part: string }
  | { type: 'other' }

/**
 * Reads a key of `prefix` (docs/internals.md): entries, leases, a deployment's record of builds
 * and the tag keys.
 */
export function parseKey(key: string, prefix: string): ParsedKey {
  const parts = key.split(':')
  if (parts[0] !== prefix) return { type: 'other' }
  if (parts.length === 3 && parts[1] && parts[2] === 'builds') {
    return { type: 'builds', deployment: parts[1] }
  }
  if (parts.length === 4 && parts[1] === 'tags' && parts[2] === `{${prefix}}`) {
    return { type: 'tags', part: parts[3] ?? '' }
  }
  const [, deployment, iface, hash, suffix] = parts
  if (parts.length === 5 && deployment && iface && hash?.startsWith('{') && hash.endsWith('}')) {
    if (suffix === 'e') return { type: 'entry', deployment, iface }
    if (suffix === 'l') return { type: 'lease', deployment, iface }
  }
  return { type: 'other' }
}

/**
 * A count with its noun, singular for exactly one: `counted(1, 'key')` is `1 key`,
 * `counted(0, 'key')` is `0 keys`. Every count the CLI prints goes through it.
 */
export function counted(n: number, one: string, many = `${one}s`): string {
  return `${String(n)} ${n === 1 ? one : many}`
}

/** Bytes as a short human string. */
export function bytes(n: number): string {
  if (n < 1024) return `${String(n)} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}

/** Left-aligned text columns. */
export function table(rows: string[][]): string {
  const widths: number[] = []
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)))
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

export interface StatsRow {
  deployment: string
  interface: string
  entries: number
  bytes: number
  leases: number
}

export interface StatsReport {
  rows: StatsRow[]
  tags: number
  revalidationLog: number
  scannedKeys: number
  /** The scan stopped at --max-keys: the numbers cover part of the keyspace. */
  truncated: boolean
  /** How sizes were measured: MEMORY USAGE, or STRLEN where MEMORY is disabled. */
  sizeBy: 'MEMORY USAGE' | 'STRLEN'
}

/** Keys and bytes per deployment and interface, tag count and leases held. */
export async function collectStats(
  conn: Conn,
  prefix: string,
  maxKeys: number,
  progress: Progress,
): Promise<StatsReport> {
  const groups = new Map<string, StatsRow>()
  let scanned = 0
  let sizeBy: StatsReport['sizeBy'] = 'MEMORY USAGE'
  const size = async (target: Conn, key: string): Promise<number> => {
    if (sizeBy === 'MEMORY USAGE') {
      try {
        return Number(await target.send(['MEMORY', 'USAGE', key]))
      } catch {
        // Managed services may disable MEMORY; the value's length is the next best measure.
        sizeBy = 'STRLEN'
      }
    }
    return Number(await target.send(['STRLEN', key]))
  }
  const targets = await scanTargets(conn)
  try {
    for (const target of targets) {
      for await (const page of scanPages(target, `${globEscape(prefix)}:*`, {
        count: 1000,
        maxKeys: maxKeys - scanned,
      })) {
        scanned += page.length
        // One page's size queries go out together (node-redis pipelines concurrent commands).
        const sizes = await Promise.all(
          page.map((k) => {
            const p = parseKey(k, prefix)
            return p.type === 'entry' ? size(target, k) : Promise.resolve(0)
          }),
        )
        page.forEach((k, i) => {
          const p = parseKey(k, prefix)
          if (p.type !== 'entry' && p.type !== 'lease') return
          const id = `${p.deployment}\0${p.iface}`
          let row = groups.get(id)
          if (row === undefined) {
            row = { deployment: p.deployment, interface: p.iface, entries: 0, bytes: 0, leases: 0 }
            groups.set(id, row)
          }
          if (p.type === 'entry') {
            row.entries += 1
            row.bytes += sizes[i] ?? 0
          } else row.leases += 1
        })
        progress.tick(() => `scanned ${counted(scanned, 'key')}`)
      }
    }
  } finally {
    await closeExtra(targets, conn)
  }
  // The record of folded revalidations is not a tag of the application's.
  const tags =
    Number(await conn.send(['HLEN', tagKey(prefix, 'state')])) -
    Number(await conn.send(['HEXISTS', tagKey(prefix, 'state'), FOLDED_TAG]))
  const log = Number(await conn.send(['ZCARD', tagKey(prefix, 'log')]))
  const rows = [...groups.values()].sort(
    (a, b) => a.deployment.localeCompare(b.deployment) || a.interface.localeCompare(b.interface),
  )
  return {
    rows,
    tags,
    revalidationLog: log,
    scannedKeys: scanned,
    truncated: scanned >= maxKeys,
    sizeBy,
  }
}

export function formatStats(r: StatsReport): string {
  const lines = [
    table([
      ['DEPLOYMENT', 'INTERFACE', 'ENTRIES', 'BYTES', 'LEASES'],
      ...r.rows.map((x) => [
        x.deployment,
        x.interface,
        String(x.entries),
        bytes(x.bytes),
        String(x.leases),
      ]),
    ]),
    '',
    `tags: ${String(r.tags)} known, ${String(r.revalidationLog)} in the revalidation log`,
    `scanned ${counted(r.scannedKeys, 'key')}${r.truncated ? ' (stopped at --max-keys: partial numbers)' : ''}; sizes by ${r.sizeBy}`,
  ]
  return lines.join('\n')
}

export interface TagRevalidation {
  tag: string
  /** Version of the tag state at its last update (orders the log). */
  version: number
  /** When it was last revalidated (ms since epoch). */
  updatedAt: number
  /** Entries created up to this time are stale (0 = none). */
  stale: number
  /** Entries created up to this time are expired (0 = none). */
  expired: number
  /** A scheduled expiry: entries up to `pendingAt` expire at `pendingExpiry` (0 = none). */
  pendingAt: number
  pendingExpiry: number
}

/** The newest `limit` revalidations from the tag log, newest first. */
export async function recentTags(
  conn: Conn,
  prefix: string,
  limit: number,
): Promise<TagRevalidation[]> {
  const key = (part: string): string => tagKey(prefix, part)
  const log = (await conn.send([
    'ZREVRANGE',
    key('log'),
    '0',
    String(limit - 1),
    'WITHSCORES',
  ])) as unknown[]
  // RESP3 answers [[member, score], ...]; RESP2 a flat [member, score, ...].
  const flat = log.flatMap((x) => (Array.isArray(x) ? (x as unknown[]) : [x]))
  const tags: string[] = []
  const versions: number[] = []
  for (let i = 0; i + 1 < flat.length; i += 2) {
    tags.push(String(flat[i]))
    versions.push(Number(String(flat[i + 1])))
  }
  if (tags.length === 0) return []
  const records = (await conn.send(['HMGET', key('state'), ...tags])) as (Buffer | null)[]
  return tags.map((tag, i) => {
    // `stale,expired,pending_at,pending_exp,updated_at` (docs/internals.md).
    const [stale = 0, expired = 0, pendingAt = 0, pendingExpiry = 0, updatedAt = 0] = String(
      records[i] ?? '',
    )
      .split(',')
      .map(Number)
    return { tag, version: versions[i] ?? 0, updatedAt, stale, expired, pendingAt, pendingExpiry }
  })
}

const iso = (ms: number): string => (ms > 0 ? new Date(ms).toISOString() : '-')

export function formatTags(list: TagRevalidation[]): string {
  if (list.length === 0) return 'no revalidations recorded'
  return table([
    ['REVALIDATED AT', 'MODE', 'VERSION', 'TAG'],
    ...list.map((t) => [
      iso(t.updatedAt),
      t.expired >= t.updatedAt && t.expired > 0
        ? 'expired'
        : t.pendingExpiry > 0
          ? `stale, expires ${iso(t.pendingExpiry)}`
          : 'stale',
      String(t.version),
      t.tag === FOLDED_TAG ? '(folded revalidations: every tagged entry)' : printable(t.tag),
    ]),
  ])
}

/** A key of the tag state under `prefix` (`state`, `log`, `meta`: docs/internals.md). */
function tagKey(prefix: string, part: string): string {
  return `${prefix}:tags:{${prefix}}:${part}`
}

/** Netstrings (`<byte length>:<bytes>,` each), the tag scripts' reply format. */
function netstrings(items: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    items.flatMap((item) => {
      const bytes = Buffer.isBuffer(item) ? item : Buffer.from(item)
      return [Buffer.from(`${String(bytes.byteLength)}:`), bytes, Buffer.from(',')]
    }),
  )
}

/**
 * Loads into `engine`'s mirror what Redis holds of `tags` (as entries store them) and of the
 * reserved tag of folded revalidations, exactly, as one whole-state reply of the refresh script
 * would bring them: what judging an entry with these tags needs, whatever the size of the state
 * (a server holding those records exactly judges the same; one past its tagMirrorMaxTags may
 * judge older entries stale sooner, never fresher).
 */
export async function loadTagRecords(
  conn: Conn,
  prefix: string,
  engine: Pick<Engine, 'tagsSynced' | 'applyRefresh'>,
  tags: string[],
): Promise<void> {
  const meta = tagKey(prefix, 'meta')
  const field = async (name: string): Promise<string> => {
    const v = await conn.send(['HGET', meta, name])
    return Buffer.isBuffer(v) ? v.toString() : typeof v === 'string' ? v : ''
  }
  const [epoch, ver, pver, pvid] = [
    await field('epoch'),
    (await field('ver')) || '0',
    (await field('pver')) || '0',
    await field('pvid'),
  ]
  const vid = await field(`v:${ver}`)
  const names = [...new Set([...tags, FOLDED_TAG])]
  const records = (await conn.send(['HMGET', tagKey(prefix, 'state'), ...names])) as unknown[]
  const pairs = names.flatMap((tag, i) => {
    const r = records[i]
    return Buffer.isBuffer(r) ? [tag, r] : typeof r === 'string' ? [tag, r] : []
  })
  // A full reply (flag 1) whose first page is the whole state (cursor 0).
  engine.applyRefresh(netstrings([epoch, ver, vid, '1', pver, pvid, '0', ...pairs]), Date.now())
  if (!engine.tagsSynced) throw new Error('the tag state did not load')
}

const VALUE_KINDS = Object.fromEntries(Object.entries(ValueKind).map(([k, v]) => [v, k]))

export interface InspectReport {
  key: string
  ttlMs: number
  totalBytes: number
  header: Record<string, unknown>
  /** What a server would do with it now: the core's verdict, against the live tag state. */
  verdict: string
  /** Singular-handler entries: the JSON part (status, headers, segment paths...). */
  json?: unknown
  /** Stored compressed: the plain envelope's size once inflated (`totalBytes` is stored). */
  inflatedBytes?: number
}

/**
 * A key that holds no entry: what kind of key it is (a hash of the tag state, a deployment's
 * record of builds, or one fleetcache does not write) and, for a hash, its fields, at most
 * `KEY_FIELDS_SHOWN` of them.
 */
export interface KeyReport {
  key: string
  /** Redis's `TYPE`. */
  type: string
  /** What fleetcache keeps there, in words. */
  kind: string
  ttlMs: number
  /** A hash's field count (`HLEN`). */
  fieldCount?: number
  /** A hash's fields and values, the first `KEY_FIELDS_SHOWN` `HSCAN` returns. */
  fields?: [string, string][]
}

/** The most fields of a hash `inspect` shows (the tag state holds one per tag). */
const KEY_FIELDS_SHOWN = 50

const text = (v: unknown): string =>
  Buffer.isBuffer(v) ? v.toString() : typeof v === 'string' ? v : String(v)

/** What fleetcache keeps at `key`, by its name and its Redis type. */
function keyKind(key: string, prefix: string, type: string): string {
  const parsed = parseKey(key, prefix)
  if (parsed.type === 'builds' && type === 'hash') {
    return `record of builds of deployment ${parsed.deployment}`
  }
  if (parsed.type === 'tags') {
    if (parsed.part === 'state' && type === 'hash') return 'tag state (one record per tag)'
    if (parsed.part === 'meta' && type === 'hash') return "tag state's meta (epoch, versions)"
    if (parsed.part === 'log' && type === 'zset') return "tag state's log (tags by version)"
  }
  return `a ${type}, not a key fleetcache writes`
}

/** Describes a key that holds no string value (no entry): its kind, and a hash's fields. */
async function describeKey(
  conn: Conn,
  key: string,
  prefix: string,
  type: string,
): Promise<KeyReport> {
  const ttlMs = Number(await conn.send(['PTTL', key]))
  const report: KeyReport = { key, type, kind: keyKind(key, prefix, type), ttlMs }
  if (type !== 'hash') return report
  report.fieldCount = Number(await conn.send(['HLEN', key]))
  const fields: [string, string][] = []
  let cursor = '0'
  // HSCAN, which the documented ACL user may send (HGETALL it may not); bounded.
  for (let page = 0; page < 100 && fields.length < KEY_FIELDS_SHOWN; page++) {
    const reply = (await conn.send(['HSCAN', key, cursor, 'COUNT', '100'])) as unknown[]
    cursor = text(reply[0])
    const flat = Array.isArray(reply[1]) ? (reply[1] as unknown[]) : []
    for (let i = 0; i + 1 < flat.length && fields.length < KEY_FIELDS_SHOWN; i += 2) {
      fields.push([text(flat[i]), text(flat[i + 1])])
    }
    if (cursor === '0') break
  }
  report.fields = fields
  return report
}

/** The lines of a key that holds no entry. */
export function formatKey(r: KeyReport): string {
  const rows: string[][] = [
    ['redis key', r.key],
    ['kind', r.kind],
    ['type', r.type],
    ['ttl', r.ttlMs < 0 ? String(r.ttlMs) : `${(r.ttlMs / 1000).toFixed(0)} s`],
  ]
  if (r.fieldCount !== undefined) {
    const shown = r.fields?.length ?? 0
    rows.push([
      'fields',
      shown < r.fieldCount
        ? `${String(r.fieldCount)} (the first ${String(shown)} below)`
        : String(r.fieldCount),
    ])
  }
  const builds = r.kind.startsWith('record of builds')
  const tagState = r.kind.startsWith('tag state (')
  for (const [field, value] of r.fields ?? []) {
    // A build's value: the time until which its entries may be served.
    const ms = Number(value)
    rows.push([
      tagState && field === FOLDED_TAG
        ? '(folded revalidations: every tagged entry)'
        : printable(field),
      builds && Number.isFinite(ms) ? `served until ${iso(ms)} (${value})` : printable(value),
    ])
  }
  return table(rows)
}

/**
 * Decodes the envelope stored at `key` and judges it as a server would now; a key of another
 * type (the tag state's, a record of builds) is described instead (`KeyReport`).
 */
export async function inspectKey(
  conn: Conn,
  key: string,
  prefix: string,
): Promise<InspectReport | KeyReport | null> {
  const type = text(await conn.send(['TYPE', key]))
  if (type === 'none') return null
  if (type !== 'string') return describeKey(conn, key, prefix, type)
  const value = await conn.send(['GET', key])
  if (value === null) return null
  if (!Buffer.isBuffer(value)) throw new Error(`${key} is not a string value`)
  const header = tools().describeEnvelope(value, value.byteLength) as Record<string, unknown> & {
    key: string
    interface: string
    headerLen: number
    parts: number[]
    valueKind?: number
  }
  const ttlMs = Number(await conn.send(['PTTL', key]))
  // A throwaway engine with the entry's tag records gives the verdict a server would reach.
  // Only those: the whole state, past the default bound of a mirror, could fold a tag of this
  // entry into a bucket shared with later revalidations, and would cost memory with every
  // live tag.
  const parsed = parseKey(key, prefix)
  const engine = new (tools().Engine)({
    prefix,
    deployment: parsed.type === 'entry' ? parsed.deployment : 'cli',
  })
  try {
    const tags = Array.isArray(header.tags) ? (header.tags as unknown[]) : []
    await loadTagRecords(
      conn,
      prefix,
      engine,
      tags.filter((t): t is string => typeof t === 'string'),
    )
    // The judgement depends on the surface only, not on a 'use cache' handler's name.
    const iface =
      header.interface === 'incremental'
        ? tools().Interface.incremental()
        : tools().Interface.useCache('default')
    // A server judges a compressed value once inflated; one that does not inflate is corrupt.
    let plain: Buffer | undefined
    let inflateError: unknown
    if (storedCompressed(value)) {
      try {
        const bytes = await inflateStored(engine, value, nodeCodecs)
        plain = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      } catch (err) {
        inflateError = err
      }
    } else {
      plain = value
    }
    const judged = plain ?? value
    const seen = inspection(
      engine.inspectEntry(iface, header.key, judged, judged.byteLength, '', now()),
    )
    const report: InspectReport = {
      key,
      ttlMs,
      totalBytes: value.byteLength,
      header: {
        ...header,
        ...(header.valueKind === undefined
          ? {}
          : { valueKind: VALUE_KINDS[header.valueKind] ?? header.valueKind }),
      },
      verdict:
        inflateError === undefined ? seen.lookup : `${seen.lookup} (${describe(inflateError)})`,
      ...(plain !== undefined && plain !== value ? { inflatedBytes: plain.byteLength } : {}),
    }
    if (header.interface === 'incremental' && plain !== undefined) {
      const len = header.parts[0] ?? 0
      // The plain header's length (a compressed value's header is longer).
      const at = seen.payloadOffset > 0 ? seen.payloadOffset : header.headerLen
      try {
        report.json = JSON.parse(plain.subarray(at, at + len).toString('utf8')) as unknown
      } catch {
        report.json = '(unreadable JSON part)'
      }
    }
    return report
  } finally {
    engine.free()
  }
}

/**
 * Next's `INFINITE_CACHE` (0xfffffffe seconds), the lifetime `'use cache'` entries without a
 * limit carry: the core reads it and anything above as no limit, like a singular entry's
 * `Infinity` (`INFINITE_CACHE_SECONDS` in crates/fleetcache-core/src/time.rs).
 */
const INFINITE_CACHE_SECONDS = 4_294_967_294

/** The header's lifetimes, in seconds, shown as `Infinity` from `INFINITE_CACHE_SECONDS` on. */
const LIFETIMES = new Set(['revalidate', 'expire', 'stale'])

/** Whether header field `k` holds a lifetime without a limit (Infinity or INFINITE_CACHE on). */
function unlimited(k: string, v: unknown): boolean {
  return LIFETIMES.has(k) && typeof v === 'number' && v >= INFINITE_CACHE_SECONDS
}

/**
 * The report as `--json` prints it: a lifetime without a limit is `null` whichever interface
 * stored it (JSON has no Infinity: `JSON.stringify` writes a singular entry's as null, and a
 * `'use cache'` entry's INFINITE_CACHE would be a number).
 */
export function inspectJson(r: InspectReport): InspectReport {
  const header = Object.fromEntries(
    Object.entries(r.header).map(([k, v]) => [k, unlimited(k, v) ? null : v]),
  )
  return { ...r, header }
}

export function formatInspect(r: InspectReport): string {
  const h = r.header
  const rows: string[][] = [
    ['redis key', r.key],
    [
      'size',
      `${bytes(r.totalBytes)} (header ${String(h.headerLen)} B)${r.inflatedBytes === undefined ? '' : `, compressed: ${bytes(r.inflatedBytes)} inflated`}`,
    ],
    ['ttl', r.ttlMs < 0 ? String(r.ttlMs) : `${(r.ttlMs / 1000).toFixed(0)} s`],
    ['verdict now', r.verdict],
  ]
  for (const [k, v] of Object.entries(h)) {
    const shown =
      (k === 'timestamp' || k === 'made') && typeof v === 'number'
        ? `${iso(v)} (${String(v)})`
        : unlimited(k, v)
          ? 'Infinity'
          : Array.isArray(v)
            ? v.join(', ')
            : String(v)
    rows.push([k, shown])
  }
  let out = table(rows)
  if (r.json !== undefined) out += `\n\nvalue (JSON part):\n${JSON.stringify(r.json, null, 2)}`
  return out
}

export interface PurgeResult {
  matched: number
  deleted: number
  /** The deployment's record of builds (`<prefix>:<deployment>:builds`) was among `matched`. */
  buildsRecord: boolean
}

/**
 * Deletes one deployment's entries, leases and record of builds: SCAN MATCH one page at a time, UNLINK per page
 * (freed in the background, so the server never blocks on a large delete), on every master.
 * Bounded by `maxKeys`; `dryRun` only counts.
 */
export async function purgeDeployment(
  conn: Conn,
  prefix: string,
  deployment: string,
  { maxKeys, batch, dryRun }: { maxKeys: number; batch: number; dryRun: boolean },
  progress: Progress,
): Promise<PurgeResult> {
  const pattern = `${globEscape(prefix)}:${globEscape(deployment)}:*`
  let matched = 0
  let deleted = 0
  let buildsRecord = false
  const targets = await scanTargets(conn)
  // On a cluster, keys of one node still span many slots: one UNLINK per key (pipelined).
  const perKey = conn.cluster === true
  try {
    for (const target of targets) {
      for await (const page of scanPages(target, pattern, {
        count: batch,
        maxKeys: maxKeys - matched,
      })) {
        // The pattern also matches a deployment named like a prefix of another's keys only if
        // the next segment agrees; parseKey keeps exactly this deployment's entries, leases
        // and record of builds.
        const keys = page.filter((k) => {
          const p = parseKey(k, prefix)
          return (
            (p.type === 'entry' || p.type === 'lease' || p.type === 'builds') &&
            p.deployment === deployment
          )
        })
        matched += keys.length
        if (keys.some((k) => parseKey(k, prefix).type === 'builds')) buildsRecord = true
        if (!dryRun && keys.length > 0) {
          deleted += perKey
            ? (await Promise.all(keys.map((k) => target.send(['UNLINK', k])))).reduce<number>(
                (n, r) => n + Number(r),
                0,
              )
            : Number(await target.send(['UNLINK', ...keys]))
        }
        progress.tick(
          () =>
            `${dryRun ? 'found' : 'deleted'} ${counted(dryRun ? matched : deleted, 'key')} of deployment ${deployment}`,
        )
      }
    }
  } finally {
    await closeExtra(targets, conn)
  }
  return { matched, deleted, buildsRecord }
}

/** Closes the connections `scanTargets` opened besides `conn`. */
async function closeExtra(targets: Conn[], conn: Conn): Promise<void> {
  for (const t of targets) if (t !== conn) await t.close().catch(() => undefined)
}
