import { Suspense } from 'react'
import { connection } from 'next/server'
import { DataView } from '@/components/data-view'
import { getRemoteData } from '@/lib/data'

// Same shape as /products, with a 'use cache: remote' function (cacheHandlers.remote).
export default function RemotePage() {
  return (
    <main>
      <h1>Remote data</h1>
      <Suspense fallback={<p id="loading">Loading…</p>}>
        <RemoteData />
      </Suspense>
    </main>
  )
}

async function RemoteData() {
  await connection()
  const data = await getRemoteData()
  return <DataView data={data} />
}
