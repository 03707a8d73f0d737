/**
 * Whether a read's answer will be stored in a server cache by its consumer, from the Next
 * work-unit store the read runs in: a prerender or an ISR regeneration (the page is cached), or
 * a `'use cache'` scope whose own consumer caches. The engine then never hands it a stale
 * entry, not even "as fresh" to a lease follower (docs/single-flight.md).
 *
 * Written once for both builds (docs/decisions/0027): the Node handlers find Next's storage
 * themselves (`consumer.ts`); the workers entry is given it by the host (`createCache`'s
 * `workUnitAsyncStorage`). No Node API here.
 *
 * Next 16.4 decides the same with `willConsumerServerCache(store)`; 16.0 to 16.3 have no such
 * function and no `consumerWillServerCache` field (they ask `workStore.isStaticGeneration`), so
 * the rule is mirrored from the store's `type` here, for every 16.x.
 */

/**
 * Next's `workUnitAsyncStorage` (`next/dist/server/app-render/work-unit-async-storage.external`),
 * or anything with its `getStore`: the store of the work unit the caller runs in, if any.
 */
export interface WorkUnitStorage {
  getStore(): unknown
}

/** The fields of Next's work-unit store read here. */
interface WorkUnitStore {
  type?: unknown
  consumerWillServerCache?: unknown
}

/** Store types whose consumer never caches what it reads (Next 16.4's rule). */
const SERVES: ReadonlySet<string> = new Set([
  'request',
  'prerender-runtime',
  'validation-client',
  'build-time-generator',
])
/** Cache scopes: they cache unless they say their own consumer does not. */
const SCOPES: ReadonlySet<string> = new Set(['cache', 'private-cache', 'unstable-cache'])

/**
 * True when the read running now will have its result stored in a server cache, by the store
 * `storage` gives. Where that cannot be known (no storage, a `getStore` that throws, an unknown
 * store type), true: a stale entry is then a miss, which costs a regeneration or a wait but
 * never stores data a revalidation invalidated.
 */
export function willServerCache(storage: WorkUnitStorage | null): boolean {
  if (storage === null) return true
  try {
    const store = storage.getStore()
    // Outside any work unit (the response cache reading a page before it renders it): nothing
    // caches the answer but the handler itself.
    if (store === undefined || store === null) return false
    const { type, consumerWillServerCache } = store as WorkUnitStore
    const kind = typeof type === 'string' ? type : ''
    if (SERVES.has(kind)) return false
    // Releases before 16.4 carry no such field: their scopes are taken to cache.
    if (SCOPES.has(kind)) return consumerWillServerCache !== false
    // 'prerender', 'prerender-client', 'prerender-legacy', 'prerender-ppr', and any type a
    // later release adds.
    return true
  } catch {
    // A store that cannot be read (its getter threw) tells nothing.
    return true
  }
}
