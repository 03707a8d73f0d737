import { DataView } from '@/components/data-view'
import { fromBody, originUrl, readOrigin } from '@/lib/origin'

// A static page without a time limit (its prerender manifest entry says `revalidate: false`)
// whose data comes from a fetch tagged 'static-tag'. revalidateTag('static-tag', 'max') on one
// instance must reach it on every other one; Next before 16.4 cannot be told that such a page is
// stale, so fleetcache regenerates it there before answering (docs/incremental.md).
export default async function StaticPage() {
  const url = originUrl('static-page')
  if (!url) return <DataView data={await readOrigin('static-page')} />
  const res = await fetch(url, { cache: 'force-cache', next: { tags: ['static-tag'] } })
  return <DataView data={fromBody('static-page', await res.text())} />
}
