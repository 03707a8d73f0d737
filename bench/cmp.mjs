// Same process: a baseline build (BASELINE, default /work/wt-baseline: a checkout with its
// js-host/dist and wasm built) against this checkout's package, 'use cache' get hits through
// Redis and through the tier, 1 and 16 in flight, in interleaved rounds.
// Usage: node bench/cmp.mjs   (R rounds, N ops per round)
import { createRequire } from 'node:module'
import { startRedis } from '../tests/support/redis.mjs'
import { compare } from './lib/stats.mjs'
const load = (dir) => createRequire(dir + '/js-host/package.json')('./dist/index.js')
const oldPkg = load(process.env.BASELINE ?? '/work/wt-baseline'),
  newPkg = load(new URL('..', import.meta.url).pathname.replace(/\/$/, ''))
const r = await startRedis({ logDir: process.env.TMPDIR ?? '/tmp' })
const stream = (b) =>
  new ReadableStream({
    start(c) {
      c.enqueue(b)
      c.close()
    },
  })
async function drain(s) {
  const rd = s.getReader()
  for (;;) if ((await rd.read()).done) return
}
const payload = Buffer.alloc(10 * 1024, 0x61)
const entry = () => ({
  value: stream(payload),
  tags: ['bench'],
  stale: 30,
  timestamp: performance.timeOrigin + performance.now(),
  expire: 3600,
  revalidate: 600,
})
const mk = (pkg, name, mem) =>
  pkg.createUseCacheHandler({
    prefix: 'cmp-' + name,
    deploymentId: 'x',
    redisUrl: r.url,
    memoryBytes: mem,
  })
const hs = {
  oldRedis: mk(oldPkg, 'o', 0),
  newRedis: mk(newPkg, 'n', 0),
  oldTier: mk(oldPkg, 'ot', 64 << 20),
  newTier: mk(newPkg, 'nt', 64 << 20),
}
for (const h of Object.values(hs)) {
  await h.set('k', Promise.resolve(entry()))
  await h.refreshTags()
}
const hit = (h) => async () => {
  const e = await h.get('k', ['_N_T_/x'])
  if (!e) throw new Error('miss')
  await drain(e.value)
}
const cases = Object.fromEntries(Object.entries(hs).map(([n, h]) => [n, hit(h)]))
for (const inFlight of [1, 16]) {
  const res = await compare(cases, {
    rounds: Number(process.env.R ?? 5),
    ops: Number(process.env.N ?? 3000),
    inFlight,
  })
  console.log(
    'inFlight',
    inFlight,
    JSON.stringify(res, (k, v) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v)),
  )
}
await oldPkg.close()
await newPkg.close()
await r.stop()
