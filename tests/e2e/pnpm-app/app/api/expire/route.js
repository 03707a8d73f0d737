import { revalidateTag } from 'next/cache'

// revalidateTag('pnpm', { expire: 0 }): the next read on any instance regenerates.
export function POST() {
  revalidateTag('pnpm', { expire: 0 })
  return Response.json({ ok: true })
}
