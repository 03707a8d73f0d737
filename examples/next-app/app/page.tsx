import Link from 'next/link'

export default function Home() {
  return (
    <main>
      <h1>fleetcache example</h1>
      <ul>
        <li>
          <Link href="/products">/products</Link>: <code>&apos;use cache&apos;</code>, tag{' '}
          <code>products</code>
        </li>
        <li>
          <Link href="/remote">/remote</Link>: <code>&apos;use cache: remote&apos;</code>, tag{' '}
          <code>remote-data</code>
        </li>
      </ul>
      <p>
        Revalidation: <code>/api/revalidate?tag=products&amp;profile=max</code>,{' '}
        <code>/api/expire?tag=products</code>, <code>/api/revalidate-path?path=/products</code>
      </p>
    </main>
  )
}
