// Same process: a baseline build (BASELINE, default /work/wt-baseline: a checkout with its
// js-host/dist and wasm built) against this checkout's package, in interleaved rounds: 'use cache'
// get hits through Redis, through the tier and from the embedded store (no Redis), and the
// singular handler's page hits (Redis), and sets through Redis, 1 and 16 in flight. Each case: median ops/s with the min-max over rounds, p50/p99 latency and
// the process's CPU per op (median; less disturbed by other work on a shared machine than
// throughput).
// Usage: node bench/cmp.mjs   (R rounds, N ops per round, CASES=redis,tier,memory,page,set to pick; NEW
// another build to compare instead of this checkout's, laid out the same way; CMP_TAG_SYNC=push
// makes the page case's handlers follow tags by push: caught up, a page hit comes from the tier)
//
// Both packages look Next's work-unit storage up at run time (`next` resolved from the working
// directory first); a build that cannot find it and keeps looking on every read measures that
// search, not the cache. So this runs from a directory where `next` resolves: examples/next-app
// after `npm ci` there, unless the caller's own directory resolves it.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import { startRedis } from '../tests/support/redis.mjs'
import { compare } from './lib/stats.mjs'

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '')
const resolvesNext = (dir) => {
  try {
    createRequire(dir + '/package.json').resolve('next/package.json')
    return true
  } catch {
    return false
  }
}
if (!resolvesNext(process.cwd())) {
  const app = root + '/examples/next-app'
  if (!resolvesNext(app)) {
    console.error('cmp: `next` does not resolve here nor in examples/next-app: run `npm ci` there')
    process.exit(1)
  }
  process.chdir(app)
}

const load = (dir) => createRequire(dir + '/js-host/package.json')('./dist/index.js')
const oldPkg = load(process.env.BASELINE ?? '/work/wt-baseline'),
  newPkg = load(process.env.NEW ?? root)
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
/** The embedded store (no Redis: bench/run.mjs's "in-process store hit"). */
const embedded = (pkg, name) =>
  pkg.createUseCacheHandler({ prefix: 'cmp-' + name, deploymentId: 'x', memoryBytes: 64 << 20 })
const useCache = {
  redis: { old: mk(oldPkg, 'o', 0), new: mk(newPkg, 'n', 0) },
  tier: { old: mk(oldPkg, 'ot', 64 << 20), new: mk(newPkg, 'nt', 64 << 20) },
  memory: { old: embedded(oldPkg, 'om'), new: embedded(newPkg, 'nm') },
}
const cases = {}
const wanted = (process.env.CASES ?? 'redis,tier,page').split(',')
for (const [kind, pair] of Object.entries(useCache)) {
  if (!wanted.includes(kind)) continue
  for (const [which, h] of Object.entries(pair)) {
    await h.set('k', Promise.resolve(entry()))
    await h.refreshTags()
    cases[which + kind[0].toUpperCase() + kind.slice(1)] = async () => {
      const e = await h.get('k', ['_N_T_/x'])
      if (!e) throw new Error('miss')
      await drain(e.value)
    }
  }
}
// Sets of 10 KB through Redis (the tier off), over 64 keys.
if (wanted.includes('set')) {
  for (const [which, h] of Object.entries(useCache.redis)) {
    let n = 0
    cases[which + 'Set'] = () => h.set(`s-${n++ % 64}`, Promise.resolve(entry()))
  }
}
// The singular handler's page hit (APP_PAGE from Redis: pages are never served from the tier
// while Redis answers), as bench/crossings.mjs reads it.
const page = {
  kind: 'APP_PAGE',
  html: '<html>' + 'x'.repeat(10 * 1024) + '</html>',
  rscData: Buffer.alloc(2048, 0x62),
  headers: { 'x-next-cache-tags': '_N_T_/p' },
  postponed: undefined,
  status: 200,
  segmentData: undefined,
}
if (wanted.includes('page')) {
  for (const [which, pkg] of [
    ['old', oldPkg],
    ['new', newPkg],
  ]) {
    const Inc = pkg.createIncrementalCacheHandler({
      prefix: 'cmp-p' + which,
      deploymentId: 'x',
      redisUrl: r.url,
      memoryBytes: 64 << 20,
      tagSync: process.env.CMP_TAG_SYNC === 'push' ? 'push' : 'pull',
    })
    const inc = new Inc({})
    await inc.set('/p', page, { cacheControl: { revalidate: 600, expire: 3600 } })
    if (process.env.CMP_TAG_SYNC === 'push') {
      // Until a read sends no GET: subscribed, pulled, and the page copy bound (bounded).
      const gets = async () =>
        Number(/cmdstat_get:calls=(\d+)/.exec(String(await r.command('INFO', 'commandstats')))?.[1])
      let fromTier = false
      for (let i = 0; i < 500 && !fromTier; i++) {
        const g = await gets()
        await inc.get('/p', { kind: 'APP_PAGE', isRoutePPREnabled: false })
        fromTier = (await gets()) === g
        if (!fromTier) await new Promise((res) => setTimeout(res, 10))
      }
      if (!fromTier) throw new Error('push: the page never served from the tier')
    }
    cases[which + 'Page'] = async () => {
      const e = await inc.get('/p', { kind: 'APP_PAGE', isRoutePPREnabled: false })
      if (e === null || e.value === null) throw new Error('page miss')
    }
  }
}
/** The q-quantile of `xs`. */
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]
const round2 = (v) => Math.round(v * 100) / 100
for (const inFlight of [1, 16]) {
  const res = await compare(cases, {
    rounds: Number(process.env.R ?? 5),
    ops: Number(process.env.N ?? 3000),
    inFlight,
  })
  const byName = Object.fromEntries(res.map((r) => [r.name, r]))
  // Each new case against the old one of the same round (measured within seconds of it):
  // steadier than a ratio of medians when the machine's load drifts.
  const paired = res
    .filter((r) => r.name.startsWith('new'))
    .map((r) => {
      const old = byName['old' + r.name.slice(3)]
      const ratios = r.rounds.map((x, i) => x.opsPerSec / old.rounds[i].opsPerSec)
      const cpu = r.rounds.map((x, i) => x.cpuUs - old.rounds[i].cpuUs)
      const cpuRatios = r.rounds.map((x, i) => x.cpuUs / old.rounds[i].cpuUs)
      const round3 = (v) => Math.round(v * 1000) / 1000
      return {
        name: r.name.slice(3),
        opsRatio: round2(quantile(ratios, 0.5)),
        opsRatioIqr: [round2(quantile(ratios, 0.25)), round2(quantile(ratios, 0.75))],
        cpuUsMore: round2(quantile(cpu, 0.5)),
        cpuUsMoreIqr: [round2(quantile(cpu, 0.25)), round2(quantile(cpu, 0.75))],
        // CPU per op, new over old, per round: the median and the whole range.
        cpuRatio: round3(quantile(cpuRatios, 0.5)),
        cpuRatioRange: [round3(Math.min(...cpuRatios)), round3(Math.max(...cpuRatios))],
      }
    })
  const summary = res.map(({ rounds, ...rest }) => rest)
  console.log(
    'inFlight',
    inFlight,
    JSON.stringify(summary, (k, v) => (typeof v === 'number' ? round2(v) : v)),
  )
  console.log('paired', inFlight, JSON.stringify(paired))
}
await oldPkg.close()
await newPkg.close()
await r.stop()
