import { readOrigin } from '@/lib/origin'

// A static route handler (GET + revalidate): an APP_ROUTE entry. Its body carries bytes
// outside ASCII, so a lossy codec would show.
export const revalidate = 3600

export async function GET(): Promise<Response> {
  const data = await readOrigin('route-data')
  const body = JSON.stringify({ ...data, note: 'bytes: \u00e9\u2713\u{1f680}' })
  return new Response(body, {
    headers: { 'content-type': 'application/json; charset=utf-8', 'x-example': 'route' },
  })
}
