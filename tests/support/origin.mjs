// The counting "origin" the example app reads (ORIGIN_URL): an HTTP server on 127.0.0.1.
//   GET  /data/:name  -> { name, version, calls }   (counts one call for name; version starts at 1)
//   POST /bump/:name  -> { name, version }          (version + 1: the data "changed")
//   GET  /stats       -> { calls: {name: n}, versions: {name: v}, recent: [...] }
// In process, `delay(name, ms)` holds each answer for `name` that long after reading its version
// at arrival, as a render that read its data and then took a while would.
// Runs in-process (startOrigin) or standalone: `node tests/support/origin.mjs [port]`.
import http from 'node:http'
import { pathToFileURL } from 'node:url'

const MAX_RECENT = 100

export async function startOrigin({ port = 0, host = '127.0.0.1' } = {}) {
  const calls = new Map()
  const versions = new Map()
  const recent = [] // last MAX_RECENT data calls, for diagnostics
  const versionOf = (name) => versions.get(name) ?? 1
  const delays = new Map()

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://origin')
    const send = (status, body) => {
      const text = JSON.stringify(body)
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      res.end(text)
    }
    let m
    if (req.method === 'GET' && (m = /^\/data\/([^/]+)$/.exec(url.pathname))) {
      const name = decodeURIComponent(m[1])
      const n = (calls.get(name) ?? 0) + 1
      calls.set(name, n)
      const version = versionOf(name)
      recent.push({ at: new Date().toISOString(), name, version, calls: n })
      if (recent.length > MAX_RECENT) recent.shift()
      const ms = delays.get(name) ?? 0
      if (ms > 0) return void setTimeout(() => send(200, { name, version, calls: n }), ms)
      return send(200, { name, version, calls: n })
    }
    if (req.method === 'POST' && (m = /^\/bump\/([^/]+)$/.exec(url.pathname))) {
      const name = decodeURIComponent(m[1])
      versions.set(name, versionOf(name) + 1)
      return send(200, { name, version: versionOf(name) })
    }
    if (req.method === 'GET' && url.pathname === '/stats') {
      return send(200, stats())
    }
    send(404, { error: `no route for ${req.method} ${url.pathname}` })
  })

  function stats() {
    return {
      calls: Object.fromEntries(calls),
      versions: Object.fromEntries(
        [...versions.keys(), ...calls.keys()].map((n) => [n, versionOf(n)]),
      ),
      recent: recent.slice(),
    }
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  const actualPort = server.address().port

  return {
    port: actualPort,
    url: `http://${host}:${actualPort}`,
    calls: (name) => calls.get(name) ?? 0,
    version: (name) => versionOf(name),
    bump(name) {
      versions.set(name, versionOf(name) + 1)
      return versionOf(name)
    },
    delay(name, ms) {
      if (ms > 0) delays.set(name, ms)
      else delays.delete(name)
    },
    stats,
    describe() {
      const s = stats()
      const recentLines = s.recent
        .slice(-20)
        .map((r) => `  ${r.at}  ${r.name}  v${r.version}  call #${r.calls}`)
      return (
        `origin ${this.url}: calls ${JSON.stringify(s.calls)} versions ${JSON.stringify(s.versions)}\n` +
        recentLines.join('\n')
      )
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const origin = await startOrigin({ port: Number(process.argv[2] ?? 0) })
  console.log(`origin listening on ${origin.url}`)
  const stop = async () => {
    await origin.close()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
