import { revalidateTag } from 'next/cache'
import type { NextRequest } from 'next/server'
import { readTag } from '@/lib/api'

// /api/expire?tag=products -> revalidateTag('products', { expire: 0 }): entries tagged
// 'products' expire now; the next read regenerates before it answers (never serves the old value).
function handle(request: NextRequest): Response {
  const tag = readTag(request.nextUrl.searchParams)
  if (tag instanceof Response) return tag
  revalidateTag(tag, { expire: 0 })
  return Response.json({ ok: true, tag, expire: 0 })
}

export const GET = handle
export const POST = handle
