import { revalidateTag } from 'next/cache'
import type { NextRequest } from 'next/server'
import { badRequest, readTag } from '@/lib/api'

// /api/revalidate?tag=products&profile=max -> revalidateTag('products', 'max'):
// entries tagged 'products' become stale (served once more while they regenerate in the
// background). Note: Next runs the revalidation after this response is sent (waitUntil).
function handle(request: NextRequest): Response {
  const params = request.nextUrl.searchParams
  const tag = readTag(params)
  if (tag instanceof Response) return tag
  const profile = params.get('profile') || 'max'
  if (!/^[a-zA-Z0-9_-]+$/.test(profile)) return badRequest('invalid ?profile=')
  revalidateTag(tag, profile)
  return Response.json({ ok: true, tag, profile })
}

export const GET = handle
export const POST = handle
