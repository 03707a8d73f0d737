/**
 * Whether a read's answer will be stored in a server cache by its consumer, from the Next
 * work-unit store the read runs in: a prerender or an ISR regeneration (the page is cached), or
 * a `'use cache'` scope whose own consumer caches. The engine then never hands it a stale
 * entry, not even "as fresh" to a lease follower (https://github.com/fleetcache/fleetcache/blob/main/docs/single-flight.md).
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
 * `storage` gives; false when it serves a response. Where that cannot be known (no storage, a
 * `getStore` that throws, a store whose fields cannot be read, an unknown store type), true: a
 * stale entry is then a miss, which costs a regeneration or a wait but never stores data a
 * revalidation invalidated.
 *
 * Undefined outside any work unit (no store): each build decides. The Node handlers take such a
 * read to serve a response (their response cache reads a page so before it renders it); the
 * workers entry, which only Next's `'use cache'` calls, takes it to be stored (Next 16.2 and
 * later never call a `'use cache'` handler outside a work unit).
 */
export function willServerCache(storage: WorkUnitStorage | null): boolean | undefined {
  if (storage === null) return true
  try {
    const store = storage.getStore()
    if (store === undefined || store === null) return undefined
    const type = (store as WorkUnitStore).type
    const kind = typeof type === 'string' ? type : ''
    if (SERVES.has(kind)) return false
    // Read for scopes only, as Next does. Releases before 16.4 carry no such field: their
    // scopes are taken to cache.
    if (SCOPES.has(kind)) return (store as WorkUnitStore).consumerWillServerCache !== false
    // 'prerender', 'prerender-client', 'prerender-legacy', 'prerender-ppr', and any type a
    // later release adds.
    return true
  } catch {
    // A store that cannot be read (its getter threw) tells nothing.
    return true
  }
}
