import type { GetStaticProps } from 'next'
import { DataView } from '@/components/data-view'
import { readOrigin, type OriginData } from '@/lib/origin'

// Pages Router ISR: stored by the singular cacheHandler as a PAGES entry (html + pageData).
// On-demand revalidation: /api/revalidate-isr (res.revalidate).
export const getStaticProps: GetStaticProps<{ data: OriginData }> = async () => ({
  props: { data: await readOrigin('isr') },
  revalidate: 3600,
})

export default function IsrPage({ data }: { data: OriginData }) {
  return <DataView data={data} />
}
