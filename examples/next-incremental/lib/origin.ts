// The example's data source: the counting origin of tests/support/origin.mjs (ORIGIN_URL).
// Read with node:http rather than fetch, so that only the pages that mean to use the fetch
// cache touch it, and a page with `export const revalidate` stays statically cacheable.
import http from 'node:http'

export type OriginData = {
  name: string
  version: number
  calls: number
  generatedAt: number
  generatedBy: string
  error?: string
}

export function instanceName(): string {
  return process.env.INSTANCE_NAME || `pid-${process.pid}`
}

export function originUrl(name: string): string | undefined {
  const base = process.env.ORIGIN_URL
  return base ? `${base.replace(/\/+$/, '')}/data/${encodeURIComponent(name)}` : undefined
}

function placeholder(name: string, error: string): OriginData {
  return {
    name,
    version: 0,
    calls: 0,
    generatedAt: Date.now(),
    generatedBy: instanceName(),
    error,
  }
}

export async function readOrigin(name: string): Promise<OriginData> {
  const url = originUrl(name)
  // `next build` prerenders without an origin; that output never reaches the cache handler.
  if (!url) return placeholder(name, 'ORIGIN_URL is not set')
  try {
    const text = await new Promise<string>((resolve, reject) => {
      const req = http.get(url, { timeout: 5000 }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`)),
        )
      })
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', reject)
    })
    return fromBody(name, text)
  } catch (err) {
    return placeholder(name, `GET ${url} failed: ${err instanceof Error ? err.message : String(err)}`)
  }
}

export function fromBody(name: string, text: string): OriginData {
  const body = JSON.parse(text) as { name: string; version: number; calls: number }
  return {
    name: body.name ?? name,
    version: body.version,
    calls: body.calls,
    generatedAt: Date.now(),
    generatedBy: instanceName(),
  }
}
