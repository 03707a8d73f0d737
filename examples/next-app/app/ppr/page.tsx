import { Suspense } from 'react'
import { connection } from 'next/server'
import { DataView } from '@/components/data-view'
import { getProducts } from '@/lib/data'

// A partially prerendered page: the static shell (with its postponed state) is an APP_PAGE
// entry of the singular cacheHandler; the hole renders per request and reads 'use cache'. The
// end-to-end test checks that an instance which never rendered the shell serves it from the
// shared cache and still resumes the hole.
export default function PprPage() {
  return (
    <main>
      <h1 id="ppr-shell">Partially prerendered</h1>
      <Suspense fallback={<p id="loading">Loading…</p>}>
        <Hole />
      </Suspense>
    </main>
  )
}

async function Hole() {
  await connection()
  return <DataView data={await getProducts('ppr')} />
}
