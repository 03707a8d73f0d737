import { Suspense } from 'react'
import { connection } from 'next/server'
import { getValue } from '../data'

// A dynamic hole (after connection()) so that getValue is read through the handler per request.
async function Value({ searchParams }) {
  await connection()
  const { name } = await searchParams
  const v = await getValue(
    typeof name === 'string' && /^[a-z0-9-]{1,40}$/.test(name) ? name : 'main',
  )
  return (
    <p id="value" data-id={v.id} data-label={v.label}>
      {v.label}
    </p>
  )
}

export default function Page({ searchParams }) {
  return (
    <Suspense fallback={<p>loading</p>}>
      <Value searchParams={searchParams} />
    </Suspense>
  )
}
