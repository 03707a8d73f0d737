import { DataView } from '@/components/data-view'
import { getShared } from '@/lib/data'

// A static page: no request data, so Next prerenders it and serves it from the singular
// cacheHandler, regenerating it (ISR) when its tags are revalidated. Its data comes from the same
// 'use cache' entry as /shared/dynamic, so a regeneration must never bake in a value that a
// revalidation has made stale (tests/e2e/fresh-regen.test.mjs).
export default async function SharedStaticPage() {
  const data = await getShared()
  return (
    <main>
      <h1>Shared data (static page)</h1>
      <DataView data={data} />
    </main>
  )
}
