import { AsyncLocalStorage } from 'node:async_hooks'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { willServerCache, type WorkUnitStorage } from './consumer-rule'
import { createLogger } from './log'
import { PACKAGE_VERSION } from './package-version'

/**
 * Whether the read in progress will be stored in a server cache by its consumer, by the rule in
 * `consumer-rule.ts` (shared with the workers entry), applied to the store of Next's work-unit
 * storage, which Next's handlers run inside; this file only finds that storage, the one of the
 * copy of Next that renders (`storageOf`).
 *
 * Also which request a call belongs to, for the tag pulls (`currentRequest`): Next's render,
 * and the scope fleetcache opens when Next resets the request's `IncrementalCache`.
 */

type Storage = WorkUnitStorage

/**
 * One of Next's storage modules: `file` under `next/dist/server/app-render/`, exporting `name`.
 * `storage`: what reads use once settled (null: none can be used, the read is taken to be
 * stored), undefined until then. `resolved`: while no copy is loaded, the file the module
 * resolves to from the app or this package (null: none), undefined until looked up.
 */
interface NextStorage {
  readonly file: string
  readonly name: string
  storage: Storage | null | undefined
  resolved: string | null | undefined
}

const APP_RENDER = 'next/dist/server/app-render/'

const WORK_UNIT: NextStorage = {
  file: 'work-unit-async-storage.external.js',
  name: 'workUnitAsyncStorage',
  storage: undefined,
  resolved: undefined,
}
const WORK: NextStorage = {
  file: 'work-async-storage.external.js',
  name: 'workAsyncStorage',
  storage: undefined,
  resolved: undefined,
}

/**
 * Set on `globalThis` when the warning about several copies of Next was written: once per
 * process and package version. On `globalThis`, not in this module: two copies of one version
 * (Next's server and a route's trace each loading the package) would each warn of the same
 * copies of Next.
 */
const WARNED = Symbol.for(`fleetcache.next-copies-warned@${PACKAGE_VERSION}`)

/**
 * The storage reads use: the one of the copy of Next that loaded it. Next loads both modules
 * before it makes any cache call (every 16.x from 16.0 to 16.5: `IncrementalCache`, which
 * constructs the singular handler, requires both at load), so the copy that renders is in the
 * module cache by the first read. A copy fleetcache would load itself is not that one unless
 * it is the same file: Next 16.0 to 16.3 give each copy its own AsyncLocalStorage, which no
 * render enters.
 *
 * Settled by the first call that finds a copy loaded (one pass over the module cache; a copy
 * loaded later is not looked at), or that finds none loaded and none resolvable (fleetcache
 * used without Next: kept, so no read searches the disk again). A settled storage costs a read
 * nothing more. Until then (a call before Next loaded its copy) each call checks whether the
 * resolved file is in the module cache, one lookup, and the read is taken to be stored; if
 * Next loads another copy than that file, reads stay so.
 */
function storageOf(s: NextStorage): Storage | null {
  if (s.storage !== undefined) return s.storage
  if (typeof s.resolved === 'string' && require.cache[s.resolved] === undefined) return null
  const loaded = loadedCopies(s)
  if (s.resolved === undefined) s.resolved = resolveCopy(s.file)
  if (loaded.length === 0) {
    if (s.resolved === null) s.storage = null
    return null
  }
  const storages = new Set(loaded.map((c) => c.storage))
  if (storages.size > 1) {
    const dirs = loaded.map((c) => c.dir)
    warnOnce(
      `copies of Next.js with storages of their own are loaded in this process (${dirs.join(', ')}): fleetcache cannot tell which one renders, so it takes every read to be stored in a server cache (no read gets a stale entry as fresh while another request holds its lease)`,
    )
    s.storage = null
    return null
  }
  s.storage = loaded[0]?.storage ?? null
  return s.storage
}

interface Copy {
  /** The `next` package directory. */
  readonly dir: string
  readonly storage: Storage
}

/** The copies of `s` in the module cache, whichever way they were loaded (`require`, `import`). */
function loadedCopies(s: NextStorage): Copy[] {
  const copies: Copy[] = []
  const cache = require.cache
  for (const key of Object.keys(cache)) {
    const dir = nextDir(key, s.file)
    if (dir === null) continue
    try {
      const exported = (cache[key]?.exports as Record<string, Partial<Storage> | undefined>)[s.name]
      if (exported !== undefined && typeof exported.getStore === 'function') {
        copies.push({ dir, storage: exported as Storage })
      }
    } catch {
      // Exports not readable (a module still loading): not a copy to use.
    }
  }
  return copies
}

/**
 * The `next` package directories whose work-unit storage module the process has loaded: the
 * copies of Next that run (Next loads it at start, before its config and the cache handlers).
 * One pass over the module cache.
 */
export function loadedNextDirs(): string[] {
  const dirs = new Set<string>()
  for (const key of Object.keys(require.cache)) {
    const dir = nextDir(key, WORK_UNIT.file)
    if (dir !== null) dirs.add(dir)
  }
  return [...dirs]
}

/** The `next` directory `path` is `file` of, or null when it is not that file of a `next`. */
function nextDir(path: string, file: string): string | null {
  const suffix = APP_RENDER + file
  const normalized = path.replace(/\\/g, '/')
  if (!normalized.endsWith('/' + suffix)) return null
  // `next/` stays: the directory is the package's own, 'next' included.
  return path.slice(0, path.length - suffix.length + 'next'.length)
}

/**
 * The file `file` resolves to from the app (its cwd) first, then from this package; null when
 * from neither. Resolved, not loaded: only a copy Next loads is read.
 */
function resolveCopy(file: string): string | null {
  const specifier = APP_RENDER + file.replace(/\.js$/, '')
  for (const base of [join(process.cwd(), 'package.json'), __filename]) {
    try {
      return createRequire(base).resolve(specifier)
    } catch {
      // Not resolvable from this base: try the next one.
    }
  }
  return null
}

function warnOnce(message: string): void {
  const g = globalThis as unknown as Record<symbol, boolean | undefined>
  if (g[WARNED] === true) return
  g[WARNED] = true
  createLogger(false).warn(message)
}

/**
 * The render the caller runs in: Next's work store, created per render of a request (and per
 * background regeneration) before anything of it reads a cache, never reused by another
 * render. Undefined outside a render (the response cache reading a page before it renders it,
 * a caller outside Next) or when the storage of the Next that renders cannot be told
 * (`storageOf`: a call before Next loaded it, several copies loaded), where every tag refresh
 * pulls. Every 16.x release from 16.0 to 16.5 calls `cacheHandlers.refreshTags()` (lazily,
 * once per cache kind and work store) and the singular handler's reads made by the render
 * inside it.
 */
export function currentRender(): object | undefined {
  const workStorage = storageOf(WORK)
  if (workStorage === null) return undefined
  try {
    const store = workStorage.getStore()
    return typeof store === 'object' && store !== null ? store : undefined
  } catch {
    return undefined
  }
}

/**
 * The scope a request opened when Next reset its `IncrementalCache` (see `openRequestScope`):
 * the singular handler instances Next reset in the request so far, newest last. The storage is
 * one per package version in the process (`SCOPE`): whichever copy of this version (ESM or CJS)
 * opened the scope, and none of another version's.
 */
interface RequestScope {
  readonly handlers: readonly object[]
}

/**
 * Handlers a scope remembers. A request resets two `IncrementalCache`s (the server's, then the
 * one of `renderToResponseWithComponents`, while the page renders with the first; from 16.2 the
 * page handler resets the first again); a chain that resets more (a caller outside Next) keeps
 * the newest.
 */
const SCOPE_HANDLERS = 8

/**
 * The key of this version's scope storage on `globalThis`: one per package version, so that a
 * version reads only scopes its own handlers opened, holding only its own handlers (two copies
 * in node_modules: each opens its own scope for a request). Builds from before this key used
 * `fleetcache.requestScope` for every version, which no version reads now.
 */
const SCOPE = Symbol.for(`fleetcache.requestScope@${PACKAGE_VERSION}`)

function scopes(): AsyncLocalStorage<RequestScope> {
  const g = globalThis as unknown as Record<symbol, AsyncLocalStorage<RequestScope> | undefined>
  let s = g[SCOPE]
  if (s === undefined) {
    s = new AsyncLocalStorage<RequestScope>()
    g[SCOPE] = s
  }
  return s
}

/**
 * Opens a request scope for what follows in the caller's async context. Called from the
 * singular handler's `resetRequestCache`, which Next calls synchronously on the request's
 * `IncrementalCache` right after getting it, in that request's own async chain and before
 * anything of the request reads a cache (every 16.x release from 16.0 to 16.5: the server's
 * request handling and `renderToResponseWithComponents`, and from 16.2 the page and route
 * handlers again). `enterWith`, not `run`: Next makes the call, so the scope covers the rest of
 * the request (the page read, the render, a PPR resume, a background regeneration) and nothing
 * before it or of any other request. `began` is told the new scope before it is entered.
 *
 * What "the rest" is differs between Node releases only outside what Next relies on. Every
 * release Next calls this from after an `await` (a promise continuation), and the scope reaches
 * what the calling function does next and everything it awaits or starts: Next reads the page
 * and renders inside that function (`handleRequestImpl`, `renderToResponseWithComponentsImpl`,
 * the route handlers). Node 20 and 22 (async_hooks) also let it reach the continuation of that
 * function's caller once it returns, and keep it for later callbacks of a reused native
 * resource when it is entered in one; Node 24 and later (AsyncContextFrame) do neither. From
 * where Next calls it, neither reaches another request, nor misses the page read or the render
 * (`asNext` in test/tags.test.mjs, and test/own-read-stamping.test.mjs; `make test-node` runs
 * them on 22, 24 and 26).
 */
export function openRequestScope(handler: object, began: (scope: object) => void): void {
  const storage = scopes()
  const earlier = storage.getStore()?.handlers ?? []
  const scope: RequestScope = {
    handlers: [...earlier.slice(1 - SCOPE_HANDLERS), handler],
  }
  began(scope)
  storage.enterWith(scope)
}

/** The singular handler instance of the `IncrementalCache` a render's work store holds. */
function renderHandler(render: object): unknown {
  const cache = (render as { incrementalCache?: unknown }).incrementalCache
  return typeof cache === 'object' && cache !== null
    ? (cache as { cacheHandler?: unknown }).cacheHandler
    : undefined
}

/**
 * The request a tag refresh is made for, as far as it can be told; undefined outside a render
 * (every such call pulls). Inside a render, the scope its request opened when that scope is
 * the render's own: a handler Next reset in it is the one of the `IncrementalCache` the
 * render's work store holds (a work store with another, such as a proxy's, which takes
 * whatever `IncrementalCache` the process last set globally, is not). Else the render itself.
 */
export function currentRequest(): object | undefined {
  const render = currentRender()
  if (render === undefined) return undefined
  const scope = scopes().getStore()
  if (scope === undefined) return render
  const handler = renderHandler(render)
  return handler !== undefined && scope.handlers.includes(handler as object) ? scope : render
}

/**
 * What a `fetch` or `unstable_cache` call runs in, to tell apart calls that share one
 * singular handler instance (see `OwnReads`): the render (Next's work store, entered with
 * `run` around the whole call), else the scope of the request (opened as Next resets the
 * request's `IncrementalCache`, before anything of the request reads), else undefined (code
 * outside any request). A call's read and write see the same one: both run in the call's own
 * async chain, which Next's later `enterWith`s elsewhere in the request do not reach.
 */
export function currentCall(): object | undefined {
  return currentRender() ?? scopes().getStore()
}

/**
 * True when the current read's result will be stored in a server cache (`willServerCache`).
 * Where that cannot be known (no copy of Next's module loaded, several loaded with storages of
 * their own: see `storageOf`; a store that cannot be read, an unknown store type), true: a stale
 * entry is then a miss, which costs a regeneration or a wait but never stores data a
 * revalidation invalidated.
 */
export function consumerWillServerCache(): boolean {
  // Outside any render (the response cache reading a page before it renders it): nothing
  // caches the answer but the handler itself.
  return willServerCache(storageOf(WORK_UNIT)) ?? false
}
