// End to end: a Redis Cluster failover under real `next start` load. Two instances of
// examples/next-app (A and B) share a cluster of three masters with one replica each. While a
// bounded load runs over pages whose entries land on several masters, the master that holds the
// tag state (`fleetcache:tags:{fleetcache}:*`, one slot) and the entry of a watched page is
// failed over, and the page's tag is revalidated on A through the app's route handler:
//   1. graceful: `CLUSTER FAILOVER` on its replica, the revalidation issued as it runs;
//   2. kill and promote: SIGKILL the master, revalidate while its slots have no master, then
//      `CLUSTER FAILOVER FORCE` on its replica (the revalidation waits in A's outbox).
// Each asserts: the failover happened (the replica serves the slot), no request of the load got
// a 5xx or failed, and the revalidation was not lost: B, which did not issue it and whose only
// way to learn of it is the tag state in Redis, serves the new value, then A does too.
//
// Run: node --test tests/e2e/cluster-failover.test.mjs (needs redis-server and redis-cli).
// Env: FLEETCACHE_TARBALL, E2E_KEEP_LOGS=1.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { describe, test } from 'node:test'
import { fleetSuite } from '../support/diagnostics.mjs'
import { makeLogDir, prepareApp, startFleet } from '../support/fleet.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedisCluster } from '../support/redis-cluster.mjs'
import { sleep, waitFor, waitForExit } from '../support/util.mjs'

const PREFIX = 'fleetcache'
// The tag state's slot: the `{fleetcache}` hash tag (docs/internals.md).
const TAG_KEY = `${PREFIX}:tags:{${PREFIX}}:meta`
// Load: this many request loops over LOAD_LISTS /products?list=... entries, each loop bounded by
// MAX_LOAD_REQUESTS (all loops together) and MAX_LOAD_MS.
const WORKERS = 4
const LOAD_LISTS = 9
const MAX_LOAD_REQUESTS = 3000
const MAX_LOAD_MS = 30_000
// A request slower than this counts as failed (it would be a hang on Redis).
const REQUEST_TIMEOUT_MS = 10_000
// Requests the load must have answered before the failover and after the recovery, so that each
// phase is exercised whatever the machine's speed.
const PHASE_REQUESTS = 2 * LOAD_LISTS
// How long both instances may take to serve the revalidated value after the failover (the kill
// scenario waits for the client's topology refresh, every second while a node is unreachable,
// and for the circuit breaker's next probe, at most 5 s apart).
const CONVERGE_MS = 20_000

let logDir
let cluster
let origin
let A
let B

const alive = (n) => n.child.exitCode === null && n.child.signalCode === null
const liveNodes = () => cluster.nodes.filter(alive)

// The node that serves `key`'s slot as master now, according to a live node's CLUSTER SLOTS.
async function masterOf(key) {
  const [probe] = liveNodes()
  const slot = await probe.command('CLUSTER', 'KEYSLOT', key)
  const shards = await probe.command('CLUSTER', 'SLOTS')
  const shard = shards.find(([from, to]) => slot >= from && slot <= to)
  assert.ok(shard, `no shard serves slot ${slot} (${key})`)
  const port = Number(shard[2][1])
  return { slot, node: cluster.nodes.find((n) => n.port === port) }
}

// The live replica of `master`, by the replicas' own ROLE.
async function replicaOf(master) {
  for (const n of liveNodes()) {
    const role = await n.command('ROLE')
    if (role[0] === 'slave' && Number(role[2]) === master.port) return n
  }
  throw new Error(`no live replica of the master on port ${master.port}`)
}

// Which master holds each entry key of the watched lists: { list -> node }. Entry values are
// binary envelopes whose header carries the original cache key (docs/internals.md); for
// /products?list=<l> the value's payload names the origin key `products-<l>`.
async function entryMasters(lists) {
  const found = new Map()
  for (const n of liveNodes()) {
    if ((await n.command('ROLE'))[0] !== 'master') continue
    let cursor = '0'
    do {
      const [next, keys] = await n.command(
        'SCAN',
        cursor,
        'MATCH',
        `${PREFIX}:*:uc-default:*:e`,
        'COUNT',
        '500',
      )
      cursor = next
      for (const key of keys) {
        const value = await n.command('GET', key)
        if (value === null) continue
        for (const list of lists) {
          if (value.includes(`"products-${list}"`)) found.set(list, { node: n, key })
        }
      }
    } while (cursor !== '0')
  }
  return found
}

// `workers` loops of GETs over the load lists, alternating between A and B, until stop(), the
// request bound or the time bound.
function startLoad(label) {
  const results = []
  const t0 = Date.now()
  let stopped = false
  let n = 0
  const loop = async (w) => {
    while (!stopped && n < MAX_LOAD_REQUESTS && Date.now() - t0 < MAX_LOAD_MS) {
      n += 1
      const inst = (n + w) % 2 === 0 ? A : B
      const pathname = `/products?list=${label}-load-${n % LOAD_LISTS}`
      const at = Date.now()
      try {
        const res = await inst.request(pathname, { timeoutMs: REQUEST_TIMEOUT_MS })
        results.push({ inst: inst.name, pathname, status: res.status, ms: res.ms, at: at - t0 })
      } catch (err) {
        results.push({
          inst: inst.name,
          pathname,
          status: 0,
          ms: Date.now() - at,
          at: at - t0,
          error: err.message,
        })
      }
    }
  }
  const done = Promise.all(Array.from({ length: WORKERS }, (_, w) => loop(w)))
  return {
    t0,
    // Requests answered (or failed) so far.
    count: () => results.length,
    // Resolves once `more` requests beyond `from` have been answered; fails if the load ended.
    async until(from, more, what) {
      await waitFor(
        () => {
          if (results.length >= from + more) return true
          if (stopped || n >= MAX_LOAD_REQUESTS || Date.now() - t0 >= MAX_LOAD_MS) {
            const e = new Error(`the load ended after ${results.length} requests`)
            e.fatal = true
            throw e
          }
          return false
        },
        { timeoutMs: MAX_LOAD_MS, intervalMs: 50, what, stopOn: (e) => e.fatal },
      )
    },
    async stop() {
      stopped = true
      await done
      const ms = results.map((r) => r.ms).sort((a, b) => a - b)
      const pct = (p) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))] ?? 0
      const bad = results.filter((r) => r.status >= 500 || r.status === 0)
      const summary =
        `${results.length} requests in ${Date.now() - t0} ms, ${bad.length} 5xx/failed, ` +
        `p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${ms[ms.length - 1] ?? 0} ms`
      process.stderr.write(`[failover] ${label} load: ${summary}\n`)
      return { requests: results.length, bad, summary }
    },
  }
}

// Both instances serve `want` for `pathname`: B first (it did not issue the revalidation, so only
// the tag state in Redis can tell it), then A; then three more reads each, never older.
async function expectVersionOnBoth(pathname, want, timeline) {
  const t0 = Date.now()
  const seen = []
  for (const inst of [B, A]) {
    for (;;) {
      const d = await inst.getData(pathname)
      seen.push(`${inst.name}:v${d.version}${d.error ? '(origin error)' : ''}`)
      if (d.version === want && d.error === null) {
        timeline.push(`${inst.name} serves v${want} at +${Date.now() - timeline.t0} ms`)
        break
      }
      if (Date.now() - t0 > CONVERGE_MS) {
        assert.fail(
          `lost revalidation: ${inst.name} still serves v${d.version} of ${pathname} ${CONVERGE_MS} ms ` +
            `after the check began, expected v${want}. Seen: ${seen.slice(-12).join(' ')}. ` +
            `Timeline: ${timeline.join('; ')}`,
        )
      }
      await sleep(200)
    }
  }
  for (let i = 0; i < 3; i++) {
    for (const inst of [A, B]) {
      const d = await inst.getData(pathname)
      assert.equal(
        d.version,
        want,
        `${inst.name} went back to v${d.version} of ${pathname}. Timeline: ${timeline.join('; ')}`,
      )
    }
  }
}

// One scenario: find the tag master and a watched page whose entry it holds, load, fail the
// master over with `failover`, revalidate during it, check.
async function scenario(label, failover) {
  const timeline = []
  timeline.t0 = Date.now()
  const mark = (what) => timeline.push(`${what} at +${Date.now() - timeline.t0} ms`)
  const { slot, node: master } = await masterOf(TAG_KEY)
  const replica = await replicaOf(master)
  timeline.push(
    `tag slot ${slot} on master ${master.port} (pid ${master.child.pid}), replica ${replica.port}`,
  )

  // Watched pages: warm them on A, read them on B, until one's entry lives on the tag master.
  let watched
  for (let batch = 0; batch < 4 && !watched; batch++) {
    const lists = Array.from({ length: 6 }, (_, i) => `${label}-rv-${batch * 6 + i}`)
    for (const list of lists) await A.getData(`/products?list=${list}`)
    // A writes each entry after its response.
    await waitFor(async () => (await entryMasters(lists)).size === lists.length, {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: `${label}: A's entries for ${lists.join(', ')} in Redis`,
    })
    for (const list of lists) {
      const a = await A.getData(`/products?list=${list}`)
      const b = await B.getData(`/products?list=${list}`)
      assert.equal(b.generatedAt, a.generatedAt, `${label}: warm-up of ${list} is not shared`)
    }
    const where = await entryMasters(lists)
    watched = lists.find((l) => where.get(l)?.node === master)
    if (watched) timeline.push(`watched ${watched}: entry ${where.get(watched).key}`)
  }
  assert.ok(watched, `${label}: no watched entry landed on the tag master ${master.port}`)
  const rvName = `products-${watched}`
  const rvPath = `/products?list=${watched}`

  const load = startLoad(label)
  let s
  try {
    await load.until(0, PHASE_REQUESTS, `${label}: the load's first ${PHASE_REQUESTS} requests`)
    // The load's entries are spread over the masters.
    const loadLists = Array.from({ length: LOAD_LISTS }, (_, i) => `${label}-load-${i}`)
    const stored = await waitFor(
      async () => {
        const where = await entryMasters(loadLists)
        return where.size === LOAD_LISTS && where
      },
      { timeoutMs: 15_000, intervalMs: 100, what: `${label}: the load's entries in Redis` },
    )
    const spread = new Set([...stored.values()].map((e) => e.node.port))
    timeline.push(`load entries on masters ${[...spread].join(', ')}`)
    assert.ok(spread.size >= 2, `${label}: the load's entries sit on one master only`)

    const want = origin.bump(rvName)
    mark(`failover of ${master.port} begins`)
    await failover({ master, replica, mark, revalidate: () => A.call('/api/expire?tag=products') })
    await waitFor(async () => (await replica.command('ROLE'))[0] === 'master', {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: `replica ${replica.port} to become master`,
    })
    mark(`replica ${replica.port} is master`)
    // Every live node agrees that the promoted replica serves the tag slot.
    await waitFor(
      async () => {
        for (const n of liveNodes()) {
          const shards = await n.command('CLUSTER', 'SLOTS')
          const shard = shards.find(([from, to]) => slot >= from && slot <= to)
          if (Number(shard?.[2][1]) !== replica.port) return false
        }
        return true
      },
      {
        timeoutMs: 5000,
        intervalMs: 50,
        what: `every node to route slot ${slot} to ${replica.port}`,
      },
    )
    await expectVersionOnBoth(rvPath, want, timeline)
    // The load goes on a little after recovery.
    await load.until(
      load.count(),
      PHASE_REQUESTS,
      `${label}: ${PHASE_REQUESTS} requests of the load after recovery`,
    )
  } finally {
    s = await load.stop()
  }
  timeline.push(`load: ${s.summary}`)
  process.stderr.write(`[failover] ${label}: ${timeline.join('; ')}\n`)
  assert.ok(s.requests >= 2 * PHASE_REQUESTS, `${label}: the load ran only ${s.requests} requests`)
  assert.equal(
    s.bad.length,
    0,
    `${label}: ${s.bad.length} requests got a 5xx or failed: ${JSON.stringify(s.bad.slice(0, 5))}. ` +
      `Timeline: ${timeline.join('; ')}`,
  )
}

describe('fleetcache e2e: Redis Cluster failover under `next start` load', () => {
  const { wrap: withDiagnostics } = fleetSuite({
    tag: 'failover',
    scene: () => ({ logDir, origin, redis: [cluster], instances: [A, B] }),
    setUp: async () => {
      logDir = makeLogDir('fleetcache-failover-')
      const t0 = Date.now()
      const app = await prepareApp({ logDir })
      const t1 = Date.now()
      cluster = await startRedisCluster({ logDir, masters: 3, replicas: 1 })
      origin = await startOrigin()
      ;[A, B] = await startFleet({
        names: ['A', 'B'],
        env: { REDIS_URL: cluster.url, FLEETCACHE_REDIS_CLUSTER: '1', ORIGIN_URL: origin.url },
        logDir,
      })
      process.stderr.write(
        `[failover] app ${app.built ? `built in ${(app.buildMs / 1000).toFixed(1)} s` : 'build up to date'}; ` +
          `prepare ${((t1 - t0) / 1000).toFixed(1)} s, cluster + origin + 2 instances ${((Date.now() - t1) / 1000).toFixed(1)} s; ` +
          `nodes ${cluster.nodes.map((n) => n.port).join(', ')}; logs ${logDir}\n`,
      )
    },
  })

  test(
    '`CLUSTER FAILOVER` of the tag master under load: no 5xx, the revalidation issued during it reaches both instances',
    { timeout: 60_000 },
    withDiagnostics(() =>
      scenario('graceful', async ({ replica, mark, revalidate }) => {
        assert.equal(await replica.command('CLUSTER', 'FAILOVER'), 'OK')
        mark('CLUSTER FAILOVER sent')
        await revalidate()
        mark('revalidation answered by A')
      }),
    ),
  )

  test(
    'SIGKILL of the tag master, then `CLUSTER FAILOVER FORCE`: no 5xx, the revalidation issued during the outage is not lost',
    { timeout: 60_000 },
    withDiagnostics(() =>
      scenario('kill', async ({ master, replica, mark, revalidate }) => {
        const logAt = fs.statSync(A.logFile).size
        process.kill(master.child.pid, 'SIGKILL')
        assert.ok(await waitForExit(master.child, 5000), `master ${master.port} did not exit`)
        mark(`SIGKILL ${master.port}, exited`)
        // The slots have no master now: A applies this at once and keeps it in its outbox.
        await revalidate()
        mark('revalidation answered by A')
        // A sends it after the response (waitUntil): wait until the send has failed.
        await waitFor(
          () =>
            /will be sent when Redis answers|kept in the outbox/.test(
              fs.readFileSync(A.logFile).subarray(logAt).toString('utf8'),
            ),
          { timeoutMs: 10_000, intervalMs: 50, what: "A's log to show the revalidation queued" },
        )
        mark('A queued the revalidation')
        // The cluster promotes the replica by itself after its node timeout (2 s): force it
        // unless that already happened.
        if ((await replica.command('ROLE'))[0] !== 'master') {
          assert.equal(await replica.command('CLUSTER', 'FAILOVER', 'FORCE'), 'OK')
          mark('CLUSTER FAILOVER FORCE sent')
        } else mark('the replica was promoted by the cluster')
      }),
    ),
  )
})
