// Server-side CPU, event-loop time and GC per cached page request, against the floor: where
// bench/page-cost.mjs finds push's page slower than the floor's outside the cache calls, this
// separates work from waiting. One redis-server, the counting origin and one `next start`
// instance of examples/next-app per variant on loopback, started here and stopped by PID at
// the end (also on errors). Each instance preloads bench/lib/page-cost-probe.cjs, which counts
// per request of the server (GET /cpu): process.cpuUsage (user + system, every thread: GC
// helpers and libuv's too), performance.eventLoopUtilization's active time (the main thread's
// work) and PerformanceObserver 'gc' pauses, at the request's start and at its 'finish'.
//
// Variants (PAGECPU_VARIANTS, comma-separated; default "push,push+aa,push+ab,floor,floor+aa,
// floor+ab": three instances per arm, pooled below): a base, `push`, `pull`,
// `floor` (bench/lib/floor-*.cjs, as page-cost's) or `default`, followed by `+<experiment>`s
// of the probe (PAGECOST_EXPERIMENT, bench/lib/page-cost-probe.cjs: e.g. `push+inc-floor`,
// fleetcache's singular handler answering with the floor's get; `push+alt` and `push+altbase`,
// another build of fleetcache against the installed one loaded the same way: two builds paired
// in one run, PAGECPU_REF=push+altbase). Every variant of a base `push`/`pull` has a Redis
// prefix of its own.
//
// The instances start one after the other in an order shuffled with a seed drawn for the
// run (PAGECPU_SHUFFLE=<seed> repeats one; PAGECPU_SHUFFLE=list keeps the list's order, as
// every run before 2026-12-06): an instance's place in that order changes its cost
// (PAGE-COST.md, runs 12 to 17), so no arm may hold the same places in every run.
// After warming PAGE on every instance, ROUNDS rounds, one request to each instance per round,
// one at a time, the order rotating every round (the shared machine's load falls on all alike).
// Per request, and paired by round against the reference variant (PAGECPU_REF, default floor):
//   client ms        the request's latency at the client
//   CPU in request   process CPU from the request's arrival to its 'finish' (µs)
//   CPU per cycle    process CPU from the request's arrival to the next one's: everything the
//                    process did for it, also after it finished (deferred work, GC) and its
//                    background work (timers, the push subscription) while the others ran
//   loop in request  event-loop active time, arrival to 'finish' (ms)
//   loop per cycle   the same, arrival to the next arrival
//   GC per cycle     GC pauses that began within the cycle (ms)
//   CPU by thread    over the whole rounds, from /proc/<pid>/task/*/stat (utime + stime, 10 ms
//                    ticks) of the process that served them, by thread name (the main thread,
//                    V8's workers: GC and compiler, libuv's): per request of the variant
// Means with 95% bootstrap intervals of the mean paired difference (rounds resampled), and
// medians. `uptime`'s load averages at the start and end.
//
// One process against another differs by itself: two instances of the same build and variant
// differ by up to 0.3 ms per request (an A/A pair, `floor` and `floor+aa`, at load 7 to 11),
// as much as what is looked for. So a variant may be run as several instances: names that
// differ only by a last `+aa`, `+ab`, ... (no experiment of the probe) are one arm, and the
// second table pools them: per round, the arm's instances' mean less the reference arm's, its
// median with a 95% bootstrap interval. By default every arm has three.
//
//   node bench/page-cpu.mjs     (after `make pack`; builds the example when it is not current)
//
// PAGECPU_CALLS=1: the probe records the cache calls during the rounds (its wrappers, as
// page-cost's breakdown pass), each with the process CPU during it; two more measures: CPU in
// the cache calls Next makes (next.inc.get, uc.*; summed) and CPU in the request outside them.
// The wrappers cost a little CPU of their own (a getrusage call per wrapped call among them).
//
// PAGECPU_PROFILE=<n>: after the rounds, n more with V8's sampling profiler on in every
// instance (the probe's /profile), a .cpuprofile per instance in the log directory, for
// bench/profile-diff.mjs (where two arms' CPU differs, by function).
//
// Knobs: PAGECPU_ROUNDS (1000), PAGECPU_WARM (200), PAGECPU_VARIANTS, PAGECPU_REF,
// PAGECPU_SHUFFLE (a seed, or list), PAGECOST_PAGE (/products?list=probe), PAGECPU_NOTE (a
// line put under the section's title).
// Prints the table and puts it on top of bench/PAGE-COST.md; the raw rows go to the log
// directory it names.
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

const ROUNDS = Number(process.env.PAGECPU_ROUNDS ?? 1000)
const PAGE = process.env.PAGECOST_PAGE ?? '/products?list=probe'
const VARIANTS = (process.env.PAGECPU_VARIANTS ?? 'push,push+aa,push+ab,floor,floor+aa,floor+ab')
  .split(',')
  .filter(Boolean)
const REF = process.env.PAGECPU_REF ?? 'floor'
const WARM = Number(process.env.PAGECPU_WARM ?? 200)
const CALLS = process.env.PAGECPU_CALLS === '1'
const PROFILE = Number(process.env.PAGECPU_PROFILE ?? 0)

const progress = (msg) =>
  console.error(`[page-cpu ${new Date().toISOString().slice(11, 19)}] ${msg}`)
const nowMs = () => Number(process.hrtime.bigint()) / 1e6

function envOf(variant, i, redis) {
  const [base, ...experiments] = variant.split('+')
  const exp = experiments.length ? { PAGECOST_EXPERIMENT: experiments.join(',') } : {}
  const fc = { REDIS_URL: redis.url, FLEETCACHE_PREFIX: `pagecpu-${String(i)}` }
  if (base === 'push') return { ...fc, FLEETCACHE_TAG_SYNC: 'push', ...exp }
  if (base === 'pull') return { ...fc, ...exp }
  if (base === 'floor') return { ...FLOOR_ENV, ...exp }
  if (base === 'default') return { ...DEFAULT_CACHE_ENV, ...exp }
  throw new Error(`unknown variant base ${base}`)
}

// CPU time (ms) per thread name of process `pid` so far, summed over threads of one name.
function threadCpu(pid) {
  const out = {}
  const tick = 10 // ms: USER_HZ is 100 on Linux
  for (const tid of fs.readdirSync(`/proc/${String(pid)}/task`)) {
    let stat
    let comm
    try {
      stat = fs.readFileSync(`/proc/${String(pid)}/task/${tid}/stat`, 'utf8')
      comm = fs.readFileSync(`/proc/${String(pid)}/task/${tid}/comm`, 'utf8').trim()
    } catch {
      continue // the thread ended
    }
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const name = comm.replace(/\d+$/, '#')
    out[name] = (out[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) * tick
  }
  return out
}

async function request(inst) {
  const start = nowMs()
  const res = await fetch(inst.url + PAGE, { signal: AbortSignal.timeout(15_000) })
  const text = await res.text()
  const ms = nowMs() - start
  const data = res.status === 200 ? parseDataElement(text) : null
  if (!data || data.error) throw new Error(`${inst.name} ${PAGE}: HTTP ${String(res.status)}`)
  return ms
}

// ---- numbers -------------------------------------------------------------------------------

const sorted = (xs) => [...xs].sort((a, b) => a - b)
const p50 = (xs) => (xs.length ? pct(sorted(xs), 50) : NaN)
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN)
const f = (n, d = 3) => (Number.isNaN(n) ? '-' : n.toFixed(d))

// 95% bootstrap interval of stat(ds), rounds resampled 1000 times.
function bootstrap(ds, stat) {
  const rand = rng(17)
  const out = []
  for (let i = 0; i < 1000; i++) {
    out.push(stat(Array.from(ds, () => ds[Math.floor(rand() * ds.length)])))
  }
  out.sort((a, b) => a - b)
  return [out[25], out[974]]
}

// Per request of one instance: its measures, from the probe's rows and GC pauses.
function perRequest(rows, gcs, clientMs, events) {
  const out = []
  const calls = [...events]
    .filter(([name]) => name === 'next.inc.get' || name.startsWith('uc.'))
    .sort((a, b) => a[1] - b[1])
  let k = 0
  for (let i = 0; i + 1 < rows.length; i++) {
    const [t0, cpu0, loop0, , cpu1, loop1, c0, c1] = rows[i]
    const [tNext, cpuNext, loopNext] = rows[i + 1]
    let gc = 0
    for (const [s, d] of gcs) if (s >= t0 && s < tNext) gc += d
    let inCalls = 0
    while (k < calls.length && calls[k][1] < c0) k++
    for (let j = k; j < calls.length && calls[j][1] <= c1; j++) inCalls += calls[j][4]
    out.push({
      cpuCalls: inCalls,
      cpuOutside: (cpu1 - cpu0) / 1000 - inCalls,
      client: clientMs[i],
      cpuIn: (cpu1 - cpu0) / 1000,
      cpuCycle: (cpuNext - cpu0) / 1000,
      loopIn: loop1 - loop0,
      loopCycle: loopNext - loop0,
      gcCycle: gc,
    })
  }
  return out
}

const MEASURES = [
  ['client ms', 'client'],
  ['CPU in request (ms)', 'cpuIn'],
  ['CPU per cycle (ms)', 'cpuCycle'],
  ['loop active in request (ms)', 'loopIn'],
  ['loop active per cycle (ms)', 'loopCycle'],
  ['GC per cycle (ms)', 'gcCycle'],
  ...(CALLS
    ? [
        ['CPU in cache calls (ms)', 'cpuCalls'],
        ['CPU in request outside cache calls (ms)', 'cpuOutside'],
      ]
    : []),
]

async function main() {
  if (!VARIANTS.includes(REF)) throw new Error(`PAGECPU_REF ${REF} is not among the variants`)
  const logDir = makeLogDir('fleetcache-page-cpu-')
  progress(`logs in ${logDir}`)
  const fleet = []
  let redis
  let origin
  try {
    const loadStart = os.loadavg()
    const tarball = findTarball()
    const tarballSha = createHash('sha256').update(fs.readFileSync(tarball)).digest('hex')
    await prepareApp({ log: progress, logDir })
    await prepareDefaultCache({ log: progress, logDir })
    await prepareFloor({ log: progress, logDir })
    redis = await startRedis({ logDir })
    origin = await startOrigin()
    // The variants with their index in the list (their Redis prefix), in the order they start
    // in and are asked in (PAGECPU_SHUFFLE; the same seed gives the order it gave before it
    // was the default).
    const order = startOrder(
      [...VARIANTS.entries()],
      'PAGECPU_SHUFFLE',
      process.env.PAGECPU_SHUFFLE,
      ([, v]) => v,
    )
    for (const [i, v] of order.order) {
      const probePort = await freePort()
      const inst = await startInstance({
        name: v.replace(/\+/g, '_'),
        env: {
          ORIGIN_URL: origin.url,
          ...envOf(v, i, redis),
          NODE_OPTIONS: `--require ${PROBE}`,
          PAGECOST_PROBE_PORT: String(probePort),
        },
        logDir,
        startTimeoutMs: 90_000,
      })
      inst.variant = v
      inst.probePort = probePort
      fleet.push(inst)
      progress(`${v}: ${inst.url} (pid ${String(inst.pid)})`)
    }
    for (const inst of fleet) for (let i = 0; i < WARM; i++) await request(inst)
    for (const inst of fleet) inst.serverPid = (await probe(inst, '/cpu', 'GET')).pid
    if (CALLS) {
      for (const inst of fleet) await probe(inst, '/record?on=1', 'POST')
      for (const inst of fleet) await probe(inst, '/events', 'GET')
    }
    const originCalls = () => Object.values(origin.stats().calls).reduce((a, b) => a + b, 0)
    const originBefore = originCalls()

    progress(`${String(ROUNDS)} rounds over ${VARIANTS.join(', ')}`)
    const client = Object.fromEntries(VARIANTS.map((v) => [v, []]))
    const threadsBefore = fleet.map((inst) => threadCpu(inst.serverPid))
    const t0 = Date.now()
    for (let r = 0; r < ROUNDS; r++) {
      for (let j = 0; j < fleet.length; j++) {
        const inst = fleet[(r + j) % fleet.length]
        client[inst.variant].push(await request(inst))
      }
      if (r % 250 === 249) progress(`round ${String(r + 1)}`)
    }
    const seconds = (Date.now() - t0) / 1000
    const threads = {}
    for (const [i, inst] of fleet.entries()) {
      const after = threadCpu(inst.serverPid)
      threads[inst.variant] = Object.fromEntries(
        Object.entries(after).map(([k, v]) => [k, (v - (threadsBefore[i][k] ?? 0)) / ROUNDS]),
      )
    }
    // One more request each closes the last round's cycle.
    for (const inst of fleet) await request(inst)
    const raw = {}
    const per = {}
    for (const inst of fleet) {
      const got = await probe(inst, '/cpu', 'GET')
      got.events = CALLS ? await probe(inst, '/events', 'GET') : []
      raw[inst.variant] = got
      if (got.requests.length !== ROUNDS + 1) {
        throw new Error(`${inst.variant}: ${String(got.requests.length)} requests counted`)
      }
      per[inst.variant] = perRequest(got.requests, got.gcs, client[inst.variant], got.events)
    }
    const originDuring = originCalls() - originBefore
    if (PROFILE > 0) {
      // After the counted rounds (their rows are read already): the profiler's overhead falls
      // on no number of the tables, and on every instance alike.
      progress(`cpu profiles: ${String(PROFILE)} rounds`)
      for (const inst of fleet) await probe(inst, '/profile/start', 'POST')
      for (let r = 0; r < PROFILE; r++) {
        for (let j = 0; j < fleet.length; j++) await request(fleet[(r + j) % fleet.length])
      }
      for (const inst of fleet) {
        const file = path.join(logDir, `${inst.name}.cpuprofile`)
        await probe(inst, `/profile/stop?out=${encodeURIComponent(file)}`, 'POST')
      }
      progress(
        `profiles in ${logDir} (${String(PROFILE)} requests each): node bench/profile-diff.mjs`,
      )
    }
    const loadEnd = os.loadavg()

    const ref = per[REF]
    const lines = []
    lines.push(`## ${new Date().toISOString()} — page-cpu: ${PAGE}`, '')
    if (process.env.PAGECPU_NOTE) lines.push(process.env.PAGECPU_NOTE, '')
    lines.push(
      `Machine: ${String(os.cpus().length)} × ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}; load averages (1, 5, 15 min) ${loadStart.map((x) => x.toFixed(2)).join(' ')} at the start, ${loadEnd.map((x) => x.toFixed(2)).join(' ')} at the end (cores shared with other builds: CPU time and paired differences move less than latency).`,
      `Method: \`node bench/page-cpu.mjs\` (PAGECPU_ROUNDS=${String(ROUNDS)}, PAGECPU_VARIANTS=${VARIANTS.join(',')}, PAGECPU_REF=${REF}${CALLS ? ', PAGECPU_CALLS=1' : ''}); fleetcache from ${path.basename(tarball)} (sha256 ${tarballSha.slice(0, 12)}). One \`next start\` per variant, ${order.how}; each warmed with ${String(WARM)} requests, then one request at a time, the order rotating every round (from the start order); ${String(ROUNDS)} rounds in ${seconds.toFixed(0)} s. Server counts from bench/lib/page-cost-probe.cjs (GET /cpu). Origin calls during the rounds: ${String(originDuring)}.`,
      '',
      `| measure | variant | mean | p50 | mean − ${REF} (95% bootstrap) | median of paired differences |`,
      '|---|---|---:|---:|---:|---:|',
    )
    for (const [label, key] of MEASURES) {
      for (const v of VARIANTS) {
        const xs = per[v].map((r) => r[key])
        let diff = ''
        let med = ''
        if (v !== REF) {
          const ds = per[v].map((r, i) => r[key] - ref[i][key])
          const [lo, hi] = bootstrap(ds, mean)
          diff = `${f(mean(ds))} (${f(lo)} to ${f(hi)})`
          med = f(p50(ds))
        }
        lines.push(`| ${label} | ${v} | ${f(mean(xs))} | ${f(p50(xs))} | ${diff} | ${med} |`)
      }
    }
    const armOf = (v) => v.replace(/\+a[a-z]$/, '')
    const arms = new Map()
    for (const v of VARIANTS) arms.set(armOf(v), [...(arms.get(armOf(v)) ?? []), v])
    const refArm = arms.get(armOf(REF))
    if ([...arms.values()].some((vs) => vs.length > 1)) {
      const avg = (vs, i, key) => mean(vs.map((v) => per[v][i][key]))
      lines.push(
        '',
        `Pooled by arm (instances named alike but for a last \`+aa\`, \`+ab\`): per round, the arm's mean less ${armOf(REF)}'s (${String(refArm.length)} instance${refArm.length > 1 ? 's' : ''}).`,
        '',
        `| measure | arm (instances) | median of per-round differences (95% bootstrap) |`,
        '|---|---|---:|',
      )
      for (const [label, key] of MEASURES) {
        for (const [arm, vs] of arms) {
          if (arm === armOf(REF)) continue
          const ds = ref.map((_, i) => avg(vs, i, key) - avg(refArm, i, key))
          const [lo, hi] = bootstrap(ds, p50)
          lines.push(
            `| ${label} | ${arm} (${String(vs.length)}) | ${f(p50(ds))} (${f(lo)} to ${f(hi)}) |`,
          )
        }
      }
    }
    const names = [...new Set(Object.values(threads).flatMap((t) => Object.keys(t)))].sort()
    const armMean = (vs, name) => mean(vs.map((v) => threads[v][name] ?? 0))
    lines.push(
      '',
      `CPU per request by thread (ms; each arm's instances averaged; /proc, 10 ms ticks over the ${String(ROUNDS)} rounds, background work included):`,
      '',
      `| thread | ${[...arms.keys()].join(' | ')} | ${[...arms.keys()]
        .filter((a) => a !== armOf(REF))
        .map((a) => `${a} − ${armOf(REF)}`)
        .join(' | ')} |`,
      `|---|${[...arms.keys(), ...[...arms.keys()].slice(1)].map(() => '---:').join('|')}|`,
    )
    for (const name of [...names, '(all)']) {
      const val = (vs) =>
        name === '(all)' ? names.reduce((a, n) => a + armMean(vs, n), 0) : armMean(vs, name)
      const cells = [...arms.values()].map((vs) => f(val(vs)))
      const diffs = [...arms]
        .filter(([a]) => a !== armOf(REF))
        .map(([, vs]) => f(val(vs) - val(refArm)))
      lines.push(`| ${name} | ${cells.join(' | ')} | ${diffs.join(' | ')} |`)
    }
    const report = lines.join('\n')
    console.log(report)
    fs.writeFileSync(path.join(logDir, 'report.md'), report + '\n')
    fs.writeFileSync(path.join(logDir, 'raw.json'), JSON.stringify({ client, raw, threads }))
    prependPageCostReport(report)
    progress(
      `section added to ${path.relative(process.cwd(), PAGE_COST_REPORT)}; raw rows in ${logDir}`,
    )
  } finally {
    await Promise.allSettled(fleet.map((i) => i.stop()))
    await origin?.close()
    await redis?.stop()
  }
}

await main()
