// Where the time of a cached page request goes, against Next's own cache: one redis-server, the
// counting origin and PAGECOST_INSTANCES (3) `next start` instances of examples/next-app per
// variant on loopback, started here and stopped by PID at the end (also on errors):
//   pull     fleetcache, the default tag sync (a tag pull per render)
//   push     fleetcache, FLEETCACHE_TAG_SYNC=push
//   floor    the same app built with the least custom handlers there can be, a Map in the
//            process for `cacheHandler` and for `cacheHandlers.default`/`.remote`
//            (bench/lib/floor-*.cjs, copied into the app; .next-floor/): what Next's
//            custom-handler path costs by itself, whatever the handler does (Next awaits an
//            import of the cacheHandler module on every request, which its own cache skips)
//   default  the same app built without fleetcache: Next's per-process cache (.next-default/)
// Each instance preloads bench/lib/page-cost-probe.cjs (timing wrappers put around fleetcache's
// and Next's cache calls from the outside; nothing in js-host/src is instrumented).
//
// The instances start one after the other in an order shuffled with a seed drawn for the run
// (PAGECOST_SHUFFLE=<seed> repeats one; PAGECOST_SHUFFLE=list keeps the list's order): an
// instance's place in that order changes its cost by as much as is looked for (PAGE-COST.md,
// runs 12 to 17), and two instances of one build differ by up to 0.3 ms by themselves, so each
// variant's numbers pool its instances' requests (its k-th instance paired with the other
// variants' k-th in each round). PAGECOST_INSTANCES=1 PAGECOST_SHUFFLE=list: one instance per
// variant in the list's order, as every run before 2026-12-06.
//
// After warming PAGE on every instance:
// 1. Latency: ROUNDS rounds, one request to each instance per round, one at a time, the order
//    rotating every round, so that the load of the shared machine falls on all alike;
//    the probe records nothing. p50/p90 per variant and the differences to `default`, and of
//    the fleetcache variants to `floor` (the part that is fleetcache's own).
// 2. Breakdown: the same with the probe recording; each recorded call is put into the request
//    whose time window holds it (one clock, CLOCK_MONOTONIC, for all processes), then per
//    request: time in each cache call, Redis commands and reply bytes, decoding, wasm, and what
//    is left for Next.
//    Then the page's stored value, decoded again in each fleetcache server (decodeValue alone).
// 3. Redis's own count: per fleetcache variant, SOLO requests to it alone between two
//    `INFO commandstats` / `INFO stats` (after `CONFIG RESETSTAT`), less an idle window of the
//    same length (the push instance's periodic pull, say); its first instance only.
// 4. CPU profiles (V8's sampling profiler through the probe, 200 µs) of all at once over
//    SOLO interleaved rounds: self time per request by where the code lives, the top
//    fleetcache functions.
//
//   node bench/page-cost.mjs     (after `make pack`; builds the example when it is not current)
//
// Knobs: PAGECOST_ROUNDS (default 300), PAGECOST_SOLO (200), PAGECOST_INSTANCES (3 per variant),
// PAGECOST_SHUFFLE (a seed, or list), PAGECOST_PAGE
// (/products?list=probe), PAGECOST_TIME_CAP_S (each measuring loop stops after this, 240),
// PAGECOST_PROBE_WRAPS=2 (the probe's A/A: every wrapper doubled, bench/lib/page-cost-probe.cjs).
// Prints the tables and puts them on top of bench/PAGE-COST.md; the raw numbers and the
// profiles go to the log directory it names.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import {
  DEFAULT_CACHE_ENV,
  appDir,
  findTarball,
  makeLogDir,
  parseDataElement,
  prepareApp,
  prepareDefaultCache,
  startInstance,
} from '../tests/support/fleet.mjs'
import { startOrigin } from '../tests/support/origin.mjs'
import { freePort } from '../tests/support/ports.mjs'
import { startRedis } from '../tests/support/redis.mjs'
import { FLOOR_ENV, prepareFloor } from './lib/floor-build.mjs'
import { PAGE_COST_REPORT, prependPageCostReport, probe, startOrder } from './lib/page-report.mjs'
import { pct, rng } from './lib/stats.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const PROBE = path.join(here, 'lib', 'page-cost-probe.cjs')

const ROUNDS = Number(process.env.PAGECOST_ROUNDS ?? 300)
const SOLO = Number(process.env.PAGECOST_SOLO ?? 200)
const PAGE = process.env.PAGECOST_PAGE ?? '/products?list=probe'
const TIME_CAP_MS = Number(process.env.PAGECOST_TIME_CAP_S ?? 240) * 1000
const WARM = 20
const INSTANCES = Number(process.env.PAGECOST_INSTANCES ?? 3)
if (!Number.isInteger(INSTANCES) || INSTANCES < 1) throw new Error('PAGECOST_INSTANCES: 1 or more')
const REQUEST_TIMEOUT_MS = 15_000

const progress = (msg) =>
  console.error(`[page-cost ${new Date().toISOString().slice(11, 19)}] ${msg}`)
const nowMs = () => Number(process.hrtime.bigint()) / 1e6

// ---- the instances -------------------------------------------------------------------------

const VARIANTS = [
  { key: 'pull', env: (redis) => ({ REDIS_URL: redis.url, FLEETCACHE_PREFIX: 'pagecost-pull' }) },
  {
    key: 'push',
    env: (redis) => ({
      REDIS_URL: redis.url,
      FLEETCACHE_PREFIX: 'pagecost-push',
      FLEETCACHE_TAG_SYNC: 'push',
    }),
  },
  { key: 'floor', env: () => FLOOR_ENV },
  { key: 'default', env: () => DEFAULT_CACHE_ENV },
]
// The variants whose handler is fleetcache (Redis counts, decoding, top functions).
const FLEETCACHE = ['pull', 'push']
// Their instances: INSTANCES each, named <variant>-<k> (the variant's own name when one).
const INSTANCE_LIST = VARIANTS.flatMap((v) =>
  Array.from({ length: INSTANCES }, (_, k) => ({
    variant: v,
    k,
    name: INSTANCES === 1 ? v.key : `${v.key}-${String(k + 1)}`,
  })),
)

// One request; its window on the shared clock and its latency. Throws unless the page rendered.
async function request(inst) {
  const start = nowMs()
  const res = await fetch(inst.url + PAGE, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  const text = await res.text()
  const end = nowMs()
  const data = res.status === 200 ? parseDataElement(text) : null
  if (!data || data.error) throw new Error(`${inst.name} ${PAGE}: HTTP ${String(res.status)}`)
  return { start, end, ms: end - start, bytes: Buffer.byteLength(text) }
}

// `rounds` rounds over `fleet`, one request at a time, the order rotated every round. Returns
// per instance name the requests' windows.
async function interleaved(fleet, rounds) {
  const out = Object.fromEntries(fleet.map((i) => [i.name, []]))
  const deadline = Date.now() + TIME_CAP_MS
  for (let r = 0; r < rounds && Date.now() < deadline; r++) {
    for (let j = 0; j < fleet.length; j++) {
      const inst = fleet[(r + j) % fleet.length]
      out[inst.name].push(await request(inst))
    }
  }
  return out
}

// Per-instance sets of interleaved(), pooled per variant: its instances' requests one after the
// other in instance order, so that the i-th of two variants are of the same round.
function pooled(set, fleet) {
  const out = Object.fromEntries(VARIANTS.map((v) => [v.key, []]))
  for (const inst of [...fleet].sort((a, b) => a.k - b.k)) out[inst.variant].push(...set[inst.name])
  return out
}

async function solo(inst, n) {
  const out = []
  const deadline = Date.now() + TIME_CAP_MS
  for (let i = 0; i < n && Date.now() < deadline; i++) out.push(await request(inst))
  return out
}

// ---- numbers -------------------------------------------------------------------------------

const sorted = (xs) => [...xs].sort((a, b) => a - b)
const p = (xs, q) => (xs.length ? pct(sorted(xs), q) : NaN)
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN)
const f2 = (n) => (Number.isNaN(n) ? '-' : n.toFixed(2))
const f3 = (n) => (Number.isNaN(n) ? '-' : n.toFixed(3))

function table(header, rows) {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n')
}

// 95% bootstrap interval of p50(xs) − p50(ys), 1000 resamples of each.
function bootstrapDiff(xs, ys) {
  const rand = rng(17)
  const draw = (a) => Array.from(a, () => a[Math.floor(rand() * a.length)])
  const diffs = []
  for (let i = 0; i < 1000; i++) diffs.push(p(draw(xs), 50) - p(draw(ys), 50))
  diffs.sort((a, b) => a - b)
  return [diffs[25], diffs[974]]
}

// Length of the union of [s, e] intervals: time during which at least one of them ran.
function unionMs(intervals) {
  const xs = [...intervals].sort((a, b) => a[0] - b[0])
  let total = 0
  let cur
  for (const [s, e] of xs) {
    if (cur === undefined || s > cur[1]) {
      if (cur) total += cur[1] - cur[0]
      cur = [s, e]
    } else if (e > cur[1]) cur[1] = e
  }
  if (cur) total += cur[1] - cur[0]
  return total
}

// Per request: the calls recorded inside its window, summed per name (ms, count, bytes).
function attribute(requests, events) {
  const evs = [...events].sort((a, b) => a[1] - b[1])
  let k = 0
  return requests.map((r) => {
    const calls = new Map()
    const spans = []
    while (k < evs.length && evs[k][1] < r.start) k++
    for (let i = k; i < evs.length && evs[i][1] <= r.end; i++) {
      const [name, s, d, bytes] = evs[i]
      const c = calls.get(name) ?? { ms: 0, n: 0, bytes: 0 }
      c.ms += d
      c.n += 1
      c.bytes += bytes
      calls.set(name, c)
      if (name === 'next.inc.get' || name.startsWith('uc.')) spans.push([s, s + d])
    }
    return { ...r, calls, inCaches: unionMs(spans) }
  })
}

// Rows for one variant's breakdown: per call name, p50 per request of the summed time, calls
// and reply bytes per request.
function breakdownRows(attributed) {
  const names = new Set()
  for (const r of attributed) for (const n of r.calls.keys()) names.add(n)
  const rows = []
  for (const name of [...names].sort()) {
    const per = attributed.map((r) => r.calls.get(name) ?? { ms: 0, n: 0, bytes: 0 })
    rows.push({
      name,
      p50: p(
        per.map((c) => c.ms),
        50,
      ),
      mean: mean(per.map((c) => c.ms)),
      calls: mean(per.map((c) => c.n)),
      bytes: mean(per.map((c) => c.bytes)),
    })
  }
  return rows
}

// The components of one request, from its recorded calls (ms unless named otherwise).
const COMPONENTS = [
  ['request, client side', (r) => r.ms],
  ['in cache calls (next.inc.get, uc.*; union)', (r) => r.inCaches],
  ['outside cache calls (Next, network, client)', (r) => r.ms - r.inCaches],
  ['next.inc.get (singular get, as Next calls it)', (r) => sum(r, (n) => n === 'next.inc.get')],
  ['  fleetcache singular get', (r) => sum(r, (n) => n === 'fc.inc.get')],
  ['uc.refreshTags', (r) => sum(r, (n) => n === 'uc.refreshTags')],
  ['uc.get', (r) => sum(r, (n) => n === 'uc.get')],
  ['uc.getExpiration', (r) => sum(r, (n) => n === 'uc.getExpiration')],
  ['fleetcache: waiting for tag refreshes (summed)', (r) => sum(r, (n) => n === 'fc.tags.refresh')],
  ['fleetcache: Redis commands (summed)', (r) => sum(r, (n) => n.startsWith('redis '))],
  ['fleetcache: Redis commands (count)', (r) => sum(r, (n) => n.startsWith('redis '), 'n')],
  ['  of which tag pulls (count)', (r) => sum(r, (n) => n === 'fc.tags.pull', 'n')],
  ['fleetcache: GET reply bytes', (r) => sum(r, (n) => n === 'redis GET', 'bytes')],
  ['fleetcache: decodeValue', (r) => sum(r, (n) => n === 'fc.decode')],
  ['fleetcache: wasm calls (summed)', (r) => sum(r, (n) => n.startsWith('wasm.'))],
]

function sum(r, pick, field = 'ms') {
  let t = 0
  for (const [name, c] of r.calls) if (pick(name)) t += c[field]
  return t
}

// ---- Redis's own count ---------------------------------------------------------------------

function parseInfo(text) {
  const out = {}
  for (const line of String(text).split('\r\n')) {
    const i = line.indexOf(':')
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

async function redisWindow(redis, run) {
  await redis.command('CONFIG', 'RESETSTAT')
  const t0 = Date.now()
  const n = await run()
  const ms = Date.now() - t0
  const stats = parseInfo(await redis.command('INFO', 'stats'))
  const cmds = parseInfo(await redis.command('INFO', 'commandstats'))
  const calls = {}
  const usec = {}
  for (const [k, v] of Object.entries(cmds)) {
    const m = /^cmdstat_(.+)$/.exec(k)
    const c = /calls=(\d+)/.exec(v)
    const u = /usec_per_call=([\d.]+)/.exec(v)
    if (!m || !c || /^(info|config\|resetstat)$/.test(m[1])) continue
    calls[m[1]] = Number(c[1])
    if (u) usec[m[1]] = Number(u[1])
  }
  return {
    n,
    ms,
    calls,
    usec,
    netIn: Number(stats.total_net_input_bytes),
    netOut: Number(stats.total_net_output_bytes),
  }
}

// Per request: a window's counts less the idle window's, scaled to the window's length.
function perRequest(w, idle) {
  const scale = w.ms / idle.ms
  const calls = {}
  for (const [k, v] of Object.entries(w.calls)) {
    const x = (v - (idle.calls[k] ?? 0) * scale) / w.n
    if (x > 0.005) calls[k] = x
  }
  return {
    calls,
    usec: w.usec,
    netIn: (w.netIn - idle.netIn * scale) / w.n,
    netOut: (w.netOut - idle.netOut * scale) / w.n,
  }
}

// ---- CPU profiles ----------------------------------------------------------------------------

function where(frame) {
  const { url, functionName } = frame
  if (!url) return functionName.startsWith('(') ? functionName : 'native/builtin'
  if (url.startsWith('wasm://')) return 'fleetcache wasm'
  if (/[\\/]node_modules[\\/]fleetcache[\\/]/.test(url)) return 'fleetcache js'
  if (/[\\/]node_modules[\\/]next[\\/]dist[\\/]compiled[\\/]/.test(url))
    return 'next compiled (react, runtime)'
  if (/[\\/]node_modules[\\/]next[\\/]/.test(url)) return 'next server'
  if (/[\\/]node_modules[\\/]@?redis/.test(url)) return 'node-redis'
  if (url.startsWith('node:')) return 'node core'
  if (/[\\/]\.next(-default|-floor)?[\\/]/.test(url)) return 'app build output'
  if (/[\\/]\.fleetcache-floor[\\/]/.test(url)) return "floor's handlers"
  return 'other'
}

// Self time (ms) per place and per fleetcache function, and time with a fleetcache frame on the
// stack, from a .cpuprofile.
function analyzeProfile(profile, requests) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000)
  }
  const places = new Map()
  const fns = new Map()
  let fleetcacheInclusive = 0
  let busy = 0
  for (const [id, ms] of self) {
    const node = byId.get(id)
    const place = where(node.callFrame)
    places.set(place, (places.get(place) ?? 0) + ms)
    if (place !== '(idle)' && place !== '(program)') busy += ms
    if (place.startsWith('fleetcache')) {
      const { functionName, url, lineNumber } = node.callFrame
      const short = url.startsWith('wasm://') ? 'wasm' : path.basename(url)
      const key = `${functionName || '(anonymous)'} ${short}:${String(lineNumber + 1)}`
      fns.set(key, (fns.get(key) ?? 0) + ms)
    }
    // Inclusive: any frame of this stack in fleetcache.
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      if (where(byId.get(cur).callFrame).startsWith('fleetcache')) {
        fleetcacheInclusive += ms
        break
      }
    }
  }
  const per = (ms) => ms / requests
  return {
    requests,
    busyPerRequest: per(busy),
    fleetcacheInclusivePerRequest: per(fleetcacheInclusive),
    places: [...places].map(([k, ms]) => [k, per(ms)]).sort((a, b) => b[1] - a[1]),
    fns: [...fns].map(([k, ms]) => [k, per(ms)]),
  }
}

// One variant's profiles (analyzeProfile of each of its instances) as one: per request, the
// mean over its instances; the top 15 fleetcache functions.
function mergeProfiles(list) {
  const meanOf = (pick) => mean(list.map(pick))
  const merged = (pick) => {
    const m = new Map()
    for (const prof of list) for (const [k, v] of pick(prof)) m.set(k, (m.get(k) ?? 0) + v)
    return [...m].map(([k, v]) => [k, v / list.length]).sort((a, b) => b[1] - a[1])
  }
  return {
    requests: list.reduce((a, prof) => a + prof.requests, 0),
    busyPerRequest: meanOf((prof) => prof.busyPerRequest),
    fleetcacheInclusivePerRequest: meanOf((prof) => prof.fleetcacheInclusivePerRequest),
    places: merged((prof) => prof.places),
    top: merged((prof) => prof.fns).slice(0, 15),
  }
}

// ---- main ----------------------------------------------------------------------------------

async function main() {
  const logDir = makeLogDir('fleetcache-page-cost-')
  progress(`logs in ${logDir}`)
  const fleet = []
  let redis
  let origin
  try {
    const loadAtStart = os.loadavg()[0]
    // Which build the fleetcache instances run: the one prepareApp installs.
    const tarball = findTarball()
    const tarballSha = createHash('sha256').update(fs.readFileSync(tarball)).digest('hex')
    await prepareApp({ log: progress, logDir })
    await prepareDefaultCache({ log: progress, logDir })
    await prepareFloor({ log: progress, logDir })
    redis = await startRedis({ logDir })
    origin = await startOrigin()
    progress(`redis ${redis.url} (pid ${String(redis.pid)}), origin ${origin.url}`)
    const redisVersion = parseInfo(await redis.command('INFO', 'server')).redis_version
    const nextVersion = JSON.parse(
      fs.readFileSync(path.join(appDir, 'node_modules', 'next', 'package.json'), 'utf8'),
    ).version
    const order = startOrder(
      INSTANCE_LIST,
      'PAGECOST_SHUFFLE',
      process.env.PAGECOST_SHUFFLE,
      (x) => x.name,
    )
    for (const { variant: v, k, name } of order.order) {
      const probePort = await freePort()
      const inst = await startInstance({
        name,
        env: {
          ORIGIN_URL: origin.url,
          ...v.env(redis),
          NODE_OPTIONS: `--require ${PROBE}`,
          PAGECOST_PROBE_PORT: String(probePort),
        },
        logDir,
        startTimeoutMs: 90_000,
      })
      inst.probePort = probePort
      inst.variant = v.key
      inst.k = k
      fleet.push(inst)
      progress(`${name}: ${inst.url} (pid ${String(inst.pid)})`)
    }
    for (const inst of fleet) for (let i = 0; i < WARM; i++) await request(inst)
    const originTotal = () => Object.values(origin.stats().calls).reduce((a, b) => a + b, 0)
    const originBefore = originTotal()

    // 1. Latency, nothing recorded.
    progress(`latency: ${String(ROUNDS)} rounds`)
    const lat = pooled(await interleaved(fleet, ROUNDS), fleet)

    // 2. Breakdown, recording.
    progress(`breakdown: ${String(ROUNDS)} rounds, recording`)
    for (const inst of fleet) await probe(inst, '/record?on=1', 'POST')
    for (const inst of fleet) await probe(inst, '/events', 'GET')
    const recOf = await interleaved(fleet, ROUNDS)
    const rec = pooled(recOf, fleet)
    for (const inst of fleet) await probe(inst, '/record?on=0', 'POST')
    const attributedOf = {}
    for (const inst of fleet) {
      const events = await probe(inst, '/events', 'GET')
      attributedOf[inst.name] = attribute(recOf[inst.name], events)
    }
    const attributed = pooled(attributedOf, fleet)
    // What runs on one instance of a variant: its first.
    const firstOf = (key) => fleet.find((i) => i.variant === key && i.k === 0)

    // The page's value as fleetcache stored it, decoded again in the server between requests.
    const decodeBench = {}
    for (const key of FLEETCACHE)
      decodeBench[key] = await probe(firstOf(key), '/decode-bench', 'GET')

    // 3. Redis's own count.
    progress(`redis counts: ${String(SOLO)} requests per fleetcache variant, and an idle window`)
    const windows = {}
    for (const key of FLEETCACHE)
      windows[key] = await redisWindow(redis, async () => (await solo(firstOf(key), SOLO)).length)
    const idleMs = Math.max(...Object.values(windows).map((w) => w.ms))
    const idle = await redisWindow(redis, async () => {
      await new Promise((resolve) => setTimeout(resolve, idleMs))
      return 0
    })
    const redisPer = Object.fromEntries(
      Object.entries(windows).map(([k, w]) => [k, perRequest(w, idle)]),
    )

    // 4. CPU profiles, all four at once over interleaved rounds: the profiler's overhead and
    // the machine's load fall on them alike.
    progress(`cpu profiles: ${String(SOLO)} rounds`)
    for (const inst of fleet) await probe(inst, '/profile/start', 'POST')
    const profiledOf = await interleaved(fleet, SOLO)
    const profiled = pooled(profiledOf, fleet)
    const profilesOf = {}
    for (const inst of fleet) {
      const file = path.join(logDir, `${inst.name}.cpuprofile`)
      await probe(inst, `/profile/stop?out=${encodeURIComponent(file)}`, 'POST')
      profilesOf[inst.name] = analyzeProfile(
        JSON.parse(fs.readFileSync(file, 'utf8')),
        profiledOf[inst.name].length,
      )
    }
    const profiles = Object.fromEntries(
      VARIANTS.map((v) => [
        v.key,
        mergeProfiles(fleet.filter((i) => i.variant === v.key).map((i) => profilesOf[i.name])),
      ]),
    )
    const originCalls = originTotal() - originBefore

    // ---- report ----
    const lines = []
    const say = (s = '') => lines.push(s)
    say(`## ${new Date().toISOString()} — ${PAGE}`)
    say()
    say(
      `Machine: ${String(os.cpus().length)} × ${os.cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, Next ${nextVersion}, redis-server ${redisVersion}; load average ${loadAtStart.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end (the cores are shared: absolute times move with the load, the interleaved differences much less).`,
    )
    say(
      `Method: \`node bench/page-cost.mjs\` (PAGECOST_ROUNDS=${String(ROUNDS)}, PAGECOST_SOLO=${String(SOLO)}, PAGECOST_INSTANCES=${String(INSTANCES)}${process.env.PAGECOST_PROBE_WRAPS === '2' ? ', PAGECOST_PROBE_WRAPS=2: every probe wrapper doubled, the inner one recorded as "(inner)"' : ''}). fleetcache from ${path.basename(tarball)} (sha256 ${tarballSha.slice(0, 12)}; FLEETCACHE_TARBALL chooses another build, so that runs of two builds can alternate). ${String(INSTANCES)} \`next start\` instance${INSTANCES > 1 ? 's' : ''} of examples/next-app per variant${INSTANCES > 1 ? " (each variant's numbers pool its instances' requests, its k-th instance paired with the others' k-th in each round; Redis's count and decodeValue from its first; CPU profiles averaged over its instances)" : ''}, ${order.how}. The variants: pull (fleetcache, default tag sync), push (fleetcache, FLEETCACHE_TAG_SYNC=push), floor (the app built with the least custom handlers there can be, a Map in the process for \`cacheHandler\` and \`cacheHandlers\`, bench/lib/floor-*.cjs, configured as fleetcache's are: what any custom handler pays on Next's custom-handler path), default (the app built without fleetcache); each instance warmed with ${String(WARM)} requests, then asked for the page one request at a time, one instance after the other, the order rotating every round (from the start order). Client: Node's fetch (it asks for gzip, as browsers do). Origin calls during the measurement: ${String(originCalls)} (0: every request was a cache hit).`,
    )
    say()
    const ms = (k, set) => set[k].map((r) => r.ms)
    const latRows = []
    for (const [label, set] of [
      ['latency, nothing recorded', lat],
      ['breakdown pass, recording', rec],
      ['profiled pass', profiled],
    ]) {
      const d = ms('default', set)
      for (const { key } of VARIANTS) {
        const x = ms(key, set)
        const other = key !== 'default'
        const ci = other ? bootstrapDiff(x, d) : undefined
        latRows.push([
          label,
          key,
          String(x.length),
          f2(p(x, 10)),
          f2(p(x, 50)),
          f2(p(x, 90)),
          other ? f2(p(x, 10) - p(d, 10)) : '',
          other ? `${f2(p(x, 50) - p(d, 50))} (${f2(ci[0])} to ${f2(ci[1])})` : '',
          other ? f2(p(x, 90) - p(d, 90)) : '',
          other
            ? f2(
                p(
                  x.map((v, i) => v - d[i]).filter((v) => !Number.isNaN(v)),
                  50,
                ),
              )
            : '',
        ])
      }
    }
    say('### Latency (client side, ms)')
    say()
    say(
      table(
        [
          'pass',
          'variant',
          'requests',
          'p10',
          'p50',
          'p90',
          'p10 − default',
          'p50 − default (95% bootstrap)',
          'p90 − default',
          'median of paired differences (same round)',
        ],
        latRows,
      ),
    )
    say()
    // The pairs the target is read from: each against Next's own cache, the floor against it
    // (Next's custom-handler path by itself), and fleetcache against the floor (its own part).
    const PAIRS = [
      ['pull', 'default'],
      ['push', 'default'],
      ['floor', 'default'],
      ['pull', 'floor'],
      ['push', 'floor'],
    ]
    const diffRows = []
    for (const [label, set] of [
      ['latency, nothing recorded', lat],
      ['breakdown pass, recording', rec],
      ['profiled pass', profiled],
    ]) {
      for (const [a, b] of PAIRS) {
        const x = ms(a, set)
        const y = ms(b, set)
        const ci = bootstrapDiff(x, y)
        diffRows.push([
          label,
          `${a} − ${b}`,
          f2(p(x, 10) - p(y, 10)),
          `${f2(p(x, 50) - p(y, 50))} (${f2(ci[0])} to ${f2(ci[1])})`,
          f2(p(x, 90) - p(y, 90)),
          f2(
            p(
              x.map((v, i) => v - y[i]).filter((v) => !Number.isNaN(v)),
              50,
            ),
          ),
        ])
      }
    }
    say("### Differences (client side, ms): against Next's own cache and against the floor")
    say()
    say(
      '"floor − default" is what the custom-handler path costs by itself (any `cacheHandler`, whatever it does); "pull − floor" and "push − floor" are the part that is fleetcache\'s own.',
    )
    say()
    say(
      table(
        [
          'pass',
          'difference',
          'p10',
          'p50 (95% bootstrap)',
          'p90',
          'median of paired differences (same round)',
        ],
        diffRows,
      ),
    )
    say()
    say('### Summary: per request, p50 over the breakdown pass (ms unless named otherwise)')
    say()
    const names = VARIANTS.map((v) => v.key)
    say(
      table(
        [
          'component',
          ...names,
          ...names.filter((n) => n !== 'default').map((n) => `${n} − default`),
          ...FLEETCACHE.map((n) => `${n} − floor`),
        ],
        COMPONENTS.map(([label, get]) => {
          const v = Object.fromEntries(names.map((n) => [n, p(attributed[n].map(get), 50)]))
          return [
            label,
            ...names.map((n) => f3(v[n])),
            ...names.filter((n) => n !== 'default').map((n) => f3(v[n] - v.default)),
            ...FLEETCACHE.map((n) => f3(v[n] - v.floor)),
          ]
        }),
      ),
    )
    say()
    say(
      `decodeValue of the page's stored value alone (the probe decodes the last value again, 60,000 times, in the server between requests): ${Object.entries(
        decodeBench,
      )
        .map(
          ([k, d]) =>
            `${k} p50 ${f2(d.p50 / 1000)} µs, p10 ${f2(d.p10 / 1000)} µs (JSON part ${String(d.jsonBytes)} bytes of ${String(d.partBytes)})`,
        )
        .join('; ')}.`,
    )
    say()
    say('### Per request, by call (breakdown pass; p50 and mean per request of the summed time)')
    for (const name of names) {
      const att = attributed[name]
      say()
      say(`#### ${name}`)
      say()
      const rows = breakdownRows(att).map((r) => [
        r.name,
        f3(r.p50),
        f3(r.mean),
        r.calls.toFixed(2),
        r.bytes ? r.bytes.toFixed(0) : '',
      ])
      const total = att.map((r) => r.ms)
      const inCaches = att.map((r) => r.inCaches)
      const outside = att.map((r) => r.ms - r.inCaches)
      rows.push(['(request, client side)', f3(p(total, 50)), f3(mean(total)), '1', ''])
      rows.push([
        '(inside next.inc.get or uc.*, union)',
        f3(p(inCaches, 50)),
        f3(mean(inCaches)),
        '',
        '',
      ])
      rows.push(['(outside the cache calls)', f3(p(outside, 50)), f3(mean(outside)), '', ''])
      say(table(['call', 'ms p50', 'ms mean', 'calls', 'reply bytes'], rows))
    }
    say()
    say(
      `### Redis's count per request (${String(SOLO)} requests to one instance, less an idle window; µs: Redis's own time per call)`,
    )
    say()
    say(
      table(
        ['variant', 'commands', 'bytes in (to Redis)', 'bytes out (from Redis)'],
        Object.entries(redisPer).map(([k, r]) => [
          k,
          Object.entries(r.calls)
            .map(([c, n]) => `${c} ${n.toFixed(2)} (${String(r.usec[c] ?? '-')} µs)`)
            .join(', '),
          r.netIn.toFixed(0),
          r.netOut.toFixed(0),
        ]),
      ),
    )
    say()
    say(`### CPU profiles (${String(SOLO)} interleaved rounds; ms per request)`)
    say()
    const placeNames = [
      ...new Set(Object.values(profiles).flatMap((prof) => prof.places.map(([k]) => k))),
    ]
    const placeOf = (name, k) => profiles[name].places.find(([x]) => x === k)?.[1] ?? 0
    const others = names.filter((n) => n !== 'default')
    say(
      table(
        [
          'self time in',
          ...names,
          ...others.map((n) => `${n} − default`),
          ...FLEETCACHE.map((n) => `${n} − floor`),
        ],
        [
          ...placeNames.map((k) => [
            k,
            ...names.map((n) => f3(placeOf(n, k))),
            ...others.map((n) => f3(placeOf(n, k) - placeOf('default', k))),
            ...FLEETCACHE.map((n) => f3(placeOf(n, k) - placeOf('floor', k))),
          ]),
          [
            '(busy: all but idle and program)',
            ...names.map((n) => f3(profiles[n].busyPerRequest)),
            ...others.map((n) => f3(profiles[n].busyPerRequest - profiles.default.busyPerRequest)),
            ...FLEETCACHE.map((n) =>
              f3(profiles[n].busyPerRequest - profiles.floor.busyPerRequest),
            ),
          ],
          [
            '(a fleetcache frame on the stack)',
            ...names.map((n) => f3(profiles[n].fleetcacheInclusivePerRequest)),
            ...others.map(() => ''),
            ...FLEETCACHE.map(() => ''),
          ],
        ],
      ),
    )
    for (const n of FLEETCACHE) {
      say()
      say(`#### ${n}: top fleetcache functions by self time`)
      say()
      say(
        table(
          ['function', 'ms per request'],
          profiles[n].top.map(([k, v]) => [k, f3(v)]),
        ),
      )
    }
    const report = lines.join('\n')
    console.log(report)
    fs.writeFileSync(path.join(logDir, 'report.md'), report + '\n')
    prependPageCostReport(report)
    progress(`section added to ${path.relative(process.cwd(), PAGE_COST_REPORT)}`)
    fs.writeFileSync(
      path.join(logDir, 'raw.json'),
      JSON.stringify(
        {
          order: order.order.map((x) => x.name),
          lat,
          rec,
          profiled,
          decodeBench,
          redisPer,
          windows,
          idle,
          profiles,
          profilesOf,
        },
        null,
        1,
      ),
    )
    progress(`report and raw numbers in ${logDir}`)
  } finally {
    await Promise.allSettled(fleet.map((i) => i.stop()))
    await origin?.close()
    await redis?.stop()
  }
}

await main()
