import { Suspense } from 'react'
import { connection } from 'next/server'
import { DataView } from '@/components/data-view'
import { getTagged } from '@/lib/data'

type SearchParams = Promise<Record<string, string | string[] | undefined>>

// /tagged?tag=<any tag>&list=<name>: like /products, with a 'use cache' function tagged by the
// page's ?tag= (getTagged), so a tag outside ASCII can be stored and revalidated.
export default function TaggedPage({ searchParams }: { searchParams: SearchParams }) {
  return (
    <main>
      <h1>Tagged</h1>
      <Suspense fallback={<p id="loading">Loading…</p>}>
        <Tagged searchParams={searchParams} />
      </Suspense>
    </main>
  )
}

async function Tagged({ searchParams }: { searchParams: SearchParams }) {
  await connection()
  const { tag, list } = await searchParams
  if (typeof tag !== 'string' || !tag || tag.length > 256) return <p id="error">missing ?tag=</p>
  const name = typeof list === 'string' && /^[a-z0-9-]{1,40}$/.test(list) ? list : 'main'
  return <DataView data={await getTagged(tag, name)} />
}
