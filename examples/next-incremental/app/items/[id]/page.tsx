import { DataView } from '@/components/data-view'
import { readOrigin } from '@/lib/origin'

// A route that exists only at run time: no path is prerendered, so Next's prerender manifest
// does not know /items/<id>. Its entry carries `revalidate: 3600`, and an instance that never
// rendered it must keep that lifetime (Next before 16.4 would assume one second;
// docs/incremental.md).
export const revalidate = 3600
export const dynamicParams = true

export function generateStaticParams(): { id: string }[] {
  return []
}

export default async function ItemPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params
  const name = /^[a-z0-9-]{1,40}$/.test(id) ? `item-${id}` : 'item-invalid'
  return <DataView data={await readOrigin(name)} />
}
