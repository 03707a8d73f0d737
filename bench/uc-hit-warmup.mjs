// A 'use cache' hit by call index, in a fresh process: how much more a hit costs while its code
// is still cold (bench/page-cpu.mjs's instances make about 1,100 hits each, warm-up included,
// where bench/run.mjs's hit rows are taken after hundreds of thousands). One handler per run:
//   node bench/uc-hit-warmup.mjs fleetcache   (the embedded store: the tier-hit path, fromTier)
//   node bench/uc-hit-warmup.mjs floor        (bench/lib/floor-use-cache-handler.cjs)
// Each call: get, then the entry's stream teed and both branches read, as Next's wrapper forks
// it; a setImmediate between calls, as requests are apart. Prints the median µs per call by
// range of call index. After `make pack` or `npm run build` in js-host (it loads js-host/dist).
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '..', 'js-host', 'package.json'))
const which = process.argv[2]
let h
if (which === 'fleetcache') {
  const { createUseCacheHandler } = require('./dist/index.js')
  h = createUseCacheHandler({ prefix: 'warmup', deploymentId: 'w', memoryBytes: 2 ** 24 })
} else if (which === 'floor') {
  h = require(path.join(here, 'lib', 'floor-use-cache-handler.cjs'))
} else {
  console.error('usage: node bench/uc-hit-warmup.mjs fleetcache|floor')
  process.exit(2)
}

// The probe page's entry: a 121-byte payload, two tags, its lifetimes.
const bytes = Buffer.from('x'.repeat(121))
await h.set(
  'k',
  Promise.resolve({
    value: new ReadableStream({
      start(c) {
        c.enqueue(bytes)
        c.close()
      },
    }),
    tags: ['a', 'b'],
    stale: 300,
    timestamp: performance.timeOrigin + performance.now(),
    expire: 86400,
    revalidate: 3600,
  }),
)
await h.refreshTags?.()
const N = 3000
const us = []
for (let i = 0; i < N; i++) {
  const start = process.hrtime.bigint()
  const entry = await h.get('k', ['_N_T_/layout', '_N_T_/products'])
  if (!entry) throw new Error(`call ${String(i)}: a miss`)
  const [a, b] = entry.value.tee()
  for await (const _ of a);
  for await (const _ of b);
  us.push(Number(process.hrtime.bigint() - start) / 1000)
  await new Promise((resolve) => setImmediate(resolve))
}
const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1]
const ranges = [
  [0, 1],
  [1, 10],
  [10, 100],
  [100, 300],
  [300, 1000],
  [1000, 2000],
  [2000, 3000],
]
const out = Object.fromEntries(ranges.map(([a, b]) => [`${a}-${b}`, median(us.slice(a, b))]))
console.log(
  `${which}: µs per get + tee + read, median by call index: ${Object.entries(out)
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ')}`,
)
process.exit(0)
