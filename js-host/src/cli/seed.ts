/**
 * `fleetcache seed <.next dir>`: pushes a build's prerendered pages, route-handler bodies and
 * RSC / segment data into Redis under the runtime keys (reference §1.9), so that a new
 * deployment's first request for a prerendered route is a hit on every instance.
 *
 * `next build` writes prerenders to `.next/server/{app,pages}` beside a `.meta` file holding
 * `routeCache.key`, the exact key a server later asks its cache handler for; a custom handler
 * never sees them. This command rebuilds each value in the shape Next itself reads from those
 * files (its FileSystemCache) and stores it in the envelope `fleetcache/incremental` writes at
 * runtime, stamped with the time the build wrote it and never over a newer entry
 * (docs/decisions/0016, 0023).
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs'
import { join, relative, sep } from 'node:path'

import { now } from '../clock'
import type { FleetcacheOptions } from '../config'
import { resolveOptions } from '../config'
import type { CacheControl, IncrementalSetContext } from '../incremental-handler'
import { encodeIncrementalEnvelope } from '../incremental-envelope'
import { describe } from '../log'
import { close, runtimeFor } from '../runtime'
import { sendWithValue } from '../store'
import { wasm } from '../wasm'

/** Seeded routes are the singular handler's entries. */
const INCREMENTAL = wasm.Interface.incremental()
import type { IncrementalValue } from '../value-codec'
import { headerTags } from '../value-codec'
import type { Conn } from './redis'
import { Progress } from './redis'

/** Files looked at in one walk: a bound on a corrupt or enormous tree. */
const MAX_FILES = 200_000

/** One prerendered route, ready to store. */
export interface Seed {
  key: string
  route: string
  value: IncrementalValue
  ctx: IncrementalSetContext
  /** When the build wrote it (ms): revalidations after it make the seed outdated. */
  builtAt: number
}

interface RouteMeta {
  status?: number
  headers?: Record<string, string>
  segmentPaths?: string[]
  postponed?: string
  cacheControl?: CacheControl
  routeCache?: { key?: string; owner?: { kind?: string }; isFallback?: boolean }
}

interface ManifestRoute {
  initialRevalidateSeconds?: number | false
  initialExpireSeconds?: number
}

/** `<app>/.next` when given the app directory, else the directory itself. */
export function distDirOf(dir: string): string {
  return existsSync(join(dir, '.next', 'BUILD_ID')) ? join(dir, '.next') : dir
}

function metaFiles(root: string): string[] {
  const out: string[] = []
  let seen = 0
  const walk = (d: string): void => {
    let entries
    try {
      entries = readdirSync(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      if (++seen > MAX_FILES) throw new Error(`more than ${String(MAX_FILES)} files under ${root}`)
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.meta')) out.push(p)
    }
  }
  walk(root)
  return out.sort()
}

/** The route a prerender file belongs to: `server/app/a/b.meta` is `/a/b`, `index` is `/`. */
function routeOf(base: string, root: string): string {
  const rel = relative(root, base).split(sep).join('/')
  return rel === 'index' ? '/' : `/${rel}`
}

function cacheControlFor(meta: RouteMeta, m: ManifestRoute | undefined): CacheControl {
  if (meta.cacheControl !== undefined) return meta.cacheControl
  const r = m?.initialRevalidateSeconds
  return {
    revalidate: typeof r === 'number' ? r : false,
    expire: m?.initialExpireSeconds,
  }
}

/**
 * The build's prerenders, as Next would read them back (FileSystemCache): APP_PAGE html, RSC
 * and segments; APP_ROUTE body; PAGES html and page data. Fallback shells are skipped (they are
 * read with `isFallback`, not under the route's key). Returns what was skipped and why.
 */
export function readSeeds(distDir: string): { seeds: Seed[]; skipped: string[] } {
  const manifest = JSON.parse(readFileSync(join(distDir, 'prerender-manifest.json'), 'utf8')) as {
    routes?: Record<string, ManifestRoute>
  }
  const routes = manifest.routes ?? {}
  const seeds: Seed[] = []
  const skipped: string[] = []
  for (const dir of ['app', 'pages']) {
    const root = join(distDir, 'server', dir)
    if (!existsSync(root)) continue
    for (const file of metaFiles(root)) {
      const base = file.slice(0, -'.meta'.length)
      const route = routeOf(base, root)
      let meta: RouteMeta
      try {
        meta = JSON.parse(readFileSync(file, 'utf8')) as RouteMeta
      } catch {
        skipped.push(`${route}: unreadable .meta`)
        continue
      }
      const key = meta.routeCache?.key
      const kind = meta.routeCache?.owner?.kind
      if (key === undefined || kind === undefined) {
        skipped.push(`${route}: no routeCache key (a Next.js older than 16.4?)`)
        continue
      }
      if (meta.routeCache?.isFallback === true) {
        skipped.push(`${route}: fallback shell`)
        continue
      }
      const cacheControl = cacheControlFor(meta, routes[route])
      let value: IncrementalValue
      let primary: string
      try {
        if (kind === 'APP_PAGE') {
          primary = `${base}.html`
          let segmentData: Map<string, Buffer> | undefined
          if (meta.segmentPaths !== undefined) {
            segmentData = new Map()
            for (const p of meta.segmentPaths) {
              const f = `${base}.segments${p}.segment.rsc`
              // Next treats a missing segment file as a dynamic segment: no prefetch data.
              if (existsSync(f)) segmentData.set(p, readFileSync(f))
            }
          }
          value = {
            kind: 'APP_PAGE',
            html: readFileSync(primary, 'utf8'),
            // A PPR page's RSC needs the dynamic hole filled at request time.
            rscData: meta.postponed == null ? readFileSync(`${base}.rsc`) : undefined,
            headers: meta.headers,
            postponed: meta.postponed,
            status: meta.status,
            segmentData,
          }
        } else if (kind === 'APP_ROUTE') {
          primary = `${base}.body`
          value = {
            kind: 'APP_ROUTE',
            body: readFileSync(primary),
            headers: meta.headers ?? {},
            status: meta.status ?? 200,
          }
        } else if (kind === 'PAGES') {
          primary = `${base}.html`
          value = {
            kind: 'PAGES',
            html: readFileSync(primary, 'utf8'),
            pageData: JSON.parse(readFileSync(`${base}.json`, 'utf8')) as unknown,
            headers: meta.headers,
            status: meta.status,
          }
        } else {
          skipped.push(`${route}: kind ${kind} is not seeded`)
          continue
        }
      } catch (err) {
        skipped.push(`${route}: ${err instanceof Error ? err.message : String(err)}`)
        continue
      }
      seeds.push({
        key,
        route,
        value,
        ctx: { kind, cacheControl },
        builtAt: statSync(primary).mtimeMs,
      })
    }
  }
  return { seeds, skipped }
}

export interface SeedResult {
  written: number
  /** Left out: a tag of theirs was revalidated after the build. */
  outdated: string[]
  /** Not written: the entry in Redis was created at or after the build's (a newer render). */
  kept: string[]
  /** Not written: their lifetime (`expire`) counted from the build is over. */
  expired: string[]
  failed: string[]
  skipped: string[]
}

/**
 * Stores the seeds under the singular handler's keys for these options, each stamped with the
 * time the build wrote it (docs/decisions/0023). A page whose tags were revalidated after the
 * build (by the running fleet: tag state is shared across deployments) is left out: its
 * prerender is older than the data, and a server will render it fresh. Each write is one
 * script that stores the entry only when Redis holds none created at or after the build's
 * time, so a page the fleet rendered since is never moved backwards. Afterwards every written
 * key is read back (EXISTS) on a separate connection.
 */
export async function seed(
  distDir: string,
  options: FleetcacheOptions,
  verify: Conn,
  progress: Progress,
): Promise<SeedResult> {
  const { seeds, skipped } = readSeeds(distDir)
  const rt = runtimeFor(resolveOptions(options))
  const { engine, transport } = rt
  if (transport === undefined) throw new Error('seed needs a Redis URL')
  await rt.tags.refresh()
  const outdated: string[] = []
  const kept: string[] = []
  const expired: string[] = []
  const failed: string[] = []
  /** Each written seed with its Redis key. */
  const written: [Seed, string][] = []
  let done = 0
  try {
    for (const s of seeds) {
      done += 1
      progress.tick(() => `seeded ${String(done)} of ${String(seeds.length)} routes`)
      let key: string
      try {
        // Refuses a key a handler would refuse (not well-formed UTF-16), before anything else.
        key = engine.entryKey(INCREMENTAL, s.key)
      } catch (err) {
        skipped.push(`${s.route}: ${describe(err)}`)
        continue
      }
      const tags = headerTags(s.value)
      const t = now()
      if (engine.tagFreshness(tags.join('\0'), s.builtAt, t) !== 0) {
        outdated.push(s.route)
        continue
      }
      const created = engine.seedTimestamp(s.builtAt, t)
      if (Number.isNaN(created)) {
        skipped.push(`${s.route}: no usable build time`)
        continue
      }
      const envelope = encodeIncrementalEnvelope(engine, s.key, s.value, s.ctx, created)
      if (envelope.stored === undefined) {
        skipped.push(`${s.route}: not cacheable (revalidate 0)`)
        continue
      }
      const argv = engine.planSeedWrite(INCREMENTAL, s.key, created, envelope.ttlMs, now())
      if (argv.length === 0) {
        expired.push(s.route)
        continue
      }
      try {
        const reply = await sendWithValue(transport, argv, envelope.stored, engine)
        if (Number(reply) === 1) written.push([s, key])
        else kept.push(s.route)
      } catch (err) {
        failed.push(`${s.route}: ${describe(err)}`)
      }
    }
  } finally {
    await close()
  }
  let missing = 0
  for (const [s, key] of written) {
    const exists = Number(await verify.send(['EXISTS', key]))
    if (exists !== 1) {
      missing += 1
      failed.push(`${s.route}: not in Redis after writing`)
    }
  }
  return {
    written: written.length - missing,
    outdated,
    kept,
    expired,
    failed,
    skipped,
  }
}
