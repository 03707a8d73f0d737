// Fault injection against real processes: two `next start` instances of
// examples/next-app share one redis-server while this test kills it, pauses it and restarts it
// empty, under a bounded load. It asserts what users of other handlers lost: no 5xx, no request
// hanging on Redis, hits back within seconds of recovery, and a revalidation issued during the
// outage in effect on both instances afterwards.
//
// Only processes this test started are signalled, by PID. Run: node --test tests/faults/
// Env: FLEETCACHE_TARBALL, FAULTS_KEEP_LOGS=1.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { failureReport, tearDown } from '../support/diagnostics.mjs'
import { makeLogDir, prepareApp, startFleet } from '../support/fleet.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis, startRedisOnPort } from '../support/redis.mjs'
import { waitForDataEntry } from '../support/observe.mjs'
import { sleep, waitFor } from '../support/util.mjs'

// fleetcache's default read budget; the instances run with the defaults.
const READ_BUDGET_MS = 300
// Before the breaker opens a request may pay the read budget up to three times: it waits for
// the tag refresh in flight and, if that one succeeded just before Redis stalled, the one after
// it (refreshes are coalesced), then the entry read. Render (origin call, streaming) comes on top: tens of ms on loopback, some hundreds
// under this load. A hang on Redis (a queued command, a connect wait without a budget, a write
// budget on the read path) shows up as more.
const MAX_REQUEST_MS = 3 * READ_BUDGET_MS + 700
// Hits must be back this soon after Redis is (the breaker opens for 1 s at a time by default,
// breakerOpenMs and breakerMaxOpenMs, so a probe comes within a second of Redis's return).
const RECOVERY_MS = 10_000
const OUTAGE_MS = 5000
const WORKERS = 4
const MAX_REQUESTS_PER_PHASE = 4000
// Requests the load must have answered before a fault (and in the baseline), whatever the
// machine's speed.
const WARM_REQUESTS = 40
const KEEP_LOGS = process.env.FAULTS_KEEP_LOGS === '1'

let logDir
let redis
let origin
let A
let B

const report = failureReport(() => ({ logDir, instances: [A, B] }))
const withDiagnostics = report.wrap

// Runs `workers` loops of GETs alternating between A and B until `stop()` or the count bound.
function startLoad(label) {
  const results = []
  let stopped = false
  let n = 0
  const loop = async (w) => {
    while (!stopped && n < MAX_REQUESTS_PER_PHASE) {
      n += 1
      const inst = (n + w) % 2 === 0 ? A : B
      const list = `load-${n % 3}`
      const t0 = Date.now()
      try {
        const res = await inst.request(`/products?list=${list}`, { timeoutMs: 15_000 })
        results.push({ inst: inst.name, status: res.status, ms: res.ms, at: t0 })
      } catch (err) {
        results.push({
          inst: inst.name,
          status: 0,
          ms: Date.now() - t0,
          at: t0,
          error: err.message,
        })
      }
    }
  }
  const done = Promise.all(Array.from({ length: WORKERS }, (_, w) => loop(w)))
  return {
    results,
    // Resolves once `count` requests that started at or after `since` have been answered.
    async until(count, since = 0) {
      await waitFor(
        () => {
          if (results.filter((r) => r.at >= since).length >= count) return true
          if (stopped || n >= MAX_REQUESTS_PER_PHASE) {
            const e = new Error(`${label}: the load ended after ${results.length} requests`)
            e.fatal = true
            throw e
          }
          return false
        },
        {
          timeoutMs: 60_000,
          intervalMs: 25,
          what: `${label}: ${count} requests of the load`,
          stopOn: (e) => e.fatal,
        },
      )
    },
    async stop() {
      stopped = true
      await done
      return summarize(label, results)
    },
  }
}

function summarize(label, results) {
  const ms = results.map((r) => r.ms).sort((a, b) => a - b)
  const pct = (p) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))] ?? 0
  const bad = results.filter((r) => r.status >= 500 || r.status === 0)
  const summary = {
    label,
    requests: results.length,
    errors: bad.length,
    p50: pct(50),
    p99: pct(99),
    max: ms[ms.length - 1] ?? 0,
  }
  process.stderr.write(
    `[faults] ${label}: ${summary.requests} requests, ${summary.errors} 5xx/failed, ` +
      `p50 ${summary.p50} ms, p99 ${summary.p99} ms, max ${summary.max} ms\n`,
  )
  return { ...summary, bad }
}

function assertHealthy(s) {
  assert.ok(s.requests > 20, `${s.label}: the load ran only ${s.requests} requests`)
  assert.equal(
    s.errors,
    0,
    `${s.label}: ${s.errors} requests failed: ${JSON.stringify(s.bad.slice(0, 5))}`,
  )
  assert.ok(
    s.max <= MAX_REQUEST_MS,
    `${s.label}: slowest request ${s.max} ms, bound ${MAX_REQUEST_MS} ms`,
  )
}

// Shared hits are back: a value rendered on one instance is served by the other from Redis.
async function waitForSharedHits(label) {
  const t0 = Date.now()
  let k = 0
  for (;;) {
    k += 1
    const pathname = `/products?list=${label}-probe-${k}`
    const a = await A.getData(pathname)
    // A writes the entry after its response; while Redis is still coming back it may not.
    await waitForDataEntry(redis, `products-${label}-probe-${k}`, { timeoutMs: 1000 }).catch(
      () => {},
    )
    const b = await B.getData(pathname)
    if (a.error === null && b.generatedBy === 'A' && b.generatedAt === a.generatedAt) {
      return Date.now() - t0
    }
    if (Date.now() - t0 > RECOVERY_MS) {
      assert.fail(`${label}: no shared hit within ${RECOVERY_MS} ms of recovery`)
    }
    await sleep(250)
  }
}

// Both instances serve version `want` of `name` within RECOVERY_MS, and never older after that.
async function expectVersionOnBoth(label, pathname, want) {
  const t0 = Date.now()
  for (const inst of [A, B]) {
    for (;;) {
      const d = await inst.getData(pathname)
      if (d.version === want) break
      if (Date.now() - t0 > RECOVERY_MS) {
        assert.fail(
          `${label}: ${inst.name} still serves v${d.version} of ${pathname} ${RECOVERY_MS} ms after recovery, expected v${want}`,
        )
      }
      await sleep(200)
    }
  }
  for (let i = 0; i < 3; i++) {
    for (const inst of [A, B]) {
      const d = await inst.getData(pathname)
      assert.equal(d.version, want, `${label}: ${inst.name} went back to v${d.version}`)
    }
  }
  return Date.now() - t0
}

// One scenario: warm an entry, load, inject the fault, revalidate during it, recover, check.
async function scenario(label, { inject, recover }) {
  const rvName = `products-rv-${label}`
  const rvPath = `/products?list=rv-${label}`
  // Warm: both instances serve v1 from the shared entry (A writes it after its response).
  const first = await A.getData(rvPath)
  await waitForDataEntry(redis, rvName)
  const cached = await B.getData(rvPath)
  assert.equal(cached.generatedAt, first.generatedAt, `${label}: warm-up is not shared`)

  const load = startLoad(label)
  await load.until(WARM_REQUESTS)
  const tFault = Date.now()
  await inject()
  // Both instances have met the fault: requests begun after it have been answered.
  await load.until(WORKERS, tFault)
  // The data changes and is revalidated on A while Redis is unavailable.
  const want = origin.bump(rvName)
  const logAt = fs.statSync(A.logFile).size
  await A.call('/api/expire?tag=products')
  // A sends it after the response (waitUntil), and cannot: it says so once it has queued it.
  await waitFor(
    () =>
      fs
        .readFileSync(A.logFile)
        .subarray(logAt)
        .toString('utf8')
        .includes('will be sent when Redis answers'),
    {
      timeoutMs: 10_000,
      intervalMs: 25,
      what: `${label}: A's log to show the revalidation queued`,
    },
  )
  // The outage lasts OUTAGE_MS, whatever the steps above took.
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - tFault)))
  await recover()
  const tRecovered = Date.now()
  const hitsMs = await waitForSharedHits(label)
  const rvMs = await expectVersionOnBoth(label, rvPath, want)
  const s = await load.stop()
  process.stderr.write(
    `[faults] ${label}: shared hits ${hitsMs} ms after recovery; revalidation from the outage in effect on both ${Date.now() - tRecovered} ms after recovery (check took ${rvMs} ms)\n`,
  )
  assertHealthy(s)
}

describe('fleetcache under Redis faults: two `next start` instances, one redis-server', () => {
  before(
    async () => {
      try {
        logDir = makeLogDir('fleetcache-faults-')
        await prepareApp({ logDir })
        redis = await startRedis({ logDir })
        origin = await startOrigin()
        ;[A, B] = await startFleet({
          names: ['A', 'B'],
          env: { REDIS_URL: redis.url, ORIGIN_URL: origin.url },
          logDir,
        })
      } catch (err) {
        report.failed = true
        throw err
      }
    },
    { timeout: 20 * 60_000 },
  )

  after(async () => {
    try {
      if (redis?.pid) process.kill(redis.pid, 'SIGCONT')
    } catch {
      // not running
    }
    await tearDown({
      tag: 'faults',
      logDir,
      failed: report.failed,
      keep: KEEP_LOGS,
      instances: [A, B],
      services: [origin, redis],
    })
  })

  test(
    'baseline load without faults',
    withDiagnostics(async () => {
      const load = startLoad('baseline')
      await load.until(WARM_REQUESTS)
      assertHealthy(await load.stop())
    }),
  )

  test(
    '(a) SIGKILL redis-server, restart it on the same port after 5 s',
    withDiagnostics(async () => {
      const port = redis.port
      await scenario('kill', {
        inject: async () => {
          process.kill(redis.pid, 'SIGKILL')
        },
        recover: async () => {
          redis = await startRedisOnPort({ port, logDir })
        },
      })
    }),
  )

  test(
    '(b) SIGSTOP redis-server for 5 s, then SIGCONT',
    withDiagnostics(async () => {
      await scenario('pause', {
        inject: async () => {
          process.kill(redis.pid, 'SIGSTOP')
        },
        recover: async () => {
          process.kill(redis.pid, 'SIGCONT')
        },
      })
    }),
  )

  test(
    '(c) restart redis-server empty',
    withDiagnostics(async () => {
      const port = redis.port
      await scenario('empty', {
        inject: async () => {
          await redis.stop()
        },
        recover: async () => {
          redis = await startRedisOnPort({ port, logDir })
        },
      })
    }),
  )
})
