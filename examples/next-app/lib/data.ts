import { cacheLife, cacheTag } from 'next/cache'
import { readOrigin, type OriginData } from './origin'

// 'use cache' -> cacheHandlers.default (fleetcache). Tagged 'products': revalidateTag('products', ...)
// on any instance of the fleet invalidates it on all of them. `list` is part of the cache key
// (null: the main list, origin key 'products'; 'x': origin key 'products-x').
export async function getProducts(list: string | null): Promise<OriginData> {
  'use cache'
  cacheTag('products')
  const data = await readOrigin(list ? `products-${list}` : 'products')
  if (data.error) cacheLife('seconds')
  else cacheLife({ stale: 300, revalidate: 3600, expire: 86400 })
  return data
}

// The same list with a short life (revalidate 2 s, expire 60 s), for the fleet benchmark
// (bench/fleet.mjs), whose bounded run must see entries go stale and regenerate. Its own cache
// entries (another function), tagged 'products' as well.
export async function getShortLivedProducts(list: string | null): Promise<OriginData> {
  'use cache'
  cacheTag('products')
  const data = await readOrigin(list ? `products-${list}` : 'products')
  if (data.error) cacheLife('seconds')
  else cacheLife({ stale: 30, revalidate: 2, expire: 60 })
  return data
}

// 'use cache: remote' -> cacheHandlers.remote (fleetcache as well).
export async function getRemoteData(): Promise<OriginData> {
  'use cache: remote'
  cacheTag('remote-data')
  const data = await readOrigin('remote-data')
  if (data.error) cacheLife('seconds')
  else cacheLife({ stale: 300, revalidate: 3600, expire: 86400 })
  return data
}

// Read by a prerendered page (/shared/static) and a dynamic one (/shared/dynamic): one entry,
// tagged 'shared', with the lifetime of cacheLife('default') but a bounded expire. `next build`
// has no origin: its placeholder gets the same long life, so the page is still prerendered
// (a short-lived entry would leave a dynamic hole); at run time the first request renders again.
export async function getShared(): Promise<OriginData> {
  'use cache'
  cacheTag('shared')
  const data = await readOrigin('shared')
  if (data.error && process.env.ORIGIN_URL) cacheLife('seconds')
  else cacheLife({ stale: 300, revalidate: 900, expire: 86400 })
  return data
}

// A 'use cache' function around getShared: an entry of its own, which Next tags 'shared' too
// (an inner entry's tags reach the outer one). Read by the prerendered /shared/nested, whose
// regeneration may join a fill of getShared that another request has pending: the outer entry
// then holds that fill's data (tests/faults/freshness-bound.test.mjs).
export async function getSharedNested(): Promise<OriginData> {
  'use cache'
  cacheLife({ stale: 300, revalidate: 900, expire: 86400 })
  return await getShared()
}

// The same list with a tag the page names (?tag=), for tags outside ASCII: Next from 16.2.7
// stores and revalidates them percent-encoded, earlier releases raw
// (tests/e2e/mixed-releases.test.mjs runs both on one Redis).
export async function getTagged(tag: string, list: string): Promise<OriginData> {
  'use cache'
  cacheTag(tag)
  const data = await readOrigin(`tagged-${list}`)
  if (data.error) cacheLife('seconds')
  else cacheLife({ stale: 300, revalidate: 3600, expire: 86400 })
  return data
}
