import { cacheLife, cacheTag } from 'next/cache'

// 'use cache' -> cacheHandlers.default (fleetcache), tagged 'pnpm': a fresh id each time it
// runs, so a page that shows another instance's id was served from the shared cache. `label`
// is what the test edits under `next dev`.
export async function getValue(name) {
  'use cache'
  cacheTag('pnpm')
  cacheLife({ stale: 300, revalidate: 3600, expire: 86400 })
  return { name, id: crypto.randomUUID(), label: 'first' }
}
