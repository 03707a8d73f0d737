import { Suspense } from 'react'
import { connection } from 'next/server'
import { DataView } from '@/components/data-view'
import { getProducts, getShortLivedProducts } from '@/lib/data'

type SearchParams = Promise<Record<string, string | string[] | undefined>>

// The page shell is static (prerendered at build). The data sits in a dynamic hole: after
// `await connection()` it renders per request, so getProducts() runs at request time and reads
// through cacheHandlers.default. Without the hole, cacheComponents would prerender the value into
// the build output and the cache handler would never be asked at run time.
//
// ?list=<name> selects another product list (another cache entry, same 'products' tag); the
// end-to-end tests use it to give each scenario its own entry. ?life=short reads it through
// getShortLivedProducts (revalidate 2 s), for the fleet benchmark.
export default function ProductsPage({ searchParams }: { searchParams: SearchParams }) {
  return (
    <main>
      <h1>Products</h1>
      <Suspense fallback={<p id="loading">Loading…</p>}>
        <Products searchParams={searchParams} />
      </Suspense>
    </main>
  )
}

async function Products({ searchParams }: { searchParams: SearchParams }) {
  await connection()
  const { list, life } = await searchParams
  const name = typeof list === 'string' && /^[a-z0-9-]{1,40}$/.test(list) ? list : null
  const data = life === 'short' ? await getShortLivedProducts(name) : await getProducts(name)
  return <DataView data={data} />
}
