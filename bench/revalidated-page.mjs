// What each request costs while an instance goes from the old page to the revalidated one, for
// fleetcache (tagSync pull and push), Next's default per-process cache and, on request, the
// published peers: the fleet benchmark's probe (bench/fleet.mjs, "Where the time until an
// instance shows the revalidated page goes") without the plan's load around it, repeated.
//
// Started here, on 127.0.0.1, stopped by their PIDs at the end (also on errors and Ctrl-C): one
// redis-server, the counting origin (tests/support/origin.mjs) and, per cache, RP_INSTANCES
// `next start` instances (A, B[, C]) of examples/next-app, built if needed the way
// bench/fleet.mjs builds them (tests/support/fleet.mjs prepareApp / prepareDefaultCache, the
// fleetcache package from the newest js-host/fleetcache-*.tgz: `make pack`; the peers by
// bench/lib/peers.mjs).
//
// The probe is bench/fleet.mjs's: `/products?list=probe`, a dynamic page whose data is
// getProducts('probe') ('use cache', tag 'products', revalidate 3600 s; examples/next-app/lib/
// data.ts), read from the origin key `products-probe`. Each round, per cache (the caches take
// turns, the order rotating by round): the origin data changes, `revalidateTag('products',
// 'max')` on A, then the polled instance (B, or every instance with RP_POLL=all; A alone for
// Next's default cache, which the others never hear of) is asked for the page one request at a
// time, RP_POLL_MS apart, until it shows the new data (at most MAX_POLLS requests), then AFTER
// more times (plain hits, for comparison). Printed per cache: medians and quartiles (over
// rounds × polled instances) of the first request (the old page, served stale), the request
// that showed the new page and the hits after, and the origin calls per round.
//
// Knobs: RP_ROUNDS (default 12, at most 100); RP_CACHES (default fleetcache,push,default; also
// peer-leejpsd and peer-trieb); RP_POLL_MS (20); RP_INSTANCES (2 or 3, default 2); RP_POLL=all;
// RP_TRACE=1: each fleetcache instance records its handler calls (bench/lib/handler-trace.cjs)
// and runs with FLEETCACHE_DEBUG=1, Redis is watched with MONITOR (redis-cli, stopped by PID),
// each round's requests are printed with the handler calls and Redis commands that fell within
// them, and the new-page requests are split by whether the instance regenerated the entry
// itself; RP_CPU_PROF=<dir>: the instances run with --cpu-prof into <dir>/<cache>;
// RP_NODE_OPTIONS: more NODE_OPTIONS for the instances (another preload); RP_LIMIT_S (600): no
// round starts after that many seconds.
//
//   node bench/revalidated-page.mjs
//   RP_TRACE=1 RP_ROUNDS=15 RP_INSTANCES=3 RP_POLL=all node bench/revalidated-page.mjs
import { spawn } from 'node:child_process'
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
  startFleet,
} from '../tests/support/fleet.mjs'
import { startOrigin } from '../tests/support/origin.mjs'
import { startRedis } from '../tests/support/redis.mjs'
import { sleep, stopChild, trackChild } from '../tests/support/util.mjs'
import { PEERS, preparePeerApp } from './lib/peers.mjs'
import { pct } from './lib/stats.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const ROUNDS = Math.min(100, Number(process.env.RP_ROUNDS ?? 12))
const CACHES = (process.env.RP_CACHES ?? 'fleetcache,push,default').split(',')
const POLL_MS = Number(process.env.RP_POLL_MS ?? 20)
const TRACE = process.env.RP_TRACE === '1'
const CPU_PROF = process.env.RP_CPU_PROF
const LIMIT_MS = Number(process.env.RP_LIMIT_S ?? 600) * 1000
const MAX_POLLS = 40
const AFTER = 3
const INSTANCES = Math.min(3, Math.max(2, Number(process.env.RP_INSTANCES ?? 2)))
const POLL_ALL = process.env.RP_POLL === 'all'
const PROBE = '/products?list=probe'
const ORIGIN_KEY = 'products-probe'
const at = () => performance.timeOrigin + performance.now()
const log = (msg) =>
  console.log(`[revalidated-page ${new Date().toISOString().slice(11, 19)}] ${msg}`)

const ENV = {
  fleetcache: (redis) => ({ REDIS_URL: redis.url, FLEETCACHE_PREFIX: 'rp-pull' }),
  push: (redis) => ({
    REDIS_URL: redis.url,
    FLEETCACHE_PREFIX: 'rp-push',
    FLEETCACHE_TAG_SYNC: 'push',
  }),
  default: () => DEFAULT_CACHE_ENV,
}
// The published peers of bench/fleet.mjs (bench/peers/README.md), as `peer-<id>`.
const peerOf = (c) => PEERS.find((p) => `peer-${p.id}` === c)
for (const p of PEERS) ENV[`peer-${p.id}`] = (redis) => ({ REDIS_URL: redis.url, ...p.env })
for (const c of CACHES) if (!ENV[c]) throw new Error(`RP_CACHES: unknown cache ${c}`)

async function page(inst) {
  const sent = at()
  const res = await fetch(inst.url + PROBE, { signal: AbortSignal.timeout(10_000) })
  const data = res.status === 200 ? parseDataElement(await res.text()) : null
  if (!data || data.error) throw new Error(`${inst.name} ${PROBE}: HTTP ${String(res.status)}`)
  return { sent, ms: at() - sent, version: data.version }
}

// One round on one cache: per polled instance, its requests ({ sent, ms, fresh, after }) and
// the origin calls of the round. With RP_POLL=all every instance is polled at once, as
// bench/fleet.mjs does.
async function round(c, fleet, origin) {
  const want = origin.bump(ORIGIN_KEY)
  const calls0 = origin.calls(ORIGIN_KEY)
  await fleet[0].call('/api/revalidate?tag=products&profile=max')
  const revalidated = at()
  const polled = c === 'default' ? [fleet[0]] : POLL_ALL ? fleet : [fleet[1]]
  const out = await Promise.all(
    polled.map(async (inst) => {
      const requests = []
      let fresh = false
      for (let n = 0; n < MAX_POLLS && !fresh; n++) {
        const r = await page(inst)
        fresh = r.version >= want
        requests.push({ ...r, fresh, after: false })
        if (!fresh) await sleep(POLL_MS)
      }
      for (let n = 0; fresh && n < AFTER; n++) {
        await sleep(POLL_MS)
        requests.push({ ...(await page(inst)), fresh: true, after: true })
      }
      return { revalidated, polled: inst.name, fresh, requests }
    }),
  )
  await sleep(300) // a regeneration started by the last requests lands
  const originCalls = origin.calls(ORIGIN_KEY) - calls0
  return out.map((r) => ({ ...r, originCalls }))
}

// Redis MONITOR through redis-cli, into a file: `<epoch s.us> [db addr] "CMD" ...` per command.
function startMonitor(redis, file) {
  const out = fs.openSync(file, 'a')
  const port = new URL(redis.url).port
  const child = trackChild(
    spawn('redis-cli', ['-h', '127.0.0.1', '-p', port, 'monitor'], {
      stdio: ['ignore', out, out],
    }),
  )
  fs.closeSync(out)
  return child
}

function readMonitor(file) {
  if (!fs.existsSync(file)) return []
  const cmds = []
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^(\d+\.\d+) \[\d+ ([^\]]+)\] "([^"]+)"(.*)$/.exec(line)
    if (m) cmds.push({ at: Number(m[1]) * 1000, client: m[2], cmd: m[3], rest: m[4].slice(0, 80) })
  }
  return cmds
}

function readTraces(dir, name) {
  const calls = []
  for (const f of fs.readdirSync(dir)) {
    if (!f.startsWith(`${name}-`) || !f.endsWith('.jsonl')) continue
    // (sorted below: several files may hold one instance's records)
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n'))
      if (line) calls.push(JSON.parse(line))
  }
  return calls.sort((a, b) => a.start - b.start)
}

// Per request of a traced round: the handler calls that started within it and the Redis
// commands sent meanwhile by the polled instance's connections (those of the calls' window).
function printTrace(c, r, traceDir, monitorFile) {
  const calls = readTraces(traceDir, r.polled)
  const cmds = readMonitor(monitorFile)
  // Whether this instance regenerated the entry (its 'use cache' set ran in the round), and
  // what the 'use cache' get of the request that showed the new page took.
  // (No records: not fleetcache, nothing to tell.)
  const last = r.requests[r.requests.length - 1]
  r.regenerated =
    calls.length === 0
      ? undefined
      : calls.some(
          (k) =>
            k.iface === 'uc' &&
            k.call === 'set' &&
            k.start >= r.revalidated &&
            k.start < last.sent + last.ms,
        )
  const shown = r.requests.find((q) => q.fresh && !q.after)
  if (shown)
    r.newPageGetMs = calls.find(
      (k) =>
        k.iface === 'uc' &&
        k.call === 'get' &&
        k.start >= shown.sent &&
        k.start < shown.sent + shown.ms,
    )?.ms
  const fmt = (x) => (x - r.revalidated).toFixed(1)
  console.log(`  ${c} round, polled ${r.polled}, times in ms after the revalidation's reply`)
  for (const q of r.requests) {
    const end = q.sent + q.ms
    console.log(
      `   request ${fmt(q.sent)}+${q.ms.toFixed(1)} ${q.after ? 'hit after' : q.fresh ? 'NEW' : 'old'}`,
    )
    for (const k of calls.filter((k) => k.start >= q.sent && k.start < end)) {
      const { iface, call, start, ms, ...rest } = k
      console.log(`     ${fmt(start)}+${ms.toFixed(2)} ${iface}.${call} ${JSON.stringify(rest)}`)
    }
    const inWindow = cmds.filter((m) => m.at >= q.sent && m.at < end)
    const byClient = new Map()
    for (const m of inWindow) byClient.set(m.client, [...(byClient.get(m.client) ?? []), m])
    for (const [client, ms] of byClient)
      console.log(
        `     redis ${client}: ${ms.map((m) => `${fmt(m.at)} ${m.cmd}${m.cmd === 'EVALSHA' || m.cmd === 'FCALL' ? m.rest.slice(0, 30) : ''}`).join(', ')}`,
      )
  }
}

function summary(c, rounds) {
  const pick = (f) =>
    rounds.flatMap((r) => r.requests.filter(f).map((q) => q.ms)).sort((a, b) => a - b)
  const q = (xs) =>
    xs.length
      ? `${pct(xs, 50).toFixed(1)} (${pct(xs, 25).toFixed(1)}–${pct(xs, 75).toFixed(1)}, n ${String(xs.length)})`
      : '-'
  const first = rounds
    .map((r) => r.requests[0])
    .filter((x) => !x.fresh)
    .map((x) => x.ms)
    .sort((a, b) => a - b)
  const newPage = rounds
    .map((r) => r.requests.find((x) => x.fresh && !x.after))
    .filter((x, i) => x && rounds[i].requests[0] !== x)
    .map((x) => x.ms)
    .sort((a, b) => a - b)
  const calls = rounds.map((r) => r.originCalls).sort((a, b) => a - b)
  const polls = rounds.map((r) => r.requests.filter((x) => !x.after).length).sort((a, b) => a - b)
  return [
    c,
    `${String(rounds.filter((r) => r.fresh).length)}/${String(rounds.length)}`,
    String(pct(polls, 50)),
    q(first),
    q(newPage),
    q(pick((x) => x.after)),
    `${String(pct(calls, 50))} (${String(calls[0])}–${String(calls[calls.length - 1])})`,
  ]
}

async function main() {
  const started = at()
  const logDir = makeLogDir('fleetcache-revalidated-page-')
  const traceDir = path.join(logDir, 'trace')
  fs.mkdirSync(traceDir)
  log(
    `logs in ${logDir}; load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  )
  const fleets = []
  let redis
  let origin
  let monitor
  try {
    if (CACHES.some((c) => c !== 'default')) {
      const app = await prepareApp({ log, logDir })
      log(`fleetcache build ${app.buildId}`)
    }
    if (CACHES.includes('default')) {
      const b = await prepareDefaultCache({ log, logDir })
      log(`default-cache build ${b.buildId}`)
    }
    const dirs = new Map()
    for (const c of CACHES.filter(peerOf))
      dirs.set(c, (await preparePeerApp(peerOf(c), { log, logDir })).dir)
    redis = await startRedis({ logDir })
    // A peer's Redis setting (trieb's keyspace notifications) stays on for the whole run: it
    // costs the other caches nothing they would notice at one request at a time.
    for (const c of CACHES) {
      const config = peerOf(c)?.redisConfig
      if (config) await redis.command('CONFIG', 'SET', ...config)
    }
    origin = await startOrigin()
    const monitorFile = path.join(logDir, 'monitor.log')
    if (TRACE) monitor = startMonitor(redis, monitorFile)
    for (const c of CACHES) {
      const nodeOptions = [
        ...(TRACE ? [`--require ${path.join(here, 'lib', 'handler-trace.cjs')}`] : []),
        ...(CPU_PROF ? [`--cpu-prof --cpu-prof-dir=${path.resolve(CPU_PROF, c)}`] : []),
        ...(process.env.RP_NODE_OPTIONS ? [process.env.RP_NODE_OPTIONS] : []),
      ]
      const fleet = await startFleet({
        names: ['A', 'B', 'C'].slice(0, INSTANCES).map((n) => `${c}-${n}`),
        env: {
          ORIGIN_URL: origin.url,
          ...ENV[c](redis),
          ...(TRACE ? { FLEETCACHE_DEBUG: '1', RP_TRACE_DIR: traceDir, RP_APP_DIR: appDir } : {}),
          ...(nodeOptions.length ? { NODE_OPTIONS: nodeOptions.join(' ') } : {}),
        },
        logDir,
        startTimeoutMs: 90_000,
        ...(dirs.has(c) ? { appDir: dirs.get(c) } : {}),
      })
      fleets.push(fleet)
      log(`${c}: ${String(INSTANCES)} instances up (pids ${fleet.map((i) => i.pid).join(', ')})`)
      // Load the page's code and cache the probe on both.
      for (const inst of fleet) for (let i = 0; i < 3; i++) await page(inst)
    }
    const results = new Map(CACHES.map((c) => [c, []]))
    for (let n = 0; n < ROUNDS && at() - started < LIMIT_MS; n++) {
      for (let k = 0; k < CACHES.length; k++) {
        const i = (k + n) % CACHES.length
        const polled = await round(CACHES[i], fleets[i], origin)
        results.get(CACHES[i]).push(...polled)
        if (TRACE) {
          await sleep(200) // the trace buffers are written every 50 ms
          for (const r of polled) printTrace(CACHES[i], r, traceDir, monitorFile)
        }
        await sleep(300)
      }
      log(`round ${String(n + 1)}/${String(ROUNDS)} done`)
    }
    const header = [
      'cache',
      'polls (rounds × instances) that showed the new page',
      'requests until then (median)',
      'first request (old page) ms',
      'the new-page request ms',
      `the ${String(AFTER)} hits after ms`,
      'origin calls per round',
    ]
    console.log(
      `\n| ${header.join(' | ')} |\n|---|${header
        .slice(1)
        .map(() => '---:')
        .join('|')}|`,
    )
    for (const c of CACHES) console.log(`| ${summary(c, results.get(c)).join(' | ')} |`)
    console.log(
      `\nms: median (quartiles, n). Load average at the end ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}; took ${((at() - started) / 1000).toFixed(0)} s.`,
    )
    if (TRACE) {
      console.log(
        `\nTraced: the new-page request (after an old one) by whether the instance regenerated the entry itself; its 'use cache' get\n`,
      )
      for (const c of CACHES)
        for (const regenerated of [true, false]) {
          const rs = results
            .get(c)
            .filter((r) => r.regenerated === regenerated && !r.requests[0].fresh && r.fresh)
          if (!rs.length) continue
          const sorted = (xs) => xs.filter((x) => x !== undefined).sort((a, b) => a - b)
          const req = sorted(rs.map((r) => r.requests.find((q) => q.fresh).ms))
          const get = sorted(rs.map((r) => r.newPageGetMs))
          console.log(
            `${c}, ${regenerated ? 'regenerated here' : 'another instance regenerated'}: n ${String(rs.length)}, request ms median ${pct(req, 50).toFixed(1)} (${pct(req, 25).toFixed(1)}–${pct(req, 75).toFixed(1)}), get ms median ${get.length ? pct(get, 50).toFixed(2) : '-'} (${get.length ? `${pct(get, 25).toFixed(2)}–${pct(get, 75).toFixed(2)}` : '-'})`,
          )
        }
    }
    if (!TRACE && !CPU_PROF) fs.rmSync(logDir, { recursive: true, force: true })
  } finally {
    for (const fleet of fleets) await Promise.allSettled(fleet.map((i) => i.stop()))
    if (monitor) await stopChild(monitor, { termTimeoutMs: 2000 })
    if (origin) await origin.close()
    if (redis) await redis.stop()
  }
}

// Ctrl-C: trackChild's exit hook stops every child still running, by PID.
process.once('SIGINT', () => process.exit(130))
process.once('SIGTERM', () => process.exit(143))

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
