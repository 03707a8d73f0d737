// make bench (third part): the fleet benchmark. Three `next start` instances of
// examples/next-app, one redis-server and the counting origin (tests/support), all on loopback
// and started here; every process is stopped by its PID at the end, also on errors.
//
// 1. One seeded, bounded, Zipf-distributed request plan (arrival times included) over KEYS pages
//    /products?list=p<N>&life=short (each its own 'use cache' entry, revalidate 2 s, expire 60 s),
//    round-robin across the instances, replayed twice: with fleetcache (REDIS_URL set) and with
//    Next's default per-process cache (the same app built without fleetcache, .next-default/).
//    Midway, one revalidateTag('products', 'max') on one instance; then every instance is asked
//    for a long-lived probe page whose origin data changed, within a bounded window.
// 2. The ideal: the same plan replayed through a simulated single shared cache with
//    stale-while-revalidate and perfect single flight (no I/O; below).
// 3. Cold start of a new deployment: three fresh instances, KEYS long-lived pages requested on
//    all three at once, in rounds until a round calls the origin no more; leases on, off, and on
//    after `fleetcache seed`.
//
// 4. The published peers with Redis-backed handlers for both Next interfaces (bench/lib/peers.mjs,
//    configured as bench/peers/README.md says), each replaying the same plan on the same Redis,
//    the same way, as a third and fourth cache beside the two of step 1.
//
// Redis is flushed before every replay, so each cache starts empty and none reads what another
// left. Appends a dated "Fleet" section to bench/REPORT.md (newest first). Knobs:
// BENCH_FLEET_REQUESTS, BENCH_FLEET_RATE (requests per second), BENCH_FLEET_SEED,
// BENCH_FLEET_RUNS (replays per cache), BENCH_PEERS=0 (leave the peers out), BENCH_FLEET_PUSH=0
// (leave out the replays with tagSync push), BENCH_FLEET_INTERLEAVED (rounds of the one at a
// time comparison, 300), BENCH_FLEET_INTERLEAVED_BLOCKS (its blocks of fresh instances, one per
// variant; 1: the instances started in the list's order and kept for every round, as before
// 2026-12-06), BENCH_FLEET_INTERLEAVED_WARM (warming requests per instance before them, 200; 20 before
// 2026-12-06T13:35Z).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import {
  DEFAULT_CACHE_ENV,
  appDir,
  makeLogDir,
  parseDataElement,
  prepareApp,
  prepareDefaultCache,
  repoRoot,
  runLogged,
  startFleet,
} from '../tests/support/fleet.mjs'
import { startOrigin } from '../tests/support/origin.mjs'
import { startRedis } from '../tests/support/redis.mjs'
import { sleep } from '../tests/support/util.mjs'
import { interleavedBlocks, p50Difference } from './lib/interleaved.mjs'
import { PEERS, failureText, preparePeerApp } from './lib/peers.mjs'
import { pct, rng } from './lib/stats.mjs'
import { prependReport } from './lib/report.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))

const KEYS = 30
const REQUESTS = Number(process.env.BENCH_FLEET_REQUESTS ?? 1200)
// Each run replays the same plan on fresh processes and an empty cache, the caches taking turns
// going first; the spread between runs is this machine's noise, not the plan's.
const RUNS = Number(process.env.BENCH_FLEET_RUNS ?? 3)
const RATE = Number(process.env.BENCH_FLEET_RATE ?? 30) // planned arrivals per second (2 CPUs: ~40/s saturate)
const SEED = Number(process.env.BENCH_FLEET_SEED ?? 9)
const ZIPF_S = 1.1
const CONCURRENCY = 12 // requests in flight at most
const RUN_LIMIT_MS = 75_000 // a run stops sending after this, whatever is left of the plan
const REQUEST_TIMEOUT_MS = 15_000
const REVALIDATE_S = 2 // getShortLivedProducts' cacheLife (examples/next-app/lib/data.ts)
const EXPIRE_S = 60
const SEEN_WINDOW_MS = 3000 // how long each instance is given to show a revalidation
// How often each instance is asked for the probe page meanwhile: finer than a render under the
// plan's load (40-60 ms: a peer's miss-then-render probe in earlier runs), so the time measured
// is the cache's and not the poll's (at 100 ms, every cache that serves stale first showed the
// new page at the second poll, 160-190 ms, whatever it did).
const SEEN_POLL_MS = 20
const COLD_MAX_ROUNDS = 4
// After each replay: this many requests, one at a time, for a cached page on instance A. With
// nothing else running, their latency is the cache's own cost per request, without the CPU
// contention of the plan (3 servers, Redis and the origin on 2 cores).
const SEQUENTIAL = 200
// Then, one instance each of fleetcache, fleetcache push and Next's default cache up at once,
// asked for the probe page in turn, one request at a time, the order rotating every round:
// the machine's drift between replays (more than the 0.2 ms issue 17 asks about) falls on all
// alike, and each round gives one paired difference. Bounded in rounds and time, both split
// among blocks of fresh instances, each block's started in an order rotated by one: an
// instance's place in the start order changes its cost by as much as issue 17's 0.2 ms
// (bench/PAGE-COST.md, runs 12 to 17). BENCH_FLEET_INTERLEAVED_BLOCKS (default: one per
// variant, so each starts first once); 1: one block in the list's order (runs before
// 2026-12-06).
const INTERLEAVED_ROUNDS = Number(process.env.BENCH_FLEET_INTERLEAVED ?? 300)
const INTERLEAVED_CAP_MS = 120_000
const INTERLEAVED_BLOCKS_ENV = process.env.BENCH_FLEET_INTERLEAVED_BLOCKS
// Warming requests per instance before a block's rounds (BENCH_FLEET_INTERLEAVED_WARM): the
// target is a server that has run a while. After 20, the young processes of a block still
// paid for JIT warm-up: push − default 0.98, 0.77 ms and pull − default 1.72, 1.60 ms in runs of
// 2026-12-06, against 0.28, 0.51, 0.35 and 1.20, 0.90, 0.97 ms after 200 (3 blocks each). 2,000
// changed little (push − default 0.45 against 0.57 ms over 900 rounds; bench/PAGE-COST.md).
const INTERLEAVED_WARM = Number(process.env.BENCH_FLEET_INTERLEAVED_WARM ?? 200)
const NAMES = ['A', 'B', 'C']
const WITH_PEERS = process.env.BENCH_PEERS !== '0'
const WITH_PUSH = process.env.BENCH_FLEET_PUSH !== '0'

const progress = (msg) => console.log(`[fleet ${new Date().toISOString().slice(11, 19)}] ${msg}`)

// ---- the plan ------------------------------------------------------------------------------

// REQUESTS arrivals (Poisson at RATE), keys Zipf(s) over ranks 1..KEYS, instance i % 3.
function makePlan() {
  const rand = rng(SEED)
  const weights = Array.from({ length: KEYS }, (_, k) => 1 / (k + 1) ** ZIPF_S)
  const total = weights.reduce((a, b) => a + b, 0)
  const cdf = []
  let acc = 0
  for (const w of weights) cdf.push((acc += w / total))
  const plan = []
  let at = 0
  for (let i = 0; i < REQUESTS; i++) {
    at += (-Math.log(1 - rand()) / RATE) * 1000
    const u = rand()
    let rank = cdf.findIndex((c) => u <= c) + 1
    if (rank === 0) rank = KEYS
    plan.push({ i, at, rank, instance: i % NAMES.length })
  }
  return plan
}

// ---- the ideal -----------------------------------------------------------------------------

// One shared cache, stale-while-revalidate, perfect single flight, regeneration instantaneous:
// a key costs one origin call when missing or expired, and one (in the background) on the
// first request after it went stale (revalidate passed or the tag was revalidated).
// `revalidatedAt`: ms offset of the mid-run revalidateTag. Returns origin calls per rank.
function ideal(times, plan, revalidatedAt) {
  const state = new Map() // rank -> { generatedAt, stale }
  const calls = new Array(KEYS + 1).fill(0)
  let tagApplied = revalidatedAt === undefined
  for (const r of plan) {
    const t = times[r.i]
    if (t === undefined) continue
    if (!tagApplied && t >= revalidatedAt) {
      for (const s of state.values()) s.stale = true
      tagApplied = true
    }
    const s = state.get(r.rank)
    if (!s || t - s.generatedAt >= EXPIRE_S * 1000) {
      calls[r.rank]++
      state.set(r.rank, { generatedAt: t, stale: false })
    } else if (s.stale || t - s.generatedAt >= REVALIDATE_S * 1000) {
      calls[r.rank]++
      s.generatedAt = t
      s.stale = false
    }
  }
  return calls
}

// ---- one replay of the plan ----------------------------------------------------------------

const pagePath = (rank) => `/products?list=p${String(rank)}&life=short`
const originKey = (list) => `products-${list}`

async function fetchPage(inst, pathname) {
  const res = await fetch(inst.url + pathname, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  const text = await res.text()
  const data = res.status === 200 ? parseDataElement(text) : null
  if (!data || data.error) throw new Error(`${inst.name} ${pathname}: HTTP ${res.status}`)
  return data
}

/**
 * One `next start` instance per variant, all up at once, each asked for the probe page one
 * request at a time in turn, the order rotating every round (after BENCH_FLEET_INTERLEAVED_WARM warming requests each),
 * in BENCH_FLEET_INTERLEAVED_BLOCKS blocks of fresh instances (default: one per variant), each
 * block's started in an order rotated by one (bench/lib/interleaved.mjs: the start order
 * favours no variant). Returns per variant key its latencies in pooled round order, the block
 * of each round and each block's start order.
 */
function interleavedQuiet(variants, launch, stopFleet) {
  return interleavedBlocks({
    variants,
    blocks: INTERLEAVED_BLOCKS_ENV === undefined ? variants.length : Number(INTERLEAVED_BLOCKS_ENV),
    rounds: INTERLEAVED_ROUNDS,
    capMs: INTERLEAVED_CAP_MS,
    warm: INTERLEAVED_WARM,
    start: (v, b) =>
      launch(`quiet-${String(b)}-${v.key}`, v.env(`quiet-${String(b)}`), undefined, ['Q']),
    stop: stopFleet,
    ask: async (fleet) => {
      const s = performance.now()
      await fetchPage(fleet[0], '/products?list=probe')
      return performance.now() - s
    },
  })
}

// Asks every instance for the probe page until it shows the new origin version, each within
// SEEN_WINDOW_MS. Returns per instance the ms until it did (null: not within the window), and
// each poll (`at`: when it started, ms after the revalidation's reply; `ms`: how long it took;
// `fresh`: it showed the new version), which says where that time went.
async function probeRevalidation(fleet, origin, t0) {
  const want = origin.bump(originKey('probe'))
  await fleet[0].call('/api/revalidate?tag=products&profile=max')
  const revalidatedAt = performance.now() - t0
  const polls = fleet.map(() => [])
  const seen = await Promise.all(
    fleet.map(async (inst, i) => {
      const start = performance.now()
      while (performance.now() - start < SEEN_WINDOW_MS) {
        const sent = performance.now()
        const data = await fetchPage(inst, '/products?list=probe').catch(() => null)
        const fresh = Boolean(data && data.version >= want)
        polls[i].push({ at: sent - start, ms: performance.now() - sent, fresh })
        if (fresh) return performance.now() - start
        await sleep(SEEN_POLL_MS)
      }
      return null
    }),
  )
  return { revalidatedAt, seen, polls }
}

async function replay({ label, fleet, origin, plan }) {
  // Warm up: load the page's code on every instance, and cache the probe (long-lived) on each.
  for (const inst of fleet) {
    await fetchPage(inst, '/products?list=warm&life=short')
    await fetchPage(inst, '/products?list=probe')
  }
  const before = new Map(
    Array.from({ length: KEYS }, (_, k) => [k + 1, origin.calls(originKey(`p${String(k + 1)}`))]),
  )
  const times = new Array(plan.length) // when each request was sent, ms from t0
  const latency = new Array(plan.length)
  let errors = 0
  let firstError = null
  let next = 0
  let probe
  const midway = plan[Math.floor(plan.length / 2)].at
  const t0 = performance.now()
  const deadline = t0 + RUN_LIMIT_MS
  async function worker() {
    for (;;) {
      const r = plan[next++]
      if (!r) return
      const wait = t0 + r.at - performance.now()
      if (wait > 0) await sleep(wait)
      if (performance.now() > deadline) return
      if (!probe && r.at >= midway) probe = probeRevalidation(fleet, origin, t0)
      const s = performance.now()
      times[r.i] = s - t0
      try {
        await fetchPage(fleet[r.instance], pagePath(r.rank))
        latency[r.i] = performance.now() - s
      } catch (err) {
        errors++
        firstError ??= err.message
      }
      if ((r.i + 1) % 500 === 0) progress(`${label}: ${String(r.i + 1)}/${String(plan.length)}`)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  const elapsedMs = performance.now() - t0
  // (No probe when the run was stopped by RUN_LIMIT_MS before midway: no instance saw one.)
  const revalidation = probe
    ? await probe
    : { revalidatedAt: undefined, seen: NAMES.map(() => null) }
  await sleep(500) // regenerations started by the last requests land
  const sequential = []
  for (let i = 0; i < SEQUENTIAL; i++) {
    const s = performance.now()
    await fetchPage(fleet[0], '/products?list=probe')
    sequential.push(performance.now() - s)
  }
  sequential.sort((a, b) => a - b)
  const calls = new Array(KEYS + 1).fill(0)
  for (let k = 1; k <= KEYS; k++)
    calls[k] = origin.calls(originKey(`p${String(k)}`)) - before.get(k)
  const sent = times.filter((t) => t !== undefined).length
  const lat = (inst) =>
    plan
      .filter((r) => (inst === undefined || r.instance === inst) && latency[r.i] !== undefined)
      .map((r) => latency[r.i])
      .sort((a, b) => a - b)
  const all = lat()
  const perInstanceP50 = NAMES.map((_, i) => pct(lat(i), 50))
  const tail = tailOf(plan, times, latency)
  return {
    label,
    sent,
    errors,
    firstError,
    elapsedMs,
    times,
    calls,
    originCalls: calls.reduce((a, b) => a + b, 0),
    p50: pct(all, 50),
    p99: pct(all, 99),
    p50Min: Math.min(...perInstanceP50),
    p50Max: Math.max(...perInstanceP50),
    sequentialP50: pct(sequential, 50),
    revalidation,
    tail,
  }
}

/**
 * What the slowest requests of a replay were. A request is "cold" when it started before any
 * request for its key had been answered by any instance: no cache, shared or not, can hold the
 * page yet, so it waits for a render (its own or, with single flight, another's). "Cold on its
 * instance": started before that instance had answered its key (a per-process cache misses;
 * a shared one may hit). Classified from the client's times only, the same way for every cache.
 */
function tailOf(plan, times, latency) {
  const done = plan.filter((r) => latency[r.i] !== undefined)
  const end = (r) => times[r.i] + latency[r.i]
  const firstEnd = new Map()
  const firstEndOn = new Map()
  for (const r of done) {
    const on = `${String(r.instance)}/${String(r.rank)}`
    firstEnd.set(r.rank, Math.min(firstEnd.get(r.rank) ?? Infinity, end(r)))
    firstEndOn.set(on, Math.min(firstEndOn.get(on) ?? Infinity, end(r)))
  }
  const cold = (r) => times[r.i] < firstEnd.get(r.rank)
  const coldOn = (r) => times[r.i] < firstEndOn.get(`${String(r.instance)}/${String(r.rank)}`)
  const slowest = [...done].sort((a, b) => latency[b.i] - latency[a.i])
  const top = slowest.slice(0, Math.max(1, Math.ceil(done.length / 100)))
  const sorted = (rs) => rs.map((r) => latency[r.i]).sort((a, b) => a - b)
  return {
    cold: done.filter(cold).length,
    coldOnInstance: done.filter(coldOn).length,
    top: top.length,
    topCold: top.filter(cold).length,
    topColdOnInstance: top.filter(coldOn).length,
    coldP50: pct(sorted(done.filter(cold)), 50),
    warmP99: pct(sorted(done.filter((r) => !coldOn(r))), 99),
  }
}

// ---- cold start ----------------------------------------------------------------------------

async function coldStart({ label, fleet, origin, list }) {
  // As a readiness probe would: load the page's code on each instance (another key).
  for (const inst of fleet) await fetchPage(inst, '/products?list=warm')
  const rounds = []
  const t0 = performance.now()
  for (let round = 1; round <= COLD_MAX_ROUNDS; round++) {
    const before = origin.stats().calls
    const count = () => {
      const now = origin.stats().calls
      let n = 0
      for (let k = 1; k <= KEYS; k++) {
        const key = originKey(`${list}${String(k)}`)
        n += (now[key] ?? 0) - (before[key] ?? 0)
      }
      return n
    }
    const lat = []
    let errors = 0
    await Promise.all(
      fleet.flatMap((inst) =>
        Array.from({ length: KEYS }, async (_, k) => {
          const s = performance.now()
          try {
            await fetchPage(inst, `/products?list=${list}${String(k + 1)}`)
            lat.push(performance.now() - s)
          } catch {
            errors++
          }
        }),
      ),
    )
    const calls = count()
    lat.sort((a, b) => a - b)
    rounds.push({ calls, errors, p50: pct(lat, 50), max: lat[lat.length - 1] })
    progress(`${label}: round ${String(round)}: ${String(calls)} origin calls`)
    if (calls === 0 && errors === 0) break
  }
  return {
    label,
    rounds,
    originCalls: rounds.reduce((a, r) => a + r.calls, 0),
    steadyAfter: rounds.findIndex((r) => r.calls === 0 && r.errors === 0) + 1,
    ms: performance.now() - t0,
  }
}

// ---- several runs ----------------------------------------------------------------------------

const medianOf = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

/** One cache's runs: each measure's median and min–max, the runs themselves kept. */
function summarize(runs) {
  const spread = (pick) => {
    const xs = runs.map(pick)
    return { median: medianOf(xs), min: Math.min(...xs), max: Math.max(...xs) }
  }
  return {
    runs,
    originCalls: spread((r) => r.originCalls),
    hitRatio: spread((r) => 1 - r.originCalls / r.sent),
    p50: spread((r) => r.p50),
    p99: spread((r) => r.p99),
    sequentialP50: spread((r) => r.sequentialP50),
    warmP99: spread((r) => r.tail.warmP99),
    sent: runs.reduce((a, r) => a + r.sent, 0),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    calls: Array.from({ length: KEYS + 1 }, (_, k) => medianOf(runs.map((r) => r.calls[k]))),
  }
}

// ---- main ----------------------------------------------------------------------------------

const f1 = (n) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(1))
const f2 = (n) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(2))

function table(header, rows) {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ]
}

async function main() {
  const started = Date.now()
  const load = os.loadavg()[0]
  const logDir = makeLogDir('fleetcache-bench-fleet-')
  progress(`logs in ${logDir}`)
  const running = new Set() // fleets started and not yet stopped
  const stopFleet = async (fleet) => {
    running.delete(fleet)
    await Promise.allSettled(fleet.map((i) => i.stop()))
  }
  let redis
  let origin
  try {
    const app = await prepareApp({ log: progress, logDir })
    const baseline = await prepareDefaultCache({ log: progress, logDir })
    // 4's builds. A peer that cannot be installed or built is reported with its error, the
    // bench goes on without it.
    const peers = []
    const peerFailures = []
    for (const peer of WITH_PEERS ? PEERS : []) {
      try {
        peers.push({ ...peer, ...(await preparePeerApp(peer, { log: progress, logDir })) })
      } catch (err) {
        progress(`${peer.pkg}: left out, install or build failed: ${err.message.split('\n')[0]}`)
        peerFailures.push({ pkg: peer.pkg, stage: 'install and build', text: failureText(err) })
      }
    }
    const peersBuildMs = peers.reduce((a, p) => a + p.buildMs, 0)
    const benchStarted = Date.now()
    redis = await startRedis({ logDir })
    origin = await startOrigin()
    progress(`redis ${redis.url} (pid ${String(redis.pid)}), origin ${origin.url}`)
    const plan = makePlan()
    const launch = async (label, env, dir, names = NAMES) => {
      const t = Date.now()
      fs.mkdirSync(path.join(logDir, label), { recursive: true })
      const fleet = await startFleet({
        names,
        env: { ORIGIN_URL: origin.url, ...env },
        logDir: path.join(logDir, label),
        startTimeoutMs: 90_000,
        appDir: dir,
      })
      running.add(fleet)
      progress(
        `${label}: ${String(fleet.length)} instances up in ${String(Date.now() - t)} ms (pids ${fleet.map((i) => i.pid).join(', ')})`,
      )
      return fleet
    }
    const withFleet = async (label, env, fn, dir) => {
      fs.mkdirSync(path.join(logDir, label), { recursive: true })
      const fleet = await launch(label, env, dir)
      try {
        return await fn(fleet)
      } finally {
        await stopFleet(fleet)
      }
    }

    // 1. and 4. The plan with each cache, RUNS times each, in an order that rotates by run.
    const variants = [
      {
        key: 'fleetcache',
        name: 'fleetcache',
        env: (r) => ({ REDIS_URL: redis.url, FLEETCACHE_PREFIX: `bench-fleet-${String(r)}` }),
        runs: [],
      },
      { key: 'default-cache', name: 'default cache', env: () => DEFAULT_CACHE_ENV, runs: [] },
      // The same build with tag updates pushed (tagSync: 'push', decision 0031): a cached page
      // is answered from process memory while the channel is caught up.
      ...(WITH_PUSH
        ? [
            {
              key: 'fleetcache-push',
              name: 'fleetcache, tagSync push',
              env: (r) => ({
                REDIS_URL: redis.url,
                FLEETCACHE_PREFIX: `bench-fleet-push-${String(r)}`,
                FLEETCACHE_TAG_SYNC: 'push',
              }),
              runs: [],
            },
          ]
        : []),
      ...peers.map((p) => ({
        key: `peer-${p.id}`,
        name: `${p.pkg}@${p.version}`,
        peer: p,
        env: () => ({ REDIS_URL: redis.url, ...p.env }),
        runs: [],
      })),
    ]
    for (let r = 1; r <= RUNS; r++) {
      const order = variants.map((_, i) => variants[(i + r - 1) % variants.length])
      for (const v of order) {
        if (v.failed) continue
        await redis.command('FLUSHALL')
        const config = v.peer?.redisConfig
        if (config) await redis.command('CONFIG', 'SET', ...config)
        try {
          const run = await withFleet(
            `${v.key}-${String(r)}`,
            v.env(r),
            async (fleet) => {
              const result = await replay({
                label: `${v.name}, run ${String(r)}`,
                fleet,
                origin,
                plan,
              })
              // What the servers said about failed requests (read before they are stopped).
              if (result.errors)
                result.logErrors = failureText(
                  `instance logs\n${fleet.map((i) => i.logTail(80)).join('\n')}`,
                  6,
                )
              return result
            },
            v.peer?.dir,
          )
          v.runs.push(run)
        } catch (err) {
          if (!v.peer) throw err
          progress(
            `${v.name}: left out after run ${String(r)} failed: ${err.message.split('\n')[0]}`,
          )
          v.failed = true
          peerFailures.push({ pkg: v.name, stage: `run ${String(r)}`, text: failureText(err) })
        } finally {
          if (config) await redis.command('CONFIG', 'SET', config[0], '')
        }
      }
    }
    // 1b. One at a time, interleaved (INTERLEAVED_ROUNDS above).
    const quietVariants = variants.filter(
      (v) => !v.failed && ['fleetcache', 'default-cache', 'fleetcache-push'].includes(v.key),
    )
    const interleaved = await interleavedQuiet(quietVariants, launch, stopFleet)
    const fcRuns = variants[0].runs
    const dcRuns = variants[1].runs
    const fc = summarize(fcRuns)
    const dc = summarize(dcRuns)
    const pushVariant = variants.find((v) => v.key === 'fleetcache-push')
    const pushRuns = pushVariant?.runs ?? []
    const push = pushRuns.length ? summarize(pushRuns) : undefined
    const peerResults = variants.filter((v) => v.peer && v.runs.length)
    for (const v of peerResults) v.summary = summarize(v.runs)

    const sum = (xs) => xs.reduce((a, b) => a + b, 0)
    // 2. The ideal, on the planned arrival times and on those of the fleetcache run.
    const planned = plan.map((r) => r.at)
    const idealPlanned = ideal(planned, plan, fcRuns[0].revalidation.revalidatedAt)
    const idealFc = fcRuns.map((run) => sum(ideal(run.times, plan, run.revalidation.revalidatedAt)))

    // 3. Cold starts (each its own prefix: an empty Redis for a new deployment).
    const cold = []
    cold.push(
      await withFleet(
        'cold-leases-on',
        { REDIS_URL: redis.url, FLEETCACHE_PREFIX: 'bench-cold-on' },
        (fleet) => coldStart({ label: 'cold start, leases on', fleet, origin, list: 'c' }),
      ),
    )
    cold.push(
      await withFleet(
        'cold-leases-off',
        { REDIS_URL: redis.url, FLEETCACHE_PREFIX: 'bench-cold-off', FLEETCACHE_LEASES: '0' },
        (fleet) => coldStart({ label: 'cold start, leases off', fleet, origin, list: 'd' }),
      ),
    )
    const seedStart = Date.now()
    await runLogged(
      process.execPath,
      [
        path.join(repoRoot, 'js-host', 'cli', 'main.js'),
        'seed',
        path.join(appDir, '.next'),
        '--quiet',
      ],
      {
        cwd: repoRoot,
        env: { ...process.env, REDIS_URL: redis.url, FLEETCACHE_PREFIX: 'bench-cold-seed' },
        logFile: path.join(logDir, 'seed.log'),
        timeoutMs: 60_000,
        what: 'fleetcache seed',
      },
    )
    const seedMs = Date.now() - seedStart
    progress(`fleetcache seed done in ${String(seedMs)} ms`)
    cold.push(
      await withFleet(
        'cold-seeded',
        { REDIS_URL: redis.url, FLEETCACHE_PREFIX: 'bench-cold-seed' },
        (fleet) => coldStart({ label: 'cold start, seeded, leases on', fleet, origin, list: 'e' }),
      ),
    )
    const cleanMs = Date.now() - benchStarted

    // ---- the report ----
    const idealTotal = sum(idealPlanned)
    const worstVsIdeal = Math.max(...fcRuns.map((r) => r.originCalls)) / idealTotal
    const overheads = fcRuns.map((r, i) => r.p50 - dcRuns[i].p50)
    const overhead = medianOf(overheads)
    const quietOverheads = fcRuns.map((r, i) => r.sequentialP50 - dcRuns[i].sequentialP50)
    const pushOverheads = pushRuns.map((r, i) => r.p50 - dcRuns[i].p50)
    const pushQuietOverheads = pushRuns.map((r, i) => r.sequentialP50 - dcRuns[i].sequentialP50)
    const p50Of = (xs) =>
      pct(
        [...(xs ?? [])].sort((a, b) => a - b),
        50,
      )
    const quiet = interleaved.byKey
    const quietDiff = (key) =>
      p50Difference(quiet[key] ?? [], quiet['default-cache'] ?? [], interleaved.blockOf, {
        pct,
        random: rng(7),
      })
    const quietFc = quietDiff('fleetcache')
    const quietPush = quietDiff('fleetcache-push')
    const blockCount = interleaved.orders.length
    // How the start order was handled, for the rows and the method: a reader must be able to
    // tell (an instance's place in it moves its cost by as much as the 0.2 ms looked for).
    const shortKey = (k) =>
      ({ fleetcache: 'pull', 'default-cache': 'default', 'fleetcache-push': 'push' })[k] ?? k
    const startOrders = interleaved.orders.map((o) => o.map(shortKey).join(', ')).join('; ')
    const startOrderShort =
      blockCount === 1
        ? `one start order, ${startOrders}, kept for every round`
        : `${String(blockCount)} blocks of fresh instances, start order rotated`
    // Each block's p50 difference, by the variant started first in it.
    const byBlock = (d) =>
      d.perBlock
        .map((x) => `${shortKey(interleaved.orders[x.block][0])} first ${f2(x.diff)}`)
        .join(', ')
    const seenCount = (r) => r.revalidation.seen.filter((x) => x !== null).length
    const seenShare = (r) => `${String(seenCount(r))}/${String(NAMES.length)}`
    const seenTimes = (r) =>
      r.revalidation.seen.map((x) => (x === null ? '>window' : `${f1(x)}`)).join(', ')
    const withRange = (m, f) => `${f(m.median)} (${f(m.min)}–${f(m.max)})`
    const int = (n) => String(Math.round(n))
    const buckets = [
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 10],
      [11, KEYS],
    ]
    const requestsPerRank = new Array(KEYS + 1).fill(0)
    for (const r of plan) requestsPerRank[r.rank]++
    const range = (xs, [a, b]) => sum(xs.slice(a, b + 1))
    const runRow = (r, name) => [
      name,
      String(r.sent),
      String(r.errors),
      String(r.originCalls),
      f2(1 - r.originCalls / r.sent),
      `${f2(r.originCalls / idealTotal)}x`,
      f2(r.p50),
      `${f2(r.p50Min)}–${f2(r.p50Max)}`,
      f2(r.p99),
      seenShare(r),
      seenTimes(r),
    ]
    // Until every instance serves the revalidated probe page: the slowest of A, B, C, from the
    // reply to revalidateTag (Infinity: one did not within the window).
    const untilAll = (r) => Math.max(...r.revalidation.seen.map((x) => (x === null ? Infinity : x)))
    const ms = (n) => (n === Infinity ? `>${String(SEEN_WINDOW_MS)}` : f1(n))
    // What makes p99: with KEYS pages and an empty cache at the start, each page's first
    // requests wait for a render, a few percent of the plan: the slowest 1% can be all of them.
    function tailSection() {
      const caches = [
        ['fleetcache', fc],
        ...(push ? [['fleetcache, tagSync push', push]] : []),
        ...peerResults.map((v) => [v.peer.pkg, v.summary]),
        ["Next's default (per process)", dc],
      ]
      const med = (m, pick) => medianOf(m.runs.map((r) => pick(r.tail)))
      return [
        '**What the slowest requests are** (median over runs)',
        '',
        "Classified from the client side alike for every cache. Cold: started before any instance had answered a request for the same page, so no cache can hold it yet and the request waits for a render (its own, or another's under single flight). Cold on its instance: started before that instance had answered the page (a per-process cache misses there; a shared one can hit). Warm p99: the p99 of the requests that were not cold on their instance.",
        '',
        ...table(
          [
            'cache',
            'p99 ms',
            'slowest 1%: requests',
            'of them cold',
            'of them cold on their instance',
            'cold requests in the run',
            'cold requests p50 ms',
            'warm p99 ms',
          ],
          caches.map(([name, m]) => [
            name,
            withRange(m.p99, f2),
            int(med(m, (t) => t.top)),
            int(med(m, (t) => t.topCold)),
            int(med(m, (t) => t.topColdOnInstance)),
            int(med(m, (t) => t.cold)),
            f2(med(m, (t) => t.coldP50)),
            withRange(m.warmP99, f2),
          ]),
        ),
        '',
      ]
    }
    // Where the time until an instance shows the revalidated page goes: the first request after
    // the revalidation (the old page, served while the regeneration runs, or a wait for it) and
    // the one that shows the new page, per instance, medians over runs and instances.
    function pollsSection() {
      const caches = [
        ['fleetcache', fc],
        ...(push ? [['fleetcache, tagSync push', push]] : []),
        ...peerResults.map((v) => [v.peer.pkg, v.summary]),
      ]
      const rowOf = ([name, m]) => {
        const seenBy = m.runs.flatMap((r) =>
          (r.revalidation?.polls ?? []).filter((p) => p.length > 0 && p[p.length - 1].fresh),
        )
        const all = m.runs.flatMap((r) => r.revalidation?.polls ?? [])
        const medOf = (xs) => (xs.length ? f1(medianOf(xs)) : '-')
        return [
          name,
          `${String(seenBy.length)} of ${String(all.length)}`,
          medOf(seenBy.map((p) => p.length)),
          `${String(all.filter((p) => p.length > 0 && !p[0].fresh).length)} of ${String(all.length)}`,
          medOf(seenBy.map((p) => p[0].ms)),
          medOf(seenBy.map((p) => p[p.length - 1].at)),
          medOf(seenBy.map((p) => p[p.length - 1].ms)),
        ]
      }
      return [
        '**Where the time until an instance shows the revalidated page goes** (each instance of each run)',
        '',
        `After \`revalidateTag('products', 'max')\` each instance is asked for the probe page, one request at a time with ${String(SEEN_POLL_MS)} ms between them, until it shows the new data. The old page first is what \`'max'\` asks for (stale while revalidating); how long that first request takes, and when the request that shows the new page starts, say where the time in the column "ms until every instance serves the revalidated page" goes. Medians over the instances that showed the new page.`,
        '',
        ...table(
          [
            'cache',
            'instances that showed the new page',
            'requests until then',
            'first request got the old page',
            'first request ms',
            'the new page: request started at ms',
            'the new page: request ms',
          ],
          caches.map(rowOf),
        ),
        '',
      ]
    }
    function peersSection() {
      if (!WITH_PEERS) return []
      const columns = [
        // [heading, pick from a summary or runs, format, lower is better]
        ['origin requests', (m) => m.originCalls.median, int, true],
        ['hit ratio', (m) => m.hitRatio.median, f2, false],
        ['p50 ms', (m) => m.p50.median, f2, true],
        ['p99 ms', (m) => m.p99.median, f2, true],
        [
          `p50 ms, ${String(SEQUENTIAL)} requests one at a time after the replay`,
          (m) => m.sequentialP50.median,
          f2,
          true,
        ],
        [
          'ms until every instance serves the revalidated page',
          (m) => medianOf(m.runs.map(untilAll)),
          ms,
          true,
        ],
      ]
      const rows = [
        ['fleetcache', '(this build)', fc],
        ...(push ? [['fleetcache, tagSync push', '(this build)', push]] : []),
        ...peerResults.map((v) => [v.peer.pkg, v.peer.version, v.summary]),
        ["Next's default (per process, for reference)", `Next ${readNextVersion()}`, dc],
      ]
      // Each mode on its own: pull (the default) and push are both settings a user picks.
      const behindOf = (own) => {
        const behind = []
        for (const [heading, pick, fmt, lower] of columns) {
          for (const v of peerResults) {
            const a = pick(own)
            const b = pick(v.summary)
            if (lower ? b < a : b > a)
              behind.push(`${heading}: ${v.peer.pkg} ${fmt(b)} vs ${fmt(a)}`)
          }
        }
        return behind
      }
      const verdict = (label, own) => {
        const behind = behindOf(own)
        return behind.length
          ? `${label} does not lead every column: ${behind.join('; ')}.`
          : `${label} leads every column against every peer that ran.`
      }
      const failed = [
        ...peerFailures.map((f) => ({ head: `${f.pkg} (${f.stage}) failed:`, text: f.text })),
        ...peerResults.flatMap((v) =>
          v.runs
            .map((r, i) => ({ r, i }))
            .filter(({ r }) => r.errors)
            .map(({ r, i }) => ({
              head: `${v.peer.pkg}, run ${String(i + 1)}: ${String(r.errors)} of ${String(r.sent)} requests failed, the first with:`,
              text: `${r.firstError}\n${r.logErrors ?? ''}`.trim(),
            })),
        ),
      ]
      return [
        '### Side by side with the published peers',
        '',
        `The two published handlers with Redis-backed implementations of both Next interfaces, each installed from the npm registry at the version its lockfile pins (bench/peers/<id>/package-lock.json) into a copy of examples/next-app configured as its README says (bench/peers/README.md: the configuration, where it departs from the README and why, and why fleetcache does not lead where it does not). Same plan, same Redis (flushed before every replay, each cache starting empty), same three instances, ${String(RUNS)} replays each; medians over the runs (min–max in brackets where given). Until every instance serves the revalidated page: from the reply to \`revalidateTag('products', 'max')\` on A to the slowest of A, B and C showing the probe page's new origin data, each polled every ${String(SEEN_POLL_MS)} ms (100 ms before 2026-12-04) for at most ${String(SEEN_WINDOW_MS)} ms.`,
        '',
        ...table(
          ['cache', 'version', 'runs', 'requests', 'errors', ...columns.map((c) => c[0])],
          rows.map(([name, version, m]) => [
            name,
            version,
            String(m.runs.length),
            String(m.sent),
            String(m.errors),
            withRange(m.originCalls, int),
            withRange(m.hitRatio, f2),
            withRange(m.p50, f2),
            withRange(m.p99, f2),
            withRange(m.sequentialP50, f2),
            `${ms(columns[5][1](m))} (runs: ${m.runs.map((r) => ms(untilAll(r))).join(', ')})`,
          ]),
        ),
        '',
        !peerResults.length
          ? 'No peer completed a replay: nothing to compare.'
          : [
              verdict('fleetcache (tagSync pull, the default)', fc),
              ...(push ? [verdict('fleetcache with tagSync push', push)] : []),
            ].join(' '),
        '',
        ...failed.flatMap((f) => [f.head, '', '```', f.text, '```', '']),
      ]
    }
    const lines = [
      `## ${new Date(started).toISOString()} — Fleet`,
      '',
      `Machine: ${String(os.cpus().length)} × ${os.cpus()[0]?.model ?? 'cpu'}, ${String(Math.round(os.totalmem() / 2 ** 30))} GiB, ${os.type()} ${os.release()}, Node ${process.version}; load average ${load.toFixed(2)} when the run started. redis-server ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).split(' ')[2]?.replace('v=', '') ?? '?'}, three \`next start\` instances of examples/next-app (Next ${readNextVersion()}) and the counting origin, all on loopback on this machine, started by the benchmark.`,
      `Method: one seeded plan (seed ${String(SEED)}): ${String(REQUESTS)} requests, Poisson arrivals at ${String(RATE)}/s, keys Zipf(s = ${String(ZIPF_S)}) over ${String(KEYS)} pages \`/products?list=p<N>&life=short\` ('use cache', revalidate ${String(REVALIDATE_S)} s, expire ${String(EXPIRE_S)} s), round-robin over 3 instances, at most ${String(CONCURRENCY)} in flight, stopped after ${String(RUN_LIMIT_MS / 1000)} s. Replayed ${String(RUNS)} times with fleetcache (build ${app.buildId}) and ${String(RUNS)} times with Next's default per-process cache (same app built without fleetcache, ${baseline.buildId})${peerResults.length ? `, ${String(RUNS)} times with each published peer (below)` : ''}, rotating which goes first, each replay on fresh processes and an empty cache. One request at a time: after each replay, ${String(SEQUENTIAL)} requests for the probe page on its instance A; and once after all replays, one instance each of fleetcache, fleetcache push and Next's default cache up at once, asked for the probe page in turn (${String(INTERLEAVED_ROUNDS)} rounds at most, ${String(INTERLEAVED_CAP_MS / 1000)} s at most, the order rotating every round, after ${String(INTERLEAVED_WARM)} warming requests each, the instances side by side), which the targets use: the drift of the machine between replays falls on all three alike there. ${blockCount === 1 ? `Start order: the instances were started in one order, ${startOrders}, and kept for every round (BENCH_FLEET_INTERLEAVED_BLOCKS=1; an instance's place in the start order can move its cost by as much as 0.2 ms, bench/PAGE-COST.md runs 12 to 17).` : `Start order: the rounds (and the time cap) split evenly into ${String(blockCount)} blocks, each on fresh instances started in an order rotated by one (${startOrders}), so that no variant holds the same place in every block (an instance's place in the start order can move its cost by as much as 0.2 ms, bench/PAGE-COST.md runs 12 to 17); the rounds pooled, the bootstrap resampling rounds within each block, and "by block" the p50 difference of each block, named by the variant started first.`} Midway through each replay, \`revalidateTag('products', 'max')\` on instance A after the origin data of a long-lived probe page changed; each instance then gets ${String(SEEN_WINDOW_MS / 1000)} s to show the new data. Latency: client-side, per request, all instances; p50 spread within a run = the lowest–highest per-instance p50; medians over runs with the min–max of the runs in brackets. One replay takes about ${f1(fcRuns[0].elapsedMs / 1000)} s.`,
      '',
      '### Targets',
      '',
      ...table(
        ['target', 'measured', 'met'],
        [
          [
            'origin requests within 5% of the ideal (one shared cache, SWR, perfect single flight), every run',
            `median ${withRange(fc.originCalls, int)} vs ${String(idealTotal)} (${f2(fc.originCalls.median / idealTotal)}x; worst run ${f2(worstVsIdeal)}x)`,
            worstVsIdeal <= 1.05 ? 'yes' : 'no',
          ],
          [
            "p50 latency overhead against Next's per-process cache below 1 ms (median of the runs' differences)",
            `${f2(overhead)} ms (runs: ${overheads.map(f2).join(', ')}; p50 ${f2(fc.p50.median)} vs ${f2(dc.p50.median)} ms)`,
            overhead < 1 ? 'yes' : 'no',
          ],
          [
            `the same, cached-page requests one at a time, interleaved with Next's per-process cache (${String(quietFc.n)} rounds, ${startOrderShort}; no contention)`,
            `${f2(quietFc.diff)} ms (95% bootstrap ${f2(quietFc.lo)} to ${f2(quietFc.hi)}; rounds' own differences, median per block averaged over blocks ${f2(quietFc.paired)}; p50 ${f2(p50Of(quiet.fleetcache))} vs ${f2(p50Of(quiet['default-cache']))} ms; ${blockCount > 1 ? `by block: ${byBlock(quietFc)}; ` : ''}after each replay, on its own: ${quietOverheads.map(f2).join(', ')})`,
            quietFc.diff < 1 ? 'yes' : 'no',
          ],
          ...(push
            ? [
                [
                  "with tagSync push: p50 overhead under load within the run-to-run spread of Next's per-process cache's p50 (issue 17)",
                  `${f2(medianOf(pushOverheads))} ms (runs: ${pushOverheads.map(f2).join(', ')}; p50 ${f2(push.p50.median)} vs ${f2(dc.p50.median)} ms; spread ${f2(dc.p50.max - dc.p50.min)} ms)`,
                  medianOf(pushOverheads) <= dc.p50.max - dc.p50.min ? 'yes' : 'no',
                ],
                [
                  `with tagSync push: the same, one at a time, interleaved, at most 0.2 ms (issue 17)`,
                  `${f2(quietPush.diff)} ms (95% bootstrap ${f2(quietPush.lo)} to ${f2(quietPush.hi)}; rounds' own differences, median per block averaged over blocks ${f2(quietPush.paired)}; p50 ${f2(p50Of(quiet['fleetcache-push']))} vs ${f2(p50Of(quiet['default-cache']))} ms; ${blockCount > 1 ? `by block: ${byBlock(quietPush)}; ` : ''}after each replay, on its own: ${pushQuietOverheads.map(f2).join(', ')})`,
                  quietPush.diff <= 0.2 ? 'yes' : 'no',
                ],
              ]
            : []),
        ],
      ),
      '',
      '### The seeded plan, three instances',
      '',
      '**Over the runs** (median, min–max in brackets)',
      '',
      ...table(
        [
          'cache',
          'runs',
          'requests',
          'errors',
          'origin requests',
          'hit ratio',
          'vs ideal',
          'p50 ms',
          'p99 ms',
          'runs where every instance saw the revalidation',
        ],
        [
          [fc, 'fleetcache'],
          ...(push ? [[push, 'fleetcache, tagSync push']] : []),
          [dc, "Next's default (per process)"],
        ].map(([m, name]) => [
          name,
          String(m.runs.length),
          String(m.sent),
          String(m.errors),
          withRange(m.originCalls, int),
          withRange(m.hitRatio, f2),
          `${f2(m.originCalls.median / idealTotal)}x`,
          withRange(m.p50, f2),
          withRange(m.p99, f2),
          `${String(m.runs.filter((r) => seenCount(r) === NAMES.length).length)}/${String(m.runs.length)}`,
        ]),
      ),
      `| ideal (simulated) | - | ${String(REQUESTS)} | - | ${String(idealTotal)} | ${f2(1 - idealTotal / REQUESTS)} | 1.00x | - | - | all |`,
      '',
      '**Each run**',
      '',
      ...table(
        [
          'cache',
          'requests',
          'errors',
          'origin requests',
          'hit ratio',
          'vs ideal',
          'p50 ms',
          'p50 spread ms',
          'p99 ms',
          'instances that see a revalidation',
          'ms until seen (A, B, C)',
        ],
        [
          ...fcRuns.map((r, i) => runRow(r, `fleetcache, run ${String(i + 1)}`)),
          ...pushRuns.map((r, i) => runRow(r, `fleetcache push, run ${String(i + 1)}`)),
          ...dcRuns.map((r, i) => runRow(r, `Next's default, run ${String(i + 1)}`)),
          ...peerResults.flatMap((v) =>
            v.runs.map((r, i) => runRow(r, `${v.peer.pkg}, run ${String(i + 1)}`)),
          ),
        ],
      ),
      '',
      `The ideal on the arrival times each fleetcache run actually achieved (instead of the planned ones): ${idealFc.map(String).join(', ')} origin requests. The ideal regenerates instantly; a real regeneration takes a request's time, during which further requests are served the stale value without one, so a real shared cache can come in slightly below it.${Math.abs(overhead) < Math.max(fc.p50.max - fc.p50.min, dc.p50.max - dc.p50.min) ? " The p50 difference between the two caches is smaller than the spread of either cache's p50 between runs: within noise on this machine." : ''}`,
      '',
      '**Origin requests per key** (keys by popularity rank; median over runs per key)',
      '',
      ...table(
        ['keys', 'requests', 'fleetcache', 'default cache', 'ideal'],
        buckets.map((b) => [
          b[0] === b[1] ? `rank ${String(b[0])}` : `ranks ${String(b[0])}–${String(b[1])}`,
          String(range(requestsPerRank, b)),
          String(range(fc.calls, b)),
          String(range(dc.calls, b)),
          String(range(idealPlanned, b)),
        ]),
      ),
      '',
      ...tailSection(),
      ...peersSection(),
      ...pollsSection(),
      '### Cold start of a new deployment',
      '',
      `Three fresh instances on an empty cache, each warmed by one request for another key (as a readiness probe would); each round asks all three for ${String(KEYS)} long-lived pages at once (${String(KEYS * NAMES.length)} concurrent requests), until a round calls the origin no more (at most ${String(COLD_MAX_ROUNDS)} rounds). Ideal: ${String(KEYS)} origin requests. \`fleetcache seed\` took ${String(seedMs)} ms; it stores the build's prerendered routes, not 'use cache' data read at request time, so it is not expected to save these origin requests.`,
      '',
      ...table(
        [
          'mode',
          'origin requests',
          'ideal',
          'per round',
          'steady after round',
          'round 1 p50 ms',
          'round 1 max ms',
        ],
        cold.map((c) => [
          c.label.replace('cold start, ', ''),
          String(c.originCalls),
          String(KEYS),
          c.rounds.map((r) => String(r.calls)).join(', '),
          c.steadyAfter ? String(c.steadyAfter) : 'not reached',
          f1(c.rounds[0].p50),
          f1(c.rounds[0].max),
        ]),
      ),
      '',
      `The fleet part took ${f1(cleanMs / 1000)} s (builds excluded: ${f1((app.buildMs + baseline.buildMs + peersBuildMs) / 1000)} s this time).`,
      '',
    ]
    const report = prependReport(lines)
    console.log(lines.join('\n'))
    progress(
      `wrote ${path.relative(process.cwd(), report)} in ${f1((Date.now() - started) / 1000)} s`,
    )
    fs.rmSync(logDir, { recursive: true, force: true })
  } finally {
    for (const fleet of running) await stopFleet(fleet)
    if (origin) await origin.close()
    if (redis) await redis.stop()
  }
}

function readNextVersion() {
  try {
    return JSON.parse(
      fs.readFileSync(path.join(appDir, 'node_modules', 'next', 'package.json'), 'utf8'),
    ).version
  } catch {
    return '?'
  }
}

// Ctrl-C: stop what this script started (the finally above runs when main rejects).
let interrupted = false
const onSignal = (sig) => {
  if (interrupted) return
  interrupted = true
  progress(`${sig}: stopping`)
  // trackChild's exit hook SIGKILLs every child still running (by PID).
  process.exit(130)
}
process.once('SIGINT', onSignal)
process.once('SIGTERM', onSignal)

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    console.error('(logs kept for diagnosis: see the "logs in" line above)')
    process.exit(1)
  },
)
