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
  // Letters outside ASCII too (the end-to-end tests revalidate such a path:
  // tests/e2e/mixed-releases.test.mjs); Next hands the segment over percent-encoded.
  const decoded = decodeSegment(id)
  const name = /^[\p{Ll}\p{Nd}-]{1,40}$/u.test(decoded) ? `item-${decoded}` : 'item-invalid'
  return <DataView data={await readOrigin(name)} />
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}
