import { unstable_cache } from 'next/cache'
import { DataView } from '@/components/data-view'
import { readOrigin } from '@/lib/origin'

// A dynamic page whose data comes from unstable_cache: a FETCH entry tagged 'uc-tag'.
export const dynamic = 'force-dynamic'

const getData = unstable_cache(() => readOrigin('unstable-cache'), ['unstable-cache-v1'], {
  tags: ['uc-tag'],
  revalidate: 3600,
})

export default async function UnstableCachePage() {
  return <DataView data={await getData()} />
}
