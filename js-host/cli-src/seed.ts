/**
 * `fleetcache seed <.next dir>`: pushes a build's prerendered pages, route-handler bodies and
 * RSC / segment data into Redis under the runtime keys (Next promotes build output only in its own file-system cache:
 * `next/dist/server/lib/incremental-cache/file-system-cache.js`), so that a new
 * deployment's first request for a prerendered route is a hit on every instance.
 *
 * `next build` writes prerenders to `.next/server/{app,pages}` (and, from 16.3.8 with
 * `adapterPath`, to `.next/server/route-cache/`) beside a `.meta` file; a custom handler never
 * sees them. This command rebuilds each value in the shape Next itself reads from those files
 * (its FileSystemCache) and stores it in the envelope `fleetcache/incremental` writes at
 * runtime, under the key a server of that release asks its handler for, stamped with the time
 * the build wrote it and never over a newer entry (docs/decisions/0016, 0023, 0024).
 *
 * The key: from 16.3.8 the `.meta` holds it (`routeCache.key`); before, Next asks for the
 * route's pathname as `normalizePagePath` makes it (`/` is `/index`), which is the prerender's
 * path under `server/app` or `server/pages` (FileSystemCache maps one to the other), and the
 * release that built the tree is read from `.next/diagnostics/framework.json`.
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs'
import { join, relative, resolve, sep } from 'node:path'

import { joinTags, splitArgv } from '../dist/argv'
import { now } from '../dist/clock'
import type { FleetcacheOptions } from '../dist/config'
import { resolveOptions } from '../dist/config'
import type { CacheControl, IncrementalSetContext } from '../dist/incremental-handler'
import { encodeIncrementalEnvelope } from '../dist/incremental-envelope'
import { describe } from '../dist/log'
import { builtWithNext } from '../dist/next-build-files'
import { runtimeFor } from '../dist/runtime'
import { closeRuntime } from '../dist/closing'
import { sendWithValue } from '../dist/store'
import type { IncrementalValue } from '../dist/value-codec'
import { headerTags } from '../dist/value-codec'
import { counted } from './commands'
import type { Conn } from './redis'
import { Progress } from './redis'
import { tools, toolsEngine } from './tools'

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

/** The first release whose `.meta` files carry `routeCache` (and whose servers ask for it). */
export const ROUTE_CACHE_KEYS_SINCE = '16.3.8'

/** Where 16.3.8 and later write prerenders when `adapterPath` is set (Next's ROUTE_CACHE_DIRECTORY). */
const ROUTE_CACHE_DIR = 'route-cache'

/** `[major, minor, patch]` of a version, prerelease and build dropped; undefined if not one. */
function versionTriple(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(v)
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined
}

/**
 * True when `version` is older than `than`. A prerelease counts as its release: a
 * 16.3.8-canary is not older than 16.3.8 (Next's canaries carry the changes of the release
 * they lead to, and a build without `routeCache` is then refused, not keyed wrongly).
 */
export function olderThan(version: string, than: string): boolean {
  const a = versionTriple(version)
  const b = versionTriple(than)
  if (a === undefined || b === undefined) return false
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return (a[i] ?? 0) < (b[i] ?? 0)
  return false
}

/** The pathname of a `normalizePagePath` key: `/index` is `/`, `/index/x` is `/x`. */
function denormalizePagePath(p: string): string {
  if (p === '/index') return '/'
  return p.startsWith('/index/') ? p.slice('/index'.length) : p
}

/** Where `fleetcache seed <dir>` found the build to seed, or why it will not guess. */
export type FoundBuild = { distDir: string } | { problem: string }

/** Whether `dir` holds a Next.js build: every `next build` writes its BUILD_ID. */
function holdsBuild(dir: string): boolean {
  return existsSync(join(dir, 'BUILD_ID'))
}

/** The `distDir` the build in `dir` recorded (its `required-server-files.json`), if readable. */
function recordedDistDir(dir: string): string | undefined {
  try {
    const rec = JSON.parse(readFileSync(join(dir, 'required-server-files.json'), 'utf8')) as {
      config?: { distDir?: unknown }
    }
    const d = rec.config?.distDir
    return typeof d === 'string' && d !== '' ? d : undefined
  } catch {
    return undefined
  }
}

/** `<dir> (BUILD_ID <id>, built <time>)`, for telling two builds apart in one message. */
function describeBuild(dir: string): string {
  const file = join(dir, 'BUILD_ID')
  const id = readFileSync(file, 'utf8').trim()
  return `${dir} (BUILD_ID ${id}, built ${statSync(file).mtime.toISOString()})`
}

/** How many levels below an app directory `findBuildDir` looks for a custom `distDir`. */
const DIST_DIR_DEPTH = 4

/**
 * The directories 2 to `DIST_DIR_DEPTH` levels below `dir` that hold a BUILD_ID and a
 * `required-server-files.json`, sorted. Not searched: `node_modules` and `.git` (large, and
 * no distDir of the app), and a build's own tree (its `standalone` copy is the build again).
 */
function deeperBuilds(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string, depth: number): void => {
    let names: string[]
    try {
      names = readdirSync(d).sort()
    } catch {
      return
    }
    for (const name of names) {
      if (name === 'node_modules' || name === '.git') continue
      const child = join(d, name)
      try {
        if (!statSync(child).isDirectory()) continue
      } catch {
        continue
      }
      if (holdsBuild(child)) {
        if (depth >= 2 && existsSync(join(child, 'required-server-files.json'))) out.push(child)
        continue
      }
      if (depth < DIST_DIR_DEPTH) walk(child, depth + 1)
    }
  }
  walk(resolve(dir), 1)
  return out
}

/**
 * The build `fleetcache seed <dir>` seeds. `dir` itself when it holds one. Otherwise `dir` is
 * the app's directory, and the build is the one a server of the app reads: under
 * `FLEETCACHE_DIST_DIR` when set (a server's first choice), else under next.config's
 * `distDir`, which only Next can evaluate. So every build directly under `dir` is a candidate
 * (`.next`, and any directory holding a BUILD_ID and a `required-server-files.json`), and one
 * alone is taken: with a custom `distDir`, a `.next` left by a build from before it is no
 * evidence of which the servers read, and seeding the wrong one writes under a namespace no
 * server reads. A build recording another `distDir` than where it lies (copied there) is
 * refused for the same reason, unless given itself. Deeper down (to `DIST_DIR_DEPTH` levels),
 * a build is a candidate where its record puts it: `distDir: 'out/build'`.
 */
export function findBuildDir(dir: string, env: Record<string, string | undefined>): FoundBuild {
  if (holdsBuild(dir)) return { distDir: dir }
  const chosen = env.FLEETCACHE_DIST_DIR
  if (chosen) {
    const d = resolve(dir, chosen)
    return holdsBuild(d)
      ? { distDir: d }
      : { problem: `no Next.js build in ${d} (FLEETCACHE_DIST_DIR)` }
  }
  const found: string[] = []
  let entries: string[] = []
  try {
    // Every name, links too (`.next -> /releases/<n>/.next`): `holdsBuild` follows them, and
    // a file or a dangling link holds no BUILD_ID.
    entries = readdirSync(dir).sort()
  } catch {
    // Not a directory (or not readable): no build in it, said below.
  }
  for (const name of entries) {
    const d = resolve(dir, name)
    if (!holdsBuild(d)) continue
    if (name === '.next' || existsSync(join(d, 'required-server-files.json'))) found.push(d)
  }
  // Deeper, a build is a candidate only where its own record puts it (a fixture's copy of a
  // `.next` is not one): `distDir: 'out/build'` beside an older `.next` is two builds too.
  for (const d of deeperBuilds(dir)) {
    const recorded = recordedDistDir(d)
    if (recorded !== undefined && resolve(dir, recorded) === d && !found.includes(d)) found.push(d)
  }
  // A build that records another distDir (copied to where it lies) names where its servers
  // look: a build there is a candidate too, however deep.
  for (const d of [...found]) {
    const recorded = recordedDistDir(d)
    const there = recorded === undefined ? d : resolve(dir, recorded)
    if (!found.includes(there) && holdsBuild(there)) found.push(there)
  }
  // `.next` first, then the rest by name: the order the message lists them in.
  found.sort((a, b) => Number(b.endsWith(`${sep}.next`)) - Number(a.endsWith(`${sep}.next`)))
  if (found.length > 1) {
    return {
      problem: `${dir} holds more than one Next.js build: ${found.map(describeBuild).join(', ')}; pass the one your next.config's distDir names (the servers' build), or set FLEETCACHE_DIST_DIR to it`,
    }
  }
  const [only] = found
  if (only === undefined) {
    return {
      problem: `no Next.js build in ${dir}: neither it nor a directory directly in it holds a BUILD_ID, nor a custom distDir up to ${DIST_DIR_DEPTH} levels down (with a build elsewhere, pass that directory)`,
    }
  }
  const recorded = recordedDistDir(only)
  if (recorded !== undefined && resolve(dir, recorded) !== only) {
    return {
      problem: `the build in ${only} records distDir '${recorded}' (its required-server-files.json): a server of that config reads ${resolve(dir, recorded)}, which holds no build; pass ${only} to seed it all the same`,
    }
  }
  return { distDir: only }
}

/**
 * The prerenders under `root`, as paths without extension: every `.meta`, and with
 * `pagesWithoutMeta` every `.html` with a `.json` beside it and no `.meta` (Pages Router
 * prerenders before 16.3.8 have none).
 */
function prerenderBases(root: string, pagesWithoutMeta: boolean): string[] {
  const out: string[] = []
  let seen = 0
  const walk = (d: string): void => {
    let entries
    try {
      entries = readdirSync(d, { withFileTypes: true })
    } catch {
      return
    }
    const names = new Set(entries.map((e) => e.name))
    for (const e of entries) {
      if (++seen > MAX_FILES) throw new Error(`more than ${String(MAX_FILES)} files under ${root}`)
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.meta')) out.push(p.slice(0, -'.meta'.length))
      else if (pagesWithoutMeta && e.name.endsWith('.html')) {
        const stem = e.name.slice(0, -'.html'.length)
        if (names.has(`${stem}.json`) && !names.has(`${stem}.meta`)) out.push(join(d, stem))
      }
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
export function readSeeds(distDir: string): {
  seeds: Seed[]
  skipped: string[]
  nextVersion: string | undefined
} {
  const manifest = JSON.parse(readFileSync(join(distDir, 'prerender-manifest.json'), 'utf8')) as {
    routes?: Record<string, ManifestRoute>
    dynamicRoutes?: Record<string, unknown>
  }
  const routes = manifest.routes ?? {}
  const dynamicRoutes = manifest.dynamicRoutes ?? {}
  const nextVersion = builtWithNext(distDir)
  // Before 16.3.8 a server asks for the prerender's own path; from it, for routeCache.key.
  const pathKeys = nextVersion !== undefined && olderThan(nextVersion, ROUTE_CACHE_KEYS_SINCE)
  const seeds: Seed[] = []
  const skipped: string[] = []
  const seen = new Set<string>()
  for (const dir of ['app', 'pages', ROUTE_CACHE_DIR]) {
    const root = join(distDir, 'server', dir)
    if (!existsSync(root)) continue
    for (const base of prerenderBases(root, pathKeys && dir === 'pages')) {
      const file = `${base}.meta`
      const inRouteCache = dir === ROUTE_CACHE_DIR
      // The path under server/: Next's FileSystemCache reads `server/<key>.<ext>`.
      const pathKey = `/${relative(join(distDir, 'server'), base).split(sep).join('/')}`
      let route = routeOf(base, root)
      let meta: RouteMeta
      try {
        meta = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as RouteMeta) : {}
      } catch {
        skipped.push(`${route}: unreadable .meta`)
        continue
      }
      let key = meta.routeCache?.key
      let kind = meta.routeCache?.owner?.kind
      if (inRouteCache) {
        const at = key?.indexOf('/$/') ?? -1
        if (key === undefined || key !== pathKey || at === -1) {
          skipped.push(`${pathKey}: a route-cache prerender whose .meta does not name its own key`)
          continue
        }
        route = denormalizePagePath(key.slice(at + 2))
      }
      if (key === undefined && pathKeys) {
        // What FileSystemCache of these releases reads for each kind: the primary file decides.
        key = `/${relative(join(distDir, 'server', dir), base)
          .split(sep)
          .join('/')}`
        kind =
          dir === 'pages'
            ? 'PAGES'
            : existsSync(`${base}.body`)
              ? 'APP_ROUTE'
              : existsSync(`${base}.html`)
                ? 'APP_PAGE'
                : undefined
        // A dynamic route's fallback shell is stored under its pattern and read with isFallback.
        if (route in dynamicRoutes) {
          skipped.push(`${route}: fallback shell`)
          continue
        }
      }
      if (key === undefined || kind === undefined) {
        skipped.push(
          nextVersion === undefined
            ? `${route}: its .meta has no routeCache key, and no diagnostics/framework.json says which Next.js release built it (seed needs one of the two)`
            : `${route}: its .meta has no routeCache key, which Next.js ${nextVersion} writes for every prerender it reads back`,
        )
        continue
      }
      if (meta.routeCache?.isFallback === true) {
        skipped.push(`${route}: fallback shell`)
        continue
      }
      // With adapterPath, 16.3.8 may leave a prerender in both places: one entry per key.
      if (seen.has(key)) continue
      seen.add(key)
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
  return { seeds, skipped, nextVersion }
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
 * key is read back (EXISTS) on a separate connection. `deploymentSource` says where the
 * deployment id came from, for the namespace line (`--deployment`, a variable, the build id).
 */
export async function seed(
  distDir: string,
  options: FleetcacheOptions,
  verify: Conn,
  progress: Progress,
  deploymentSource = 'options',
): Promise<SeedResult> {
  const { seeds, skipped } = readSeeds(distDir)
  // Not a server: the warning about durable 'use cache' keys is for `next start` (decision 0032).
  // Whether they are durable (the start line says where they go) is the seeded build's, not
  // that of whatever app the command runs in.
  const rt = runtimeFor(resolveOptions(options, deploymentSource), 'seed', distDir)
  const outdated: string[] = []
  const kept: string[] = []
  const expired: string[] = []
  const failed: string[] = []
  /** Each written seed with its Redis key. */
  const written: [Seed, string][] = []
  let done = 0
  // From the runtime on, whatever throws closes it: its Redis connection (open from the tag
  // refresh on) would keep the process from exiting. Only it: the process's other runtimes
  // (a server's handlers, when seed is called as a function) go on serving.
  try {
    const { transport } = rt
    const engine = toolsEngine(rt.engine)
    // Seeded routes are the singular handler's entries.
    const incremental = tools().Interface.incremental()
    if (transport === undefined) throw new Error('seed needs a Redis URL')
    await rt.tags.refresh()
    for (const s of seeds) {
      done += 1
      progress.tick(() => `seeded ${String(done)} of ${counted(seeds.length, 'route')}`)
      let key: string
      try {
        // Refuses a key a handler would refuse (not well-formed UTF-16), before anything else.
        key = engine.entryKey(incremental, s.key)
      } catch (err) {
        skipped.push(`${s.route}: ${describe(err)}`)
        continue
      }
      const tags = headerTags(s.value)
      const t = now()
      if (engine.tagFreshness(joinTags(tags), s.builtAt, t) !== tools().Freshness.Fresh) {
        outdated.push(s.route)
        continue
      }
      const created = engine.seedTimestamp(s.builtAt, t)
      if (Number.isNaN(created)) {
        skipped.push(`${s.route}: no usable build time (none, or later than this machine's clock)`)
        continue
      }
      const envelope = encodeIncrementalEnvelope(engine, s.key, s.value, s.ctx, created)
      if (envelope.stored === undefined) {
        skipped.push(`${s.route}: not cacheable (revalidate 0)`)
        continue
      }
      const argv = splitArgv(
        engine.planSeedWrite(incremental, s.key, created, envelope.ttlMs, now()),
      )
      if (argv.length === 0) {
        expired.push(s.route)
        continue
      }
      try {
        const reply = await sendWithValue(transport, argv, envelope.stored, rt.engine)
        if (Number(reply) === 1) written.push([s, key])
        else kept.push(s.route)
      } catch (err) {
        failed.push(`${s.route}: ${describe(err)}`)
      }
    }
  } finally {
    await closeRuntime(rt)
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
