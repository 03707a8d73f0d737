// Small helpers shared by the revalidation route handlers.

export function badRequest(error: string): Response {
  return Response.json({ ok: false, error }, { status: 400 })
}

// Next rejects tags over 256 characters silently (they are never assigned); say so instead.
export function readTag(params: URLSearchParams): string | Response {
  const tag = params.get('tag')
  if (!tag) return badRequest('missing ?tag=')
  if (tag.length > 256) return badRequest('tag longer than 256 characters')
  return tag
}
