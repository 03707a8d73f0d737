import { Suspense } from 'react'
import { connection } from 'next/server'
import { DataView } from '@/components/data-view'
import { getShared } from '@/lib/data'

// The same 'use cache' entry as /shared/static, read per request (after connection()).
export default function SharedDynamicPage() {
  return (
    <main>
      <h1>Shared data (dynamic page)</h1>
      <Suspense fallback={<p id="loading">Loading…</p>}>
        <SharedData />
      </Suspense>
    </main>
  )
}

async function SharedData() {
  await connection()
  const data = await getShared()
  return <DataView data={data} />
}
