import { revalidatePath } from 'next/cache'
import type { NextRequest } from 'next/server'
import { badRequest } from '@/lib/api'

// /api/revalidate-path?path=/app-page[&type=page|layout] -> revalidatePath(path[, type]):
// expires the route's implicit tag (_N_T_/products), which reaches 'use cache' entries read by
// that route through cacheHandlers.*.getExpiration().
function handle(request: NextRequest): Response {
  const params = request.nextUrl.searchParams
  const path = params.get('path')
  if (!path || !path.startsWith('/'))
    return badRequest('missing or invalid ?path= (must start with /)')
  const type = params.get('type')
  if (type !== null && type !== 'page' && type !== 'layout')
    return badRequest('?type= must be page or layout')
  if (type) revalidatePath(path, type)
  else revalidatePath(path)
  return Response.json({ ok: true, path, ...(type ? { type } : {}) })
}

export const GET = handle
export const POST = handle
