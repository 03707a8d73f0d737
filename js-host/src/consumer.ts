import { AsyncLocalStorage } from 'node:async_hooks'
import { createRequire } from 'node:module'
import { join } from 'node:path'

import { willServerCache, type WorkUnitStorage } from './consumer-rule'

/**
 * Whether the read in progress will be stored in a server cache by its consumer, by the rule in
 * `consumer-rule.ts` (shared with the workers entry), applied to the store of Next's work-unit
 * storage, which Next's handlers run inside; this file only finds that storage.
 *
 * Also which request a call belongs to, for the tag pulls (`currentRequest`): Next's render,
 * and the scope fleetcache opens when Next resets the request's `IncrementalCache`.
 */

type Storage = WorkUnitStorage

const SPECIFIER = 'next/dist/server/app-render/work-unit-async-storage.external'
const WORK_SPECIFIER = 'next/dist/server/app-render/work-async-storage.external'

/** Undefined until looked up; null when Next's store cannot be reached from here. */
let storage: Storage | null | undefined
/** The same for Next's work storage (one store per render). */
let workStorage: Storage | null | undefined

/**
 * Next's storage exported as `name` by `specifier`, resolved from the app (its cwd) first,
 * then from this package.
 */
function lookupStorage(specifier: string, name: string): Storage | null {
  for (const base of [join(process.cwd(), 'package.json'), __filename]) {
    try {
      const mod = createRequire(base)(specifier) as Record<string, Partial<Storage> | undefined>
      const s = mod[name]
      if (s !== undefined && typeof s.getStore === 'function') return s as Storage
    } catch {
      // Not resolvable from this base: try the next one.
    }
  }
  return null
}

function lookup(): Storage | null {
  return lookupStorage(SPECIFIER, 'workUnitAsyncStorage')
}

/**
 * The render the caller runs in: Next's work store, created per render of a request (and per
 * background regeneration) before anything of it reads a cache, never reused by another
 * render. Undefined outside a render (the response cache reading a page before it renders it,
 * a caller outside Next) or when Next's module cannot be reached. Every 16.x release from
 * 16.0 to 16.5 calls `cacheHandlers.refreshTags()` (lazily, once per cache kind and work
 * store) and the singular handler's reads made by the render inside it.
 */
export function currentRender(): object | undefined {
  // Not `??=`: a failed lookup (null) is kept too, or every refresh would search the disk again.
  if (workStorage === undefined) workStorage = lookupStorage(WORK_SPECIFIER, 'workAsyncStorage')
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
 * one per process, whichever copy of this package (ESM or CJS) opened the scope.
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

const SCOPE = Symbol.for('fleetcache.requestScope')

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
 * True when the current read's result will be stored in a server cache. Where that cannot be
 * known (Next's module not found, a `getStore` that throws, a store whose fields cannot be read,
 * an unknown store type), true: a stale entry is then a miss, which costs a regeneration or a
 * wait but never stores data a revalidation invalidated.
 */
export function consumerWillServerCache(): boolean {
  // Not `??=`: a failed lookup (null) is kept too, or every read would search the disk again.
  if (storage === undefined) storage = lookup()
  // Outside any render (the response cache reading a page before it renders it): nothing
  // caches the answer but the handler itself.
  return willServerCache(storage) ?? false
}
