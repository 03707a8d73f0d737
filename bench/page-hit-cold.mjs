// What a cached page's two cache calls cost when they run cold, as in a server, where a whole
// render runs between two requests: the singular handler's page hit from the in-process tier
// (tagSync 'push', a handler instance per request as Next makes one) and a 'use cache' hit from
// the tier, each timed around its synchronous part (hrtime; both answer in the same turn), and
// the time inside its one call into wasm (`reuseIncrementalTexts`, `tierHitTexts`, wrapped).
// Warm: hits back to back. Cold: before each hit, 16 MB are touched and unrelated code runs (a
// JSON.stringify of 20,000 small objects), so caches and branch predictors hold something else.
// bench/page-cpu.mjs measures the same calls inside `next start` (PAGECPU_CALLS=1); this
// separates what cold code costs from what a call does, in a minute, without Next.
//
//   node ../../bench/page-hit-cold.mjs   (from examples/next-app, where `next` resolves, as
//                                         bench/cmp.mjs explains; PKG=<dir with js-host/dist>,
//                                         default this checkout; N hits per case, 800)
import { createRequire } from 'node:module'

import { startRedis } from '../tests/support/redis.mjs'

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '')
const req = createRequire((process.env.PKG ?? root) + '/js-host/package.json')
const pkg = req('./dist/index.js')
const glue = req('./wasm/node/fleetcache_wasm.js')
const N = Number(process.env.N ?? 800)

let inWasm = 0
for (const name of ['reuseIncrementalTexts', 'tierHitTexts']) {
  const f = glue.ReadMachine.prototype[name]
  glue.ReadMachine.prototype[name] = function (...args) {
    const t0 = process.hrtime.bigint()
    try {
      return f.apply(this, args)
    } finally {
      inWasm += Number(process.hrtime.bigint() - t0)
    }
  }
}

const redis = await startRedis({ logDir: process.env.TMPDIR ?? '/tmp' })
// About the example's page: HTML, an RSC payload, headers with its tags, two segments.
const page = {
  kind: 'APP_PAGE',
  html: '<html>' + 'x'.repeat(10 * 1024) + '</html>',
  rscData: Buffer.alloc(2048, 0x62),
  headers: {
    'x-next-cache-tags': '_N_T_/layout,_N_T_/products/layout,_N_T_/products/page',
    'x-nextjs-stale-time': '300',
  },
  postponed: 'p'.repeat(300),
  status: 200,
  segmentData: new Map([
    ['/_tree', Buffer.alloc(512, 0x63)],
    ['/_full', Buffer.alloc(512, 0x64)],
  ]),
}
const base = { prefix: 'page-hit-cold', deploymentId: 'x', redisUrl: redis.url }
// The writer has no tier; the reader follows tags by push, as a server with the example would.
const Writer = pkg.createIncrementalCacheHandler({
  ...base,
  memoryBytes: 0,
  connectTimeoutMs: 7001,
})
const Reader = pkg.createIncrementalCacheHandler({
  ...base,
  tagSync: 'push',
  memoryBytes: 64 << 20,
  connectTimeoutMs: 7002,
})
const uc = pkg.createUseCacheHandler({
  ...base,
  tagSync: 'push',
  memoryBytes: 64 << 20,
  connectTimeoutMs: 7002,
})
await new Writer({}).set('/p', page, {
  kind: 'APP_PAGE',
  cacheControl: { revalidate: false, expire: undefined },
})
const bytes = Buffer.alloc(3000, 0x61)
await uc.set(
  'uk',
  Promise.resolve({
    value: new ReadableStream({
      start(c) {
        c.enqueue(bytes)
        c.close()
      },
    }),
    tags: ['products'],
    stale: 300,
    timestamp: performance.timeOrigin + performance.now(),
    expire: 1e9,
    revalidate: 1e9,
  }),
)
const soft = ['_N_T_/layout', '_N_T_/products/layout', '_N_T_/products/page', '_N_T_/products']
const cases = {
  'page (singular handler)': () => new Reader({}).get('/p', { kind: 'APP_PAGE' }),
  "'use cache'": () => uc.get('uk', soft),
}
// Until both are tier hits and their code is optimized: push caught up, the page copy kept.
for (let i = 0; i < 500; i++) {
  for (const op of Object.values(cases)) await op()
  await new Promise((res) => setTimeout(res, 1))
}

const big = new Float64Array(2 << 20)
let sink = 0
function elsewhere() {
  for (let i = 0; i < big.length; i += 8) big[i] += 1
  const objects = []
  for (let i = 0; i < 20_000; i++) objects.push({ a: i, b: String(i) })
  sink += JSON.stringify(objects).length
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

console.log(`load averages ${(await import('node:os')).loadavg().map((x) => x.toFixed(2))}`)
for (const cold of [false, true]) {
  for (const [name, op] of Object.entries(cases)) {
    const total = []
    const wasm = []
    for (let i = 0; i < N; i++) {
      if (cold) elsewhere()
      inWasm = 0
      const t0 = process.hrtime.bigint()
      const pending = op()
      total.push(Number(process.hrtime.bigint() - t0) / 1000)
      wasm.push(inWasm / 1000)
      const entry = await pending
      if (!entry) throw new Error(`${name}: not a hit`)
      if (entry.value instanceof ReadableStream) await entry.value.cancel()
    }
    console.log(
      `${cold ? 'cold' : 'warm'} ${name}: p50 ${median(total).toFixed(1)} µs, of which its call into wasm ${median(wasm).toFixed(1)} µs`,
    )
  }
}
if (sink < 0) console.log(sink)
await pkg.close()
await redis.stop()
