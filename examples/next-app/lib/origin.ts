// The example's data source: an HTTP "origin" (CMS, database API, ...) whose every call we want
// the cache to save. The test harness runs a counting origin and passes its address in
// ORIGIN_URL; see tests/support/origin.mjs.

export type OriginData = {
  name: string
  // Bumped by the origin when its data changes; what the tests and the demo look at.
  version: number
  // How many times the origin had been asked for `name` when it produced this value.
  calls: number
  // When and by which server instance this value was produced (cached values keep these).
  generatedAt: number
  generatedBy: string
  // Set when the origin could not be read; such values are cached for seconds only.
  error?: string
}

export function instanceName(): string {
  return process.env.INSTANCE_NAME || `pid-${process.pid}`
}

export async function readOrigin(name: string): Promise<OriginData> {
  const generatedAt = Date.now()
  const generatedBy = instanceName()
  const base = process.env.ORIGIN_URL
  if (!base) {
    // `next build` has no origin (and with the pages' <Suspense> + connection() it never calls
    // this); a server started without ORIGIN_URL renders this placeholder instead of failing.
    return { name, version: 0, calls: 0, generatedAt, generatedBy, error: 'ORIGIN_URL is not set' }
  }
  const url = `${base.replace(/\/+$/, '')}/data/${encodeURIComponent(name)}`
  try {
    const res = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(5000) })
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    const body = (await res.json()) as { name: string; version: number; calls: number }
    return { name: body.name, version: body.version, calls: body.calls, generatedAt, generatedBy }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    return {
      name,
      version: 0,
      calls: 0,
      generatedAt,
      generatedBy,
      error: `GET ${url} failed: ${message}`,
    }
  }
}
