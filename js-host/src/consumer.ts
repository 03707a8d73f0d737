import { createRequire } from 'node:module'
import { join } from 'node:path'

/**
 * Whether the read in progress will be stored in a server cache by its consumer: a prerender or
 * an ISR regeneration (the page is cached), or a `'use cache'` scope whose own consumer caches.
 * The engine then never hands it a stale entry, not even "as fresh" to a lease follower
 * (docs/single-flight.md). Next's handlers run inside the consumer's
 * work-unit store, which says so; this file only reads that fact.
 *
 * Next 16.4 decides the same with `willConsumerServerCache(store)`; 16.0 to 16.3 have no such
 * function and no `consumerWillServerCache` field (they ask `workStore.isStaticGeneration`), so
 * the rule is mirrored from the store's `type` here, for every 16.x.
 */

/** The fields of Next's work-unit store read here. */
interface WorkUnitStore {
  type?: unknown
  consumerWillServerCache?: unknown
}

interface Storage {
  getStore(): unknown
}

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

/** Store types whose consumer never caches what it reads (Next 16.4's rule). */
const SERVES = new Set([
  'request',
  'prerender-runtime',
  'validation-client',
  'build-time-generator',
])
/** Cache scopes: they cache unless they say their own consumer does not. */
const SCOPES = new Set(['cache', 'private-cache', 'unstable-cache'])

/**
 * True when the current read's result will be stored in a server cache. Where that cannot be
 * known (Next's module not found, an unknown store type), true: a stale entry is then a miss,
 * which costs a regeneration or a wait but never stores data a revalidation invalidated.
 */
export function consumerWillServerCache(): boolean {
  // Not `??=`: a failed lookup (null) is kept too, or every read would search the disk again.
  if (storage === undefined) storage = lookup()
  if (storage === null) return true
  let store: WorkUnitStore | null | undefined
  try {
    store = storage.getStore() as WorkUnitStore | null | undefined
  } catch {
    return true
  }
  // Outside any render (the response cache reading a page before it renders it): nothing
  // caches the answer but the handler itself.
  if (store === undefined || store === null) return false
  const type = typeof store.type === 'string' ? store.type : ''
  if (SERVES.has(type)) return false
  // Releases before 16.4 carry no such field: their scopes are taken to cache.
  if (SCOPES.has(type)) return store.consumerWillServerCache !== false
  // 'prerender', 'prerender-client', 'prerender-legacy', 'prerender-ppr', and any type a later
  // release adds.
  return true
}
