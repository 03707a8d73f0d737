// make bench (second part): origin calls during a cold start of three instances, with and
// without leases, and how soon a waiting follower picks up the holder's write (the number
// behind docs/decisions/0009: polling rather than pub/sub), and how soon the waiting requests
// go when the holder's result is not cacheable (it releases its lease without a write).
// Writes bench/COLD-START.md.
//
// Three "instances" are three fleetcache runtimes in this process (each its own engine, tag
// mirror and Redis connection) on one redis-server started here. Each request does what Next
// does with a 'use cache' function: get; on a miss call the origin (a fixed delay) and set;
// concurrent requests for one key in one instance share one fill, as Next's do. Bounded:
// KEYS x REQUESTS requests per instance and per mode.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { startRedis } from '../tests/support/redis.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '..', 'js-host', 'package.json'))
const { createUseCacheHandler, close } = require('./dist/index.js')

const KEYS = Number(process.env.BENCH_COLD_KEYS ?? 20)
const REQUESTS = Number(process.env.BENCH_COLD_REQUESTS ?? 10)
const ORIGIN_MS = Number(process.env.BENCH_ORIGIN_MS ?? 100)
const INSTANCES = 3

const now = () => performance.timeOrigin + performance.now()

function entry(text, expire = 3600) {
  return {
    value: new ReadableStream({
      start(c) {
        c.enqueue(Buffer.from(text))
        c.close()
      },
    }),
    tags: ['cold'],
    stale: 30,
    timestamp: now(),
    expire,
    revalidate: Math.min(3600, expire),
  }
}

const pct = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

async function coldStart(redisUrl, leases, run, uncacheable = false) {
  let originCalls = 0
  const writes = new Map() // key -> time the first write landed
  const pickups = [] // ms from that write to a waiting request's answer
  const releases = new Map() // key -> time the first holder let its lease go without a write
  const releasePickups = [] // ms from that release to a waiting request's miss
  const latencies = []
  const instances = Array.from({ length: INSTANCES }, (_, i) => ({
    h: createUseCacheHandler({
      redisUrl,
      prefix: `cold${String(run)}`,
      deploymentId: 'd',
      leases,
      // A distinct value per instance gives each its own runtime.
      connectTimeoutMs: 1000 + i,
    }),
    fills: new Map(),
  }))
  async function request(inst, key) {
    const t0 = now()
    await inst.h.refreshTags()
    const hit = await inst.h.get(key, [])
    const released = releases.get(key)
    if (hit === undefined && released !== undefined && t0 < released) {
      releasePickups.push(now() - released)
    }
    if (hit !== undefined) {
      const written = writes.get(key)
      if (written !== undefined && t0 < written) pickups.push(now() - written)
    } else {
      let fill = inst.fills.get(key)
      if (fill === undefined) {
        fill = (async () => {
          originCalls += 1
          await sleep(ORIGIN_MS)
          // Not cacheable (expire 0): the holder releases its lease instead of writing.
          await inst.h.set(key, Promise.resolve(entry(`value of ${key}`, uncacheable ? 0 : 3600)))
          const map = uncacheable ? releases : writes
          if (!map.has(key)) map.set(key, now())
        })()
        inst.fills.set(key, fill)
      }
      await fill
    }
    latencies.push(now() - t0)
  }
  const all = []
  for (let k = 0; k < KEYS; k++) {
    for (const inst of instances) {
      for (let r = 0; r < REQUESTS; r++) all.push(request(inst, `key-${String(k)}`))
    }
  }
  await Promise.all(all)
  latencies.sort((a, b) => a - b)
  pickups.sort((a, b) => a - b)
  releasePickups.sort((a, b) => a - b)
  return {
    releaseP50: releasePickups.length ? pct(releasePickups, 50) : NaN,
    releaseMax: releasePickups.length ? releasePickups[releasePickups.length - 1] : NaN,
    released: releasePickups.length,
    originCalls,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    pickupP50: pickups.length ? pct(pickups, 50) : NaN,
    pickupMax: pickups.length ? pickups[pickups.length - 1] : NaN,
    followers: pickups.length,
  }
}

async function main() {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cold-'))
  const redis = await startRedis({ logDir })
  try {
    const off = await coldStart(redis.url, false, 1)
    const on = await coldStart(redis.url, true, 2)
    const rel = await coldStart(redis.url, true, 3, true)
    const f = (n) => (Number.isNaN(n) ? '-' : n.toFixed(1))
    const lines = [
      `## ${new Date().toISOString()} (${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)})`,
      '',
      `Cold start of ${String(INSTANCES)} instances: ${String(KEYS)} keys, ${String(REQUESTS)} concurrent requests per key per instance, origin ${String(ORIGIN_MS)} ms.`,
      '',
      '| leases | origin calls | ideal | request p50 ms | request p99 ms | follower pick-up p50 ms | pick-up max ms |',
      '|---|---|---|---|---|---|---|',
      `| off | ${String(off.originCalls)} | ${String(KEYS)} | ${f(off.p50)} | ${f(off.p99)} | - | - |`,
      `| on | ${String(on.originCalls)} | ${String(KEYS)} | ${f(on.p50)} | ${f(on.p99)} | ${f(on.pickupP50)} | ${f(on.pickupMax)} |`,
      '',
      'Pick-up: from the holder’s write landing to a waiting follower’s answer (polling after a quarter of the time waited, 10 ms to 50 ms).',
      '',
      `Not cacheable (every result stored with \`expire: 0\`, so each holder releases its lease without a write; leases on, \`leaseWaitMs\` 3000): ${String(rel.originCalls)} origin calls; ${String(rel.released)} waiting requests went ${f(rel.releaseP50)} ms after the release at p50, ${f(rel.releaseMax)} ms at most (request p50 ${f(rel.p50)} ms, p99 ${f(rel.p99)} ms).`,
      '',
    ]
    const text = lines.join('\n')
    console.log(text)
    const file = path.join(here, 'COLD-START.md')
    const previous = fs.existsSync(file)
      ? fs.readFileSync(file, 'utf8').replace(/^# .*\n\n/, '')
      : ''
    fs.writeFileSync(
      file,
      `# Cold start: origin calls with and without leases\n\n${text}\n${previous}`,
    )
  } finally {
    await close()
    await redis.stop()
    fs.rmSync(logDir, { recursive: true, force: true })
  }
}

await main()
