// The singular handler's page hit served from the in-process tier (tagSync 'push', the copy
// bound to the page generation: no Redis command per read), a baseline build (BASELINE,
// default /work/wt-baseline, built) against this checkout's, in interleaved rounds, 1 in
// flight: what decoding the stored page costs per tier hit (incremental-handler.ts `decode`).
// Usage: node bench/page-tier-hit.mjs   (R rounds, N ops per round; NEW another build)
// Run from a directory where `next` resolves, as bench/cmp.mjs explains (examples/next-app).
import { createRequire } from 'node:module'
import { startRedis } from '../tests/support/redis.mjs'
import { compare } from './lib/stats.mjs'

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '')
const load = (dir) => createRequire(dir + '/js-host/package.json')('./dist/index.js')
const pkgs = {
  old: load(process.env.BASELINE ?? '/work/wt-baseline'),
  new: load(process.env.NEW ?? root),
}
const r = await startRedis({ logDir: process.env.TMPDIR ?? '/tmp' })
const gets = async () =>
  Number(/cmdstat_get:calls=(\d+)/.exec(String(await r.command('INFO', 'commandstats')))?.[1] ?? 0)

// The example's page shape: ~10 KB of HTML, a 2 KB RSC payload, a 2.6 KB JSON part of headers.
const tags = Array.from({ length: 60 }, (_, i) => `_N_T_/segment-${i}/page`).join(',')
const page = {
  kind: 'APP_PAGE',
  html: '<html>' + 'x'.repeat(10 * 1024) + '</html>',
  rscData: Buffer.alloc(2048, 0x62),
  headers: { 'x-next-cache-tags': tags, 'content-type': 'text/html; charset=utf-8' },
  postponed: undefined,
  status: 200,
  segmentData: new Map([['/_tree', Buffer.alloc(512, 0x63)]]),
}
const kind = 'APP_PAGE'
const cases = {}
let port = 0
for (const [which, pkg] of Object.entries(pkgs)) {
  port += 1
  const base = { prefix: 'pth-' + which, deploymentId: 'x', redisUrl: r.url }
  const W = pkg.createIncrementalCacheHandler({
    ...base,
    memoryBytes: 0,
    connectTimeoutMs: 7000 + port,
  })
  const R = pkg.createIncrementalCacheHandler({
    ...base,
    tagSync: 'push',
    memoryBytes: 64 << 20,
    connectTimeoutMs: 7100 + port,
  })
  const w = new W({})
  const inc = new R({})
  await w.set('/p', page, { kind, cacheControl: { revalidate: 600, expire: 3600 } })
  let tier = false
  for (let i = 0; i < 2000 && !tier; i++) {
    const g = await gets()
    tier = (await inc.get('/p', { kind }))?.value?.html === page.html && (await gets()) === g
    if (!tier) await new Promise((res) => setImmediate(res))
  }
  if (!tier) throw new Error(`${which}: never served from the tier`)
  cases[which + 'PageTier'] = async () => {
    const e = await inc.get('/p', { kind, isRoutePPREnabled: false })
    if (e === null || e.value === null) throw new Error('page miss')
  }
}
const g0 = await gets()
const res = await compare(cases, {
  rounds: Number(process.env.R ?? 7),
  ops: Number(process.env.N ?? 5000),
  inFlight: 1,
})
const g1 = await gets()
for (const x of res) {
  console.log(
    `${x.name}: ${Math.round(x.opsPerSec)} ops/s (${Math.round(x.min)}-${Math.round(x.max)}), p50 ${x.p50.toFixed(1)} µs, p99 ${x.p99.toFixed(1)} µs, cpu ${x.cpuUs.toFixed(1)} µs/op`,
  )
}
console.log(`GETs during the measured rounds: ${g1 - g0}`)
await pkgs.old.close()
await pkgs.new.close()
await r.stop()
