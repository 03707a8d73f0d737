import { DataView } from '@/components/data-view'
import { fromBody, originUrl, readOrigin } from '@/lib/origin'

// A dynamic page whose data comes from the fetch cache: a FETCH entry tagged 'fetch-tag'.
export const dynamic = 'force-dynamic'

export default async function FetchTagsPage() {
  const url = originUrl('fetch-tags')
  if (!url) return <DataView data={await readOrigin('fetch-tags')} />
  const res = await fetch(url, {
    cache: 'force-cache',
    next: { tags: ['fetch-tag'], revalidate: 3600 },
  })
  return <DataView data={fromBody('fetch-tags', await res.text())} />
}
