export default function Home() {
  return (
    <ul>
      <li><a href="/isr">/isr</a> (Pages Router ISR)</li>
      <li><a href="/app-page">/app-page</a> (export const revalidate)</li>
      <li><a href="/api/route-data">/api/route-data</a> (route handler)</li>
      <li><a href="/fetch-tags">/fetch-tags</a> (fetch with next.tags)</li>
      <li><a href="/unstable-cache">/unstable-cache</a> (unstable_cache)</li>
    </ul>
  )
}
