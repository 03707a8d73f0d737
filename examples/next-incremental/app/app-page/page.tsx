import { DataView } from '@/components/data-view'
import { readOrigin } from '@/lib/origin'

// App Router full-route cache: an APP_PAGE entry (html, rscData, segmentData), tagged through
// its implicit tags (_N_T_/app-page, ...), so revalidatePath('/app-page') reaches it.
export const revalidate = 3600

export default async function AppPage() {
  return <DataView data={await readOrigin('app-page')} />
}
