import { DataView } from '@/components/data-view'
import { getSharedNested } from '@/lib/data'

// Like /shared/static, through an outer 'use cache' function (getSharedNested) whose entry holds
// getShared's value.
export default async function SharedNestedPage() {
  const data = await getSharedNested()
  return (
    <main>
      <h1>Shared data (static page, nested cache)</h1>
      <DataView data={data} />
    </main>
  )
}
