// Observability with the real OpenTelemetry SDK against a real redis-server: the
// counters the core keeps move as a scenario runs (hits, misses, expiry by tag, stale serves,
// revalidations), the latency and size histograms and the Redis spans are recorded, and the
// breaker gauge flips when Redis is killed and back when it returns. stats() reports the same
// numbers. The redis-server is started, killed and restarted by PID. With JS_REDIS_CLUSTER=1
// the same runs on a 3-master Redis Cluster (helpers.mjs, startTestRedis), but for the outage.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { startRedisOnPort } from '../../tests/support/redis.mjs'
import { REDIS_CLUSTER, startTestRedis, useCacheEntry, assertServedStale } from './helpers.mjs'
import { registerTestSdk } from './otel-sdk.mjs'
import { OURS } from './package-copies.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')
// The SDK is registered before fleetcache is loaded, as an instrumentation hook would.
const { reader, spans } = registerTestSdk()

const { createIncrementalCacheHandler, createUseCacheHandler, close, stats } =
  await import('../esm/index.mjs')

let logDir
let redis
const silenced = {}

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-telemetry-'))
  redis = await startTestRedis({ logDir })
  // The outage below logs breaker lines on purpose; keep the test output readable.
  for (const level of ['log', 'warn', 'error']) {
    silenced[level] = console[level]
    console[level] = (...args) => {
      if (!String(args[0]).startsWith('[fleetcache]')) silenced[level](...args)
    }
  }
})

after(async () => {
  await close()
  await redis?.stop()
  Object.assign(console, silenced)
})

async function collect() {
  const { resourceMetrics, errors } = await reader.collect()
  assert.deepEqual(errors, [])
  const byName = new Map()
  for (const scope of resourceMetrics.scopeMetrics) {
    if (scope.scope.name !== 'fleetcache') continue
    for (const m of scope.metrics) byName.set(m.descriptor.name, m)
  }
  return byName
}

// The value of the data point of `name` whose attributes include `attrs` (0 when absent).
function point(byName, name, attrs = {}) {
  const m = byName.get(name)
  if (!m) return 0
  const p = m.dataPoints.find((d) => Object.entries(attrs).every(([k, v]) => d.attributes[k] === v))
  return p ? p.value : 0
}

const lookups = (b, iface, outcome) =>
  point(b, 'fleetcache.lookups', { 'fleetcache.interface': iface, 'fleetcache.outcome': outcome })

const entry = (value, tags) => useCacheEntry(value, { tags })

const OPTIONS = {
  prefix: 'otel',
  // One Redis command per lookup is what these counts expect: no in-process tier, no leases.
  memoryBytes: 0,
  leases: false,
  deploymentId: 'd1',
  breakerFailures: 2,
  breakerOpenMs: 200,
  breakerMaxOpenMs: 400,
  // Far above any round trip: Redis killed refuses connections at once, so no budget runs
  // out here, and under load a short one ran out while Redis was up.
  connectTimeoutMs: 10_000,
  readTimeoutMs: 10_000,
}

describe('OpenTelemetry metrics and spans, real SDK, real Redis', () => {
  let uc
  let Inc

  test('lookups by interface and outcome, revalidations, writes', async () => {
    uc = createUseCacheHandler({ ...OPTIONS, ...redis.options, redisUrl: redis.url })
    Inc = createIncrementalCacheHandler({ ...OPTIONS, ...redis.options, redisUrl: redis.url })
    let b = await collect()
    assert.equal(lookups(b, 'use-cache', 'hit'), 0)

    await uc.refreshTags()
    assert.equal(await uc.get('absent', []), undefined)
    await uc.set('k1', Promise.resolve(entry('one', ['products'])))
    assert.ok(await uc.get('k1', []), 'hit expected')
    assert.ok(await uc.get('k1', []), 'hit expected')
    b = await collect()
    assert.equal(lookups(b, 'use-cache', 'miss'), 1)
    assert.equal(lookups(b, 'use-cache', 'hit'), 2)
    assert.equal(
      point(b, 'fleetcache.writes', {
        'fleetcache.interface': 'use-cache',
        'fleetcache.outcome': 'stored',
      }),
      1,
    )

    // Immediate expiry: the next read is a miss, counted as expired by tag.
    await uc.updateTags(['products'])
    assert.equal(await uc.get('k1', []), undefined)
    // A profile revalidation: served once as stale.
    await uc.set('k2', Promise.resolve(entry('two', ['news'])))
    await sleep(2)
    await uc.updateTags(['news'], { expire: 3600 })
    const stale = await uc.get('k2', [])
    assertServedStale(stale)
    b = await collect()
    assert.equal(lookups(b, 'use-cache', 'expired-by-tag'), 1)
    assert.equal(lookups(b, 'use-cache', 'stale'), 1)
    assert.equal(
      point(b, 'fleetcache.revalidations', { 'fleetcache.revalidation.mode': 'expire' }),
      1,
    )
    assert.equal(
      point(b, 'fleetcache.revalidations', { 'fleetcache.revalidation.mode': 'stale' }),
      1,
    )
    assert.equal(point(b, 'fleetcache.outbox.size'), 0)

    // The singular handler is counted apart.
    const inc = new Inc()
    assert.equal(await inc.get('/route-cache/APP_ROUTE/x/$/api', { kind: 'APP_ROUTE' }), null)
    await inc.set(
      '/route-cache/APP_ROUTE/x/$/api',
      { kind: 'APP_ROUTE', body: Buffer.from('{"ok":true}'), status: 200, headers: {} },
      { kind: 'APP_ROUTE', cacheControl: { revalidate: 60, expire: 3600 } },
    )
    const got = await inc.get('/route-cache/APP_ROUTE/x/$/api', { kind: 'APP_ROUTE' })
    assert.equal(got?.value?.body.toString(), '{"ok":true}')
    b = await collect()
    assert.equal(lookups(b, 'incremental', 'miss'), 1)
    assert.equal(lookups(b, 'incremental', 'hit'), 1)
    assert.equal(lookups(b, 'use-cache', 'hit'), 2, 'the other interface is unchanged')

    // stats() reports the same numbers, for users without OpenTelemetry.
    const s = stats()
    assert.equal(s.lookups.useCache.hit, 2)
    assert.equal(s.lookups.useCache.expiredByTag, 1)
    assert.equal(s.lookups.incremental.hit, 1)
    assert.equal(s.revalidations.expire + s.revalidations.stale, 2)
    assert.equal(s.breaker.state, 'closed')
    assert.equal(s.engine, 'ok')
  })

  test('latency and entry-size histograms, one client span per Redis command', async () => {
    const b = await collect()
    const duration = b.get('fleetcache.operation.duration')
    assert.equal(duration.descriptor.unit, 's')
    const get = duration.dataPoints.find(
      (d) => d.attributes['db.operation.name'] === 'GET' && !d.attributes['error.type'],
    )
    assert.ok(get.value.count >= 5, `GET durations: ${get.value.count}`)
    assert.ok(get.value.max > 0 && get.value.max < 1, `seconds, not ms: ${get.value.max}`)
    assert.ok(
      duration.dataPoints.some((d) => d.attributes['db.operation.name'] === 'EVALSHA'),
      'tag scripts are timed too',
    )
    const size = b.get('fleetcache.entry.size')
    assert.equal(size.descriptor.unit, 'By')
    // Three entries written: two 'use cache' ones by SET, the route by SET or, on a single
    // Redis, by the script that announces it (EVALSHA, or EVAL on NOSCRIPT: the value its last
    // argument).
    const writes = size.dataPoints.filter((d) =>
      ['SET', 'EVALSHA', 'EVAL'].includes(d.attributes['db.operation.name']),
    )
    const written = writes.reduce((n, d) => n + d.value.count, 0)
    assert.ok(
      written >= 3 && writes.every((d) => d.value.min > 3),
      JSON.stringify(writes.map((d) => d.value)),
    )

    const finished = spans.getFinishedSpans()
    const getSpans = finished.filter((s) => s.name === 'GET')
    assert.ok(getSpans.length >= 5)
    assert.equal(getSpans[0].attributes['db.system.name'], 'redis')
    assert.equal(getSpans[0].kind, 2 /* CLIENT */)
  })

  // Killing and restarting every master of a cluster would test a cluster re-forming, not the
  // breaker; a master failing on a cluster is cluster-failover.test.mjs.
  const solo = { skip: REDIS_CLUSTER && 'kills and restarts the one redis-server' }
  test('the breaker gauge flips when Redis is killed and back when it returns', solo, async () => {
    let b = await collect()
    assert.equal(point(b, 'fleetcache.breaker.state'), 0)
    assert.equal(point(b, 'fleetcache.engine.failed'), 0, 'no trap here')
    const { port, pid } = redis.server
    process.kill(pid, 'SIGKILL')
    await redis.stop()
    // Two failed reads open the breaker (breakerFailures: 2); later ones are refused.
    for (let i = 0; i < 4; i++) assert.equal(await uc.get('k1', []), undefined)
    b = await collect()
    assert.equal(point(b, 'fleetcache.breaker.state'), 2, 'open')
    assert.equal(
      point(b, 'fleetcache.breaker.transitions', { 'fleetcache.breaker.state': 'open' }),
      1,
    )
    assert.ok(point(b, 'fleetcache.errors', { 'error.type': 'connection' }) >= 2)
    assert.ok(point(b, 'fleetcache.errors', { 'error.type': 'circuit_open' }) >= 1)
    assert.equal(stats().breaker.state, 'open')
    // A revalidation during the outage waits in the outbox.
    await uc.updateTags(['offline'])
    b = await collect()
    assert.equal(point(b, 'fleetcache.outbox.size'), 1)
    const errorSpan = spans.getFinishedSpans().find((s) => s.attributes['error.type'])
    assert.ok(errorSpan, 'failed commands mark their span as errors')

    redis = await startRedisOnPort({ port, logDir })
    const deadline = Date.now() + 10_000
    for (;;) {
      await uc.get('k1', [])
      await uc.refreshTags()
      if (stats().breaker.state === 'closed' && stats().outbox.length === 0) break
      assert.ok(Date.now() < deadline, `breaker still ${stats().breaker.state}`)
      await sleep(100)
    }
    b = await collect()
    assert.equal(point(b, 'fleetcache.breaker.state'), 0, 'closed again')
    assert.equal(
      point(b, 'fleetcache.breaker.transitions', { 'fleetcache.breaker.state': 'closed' }),
      1,
    )
    assert.equal(point(b, 'fleetcache.outbox.size'), 0, 'the queued revalidation was sent')
  })

  /** `fleetcache.entry.size` now: count and sum of the scripts' (EVALSHA, EVAL) and of GET. */
  async function sizes() {
    const m = (await collect()).get('fleetcache.entry.size')
    const of = (ops) => {
      const ps = (m?.dataPoints ?? []).filter((d) =>
        ops.includes(d.attributes['db.operation.name']),
      )
      return {
        count: ps.reduce((n, d) => n + d.value.count, 0),
        sum: ps.reduce((n, d) => n + d.value.sum, 0),
      }
    }
    return { scripts: of(['EVALSHA', 'EVAL']), get: of(['GET']) }
  }

  /** Commands sent so far (`fleetcache.operation.duration`): scripts and GETs. */
  async function sent() {
    const m = (await collect()).get('fleetcache.operation.duration')
    const of = (ops) =>
      (m?.dataPoints ?? [])
        .filter((d) => ops.includes(d.attributes['db.operation.name']))
        .reduce((n, d) => n + d.value.count, 0)
    return { scripts: of(['EVALSHA', 'EVAL']), get: of(['GET']) }
  }

  const keyOf = (iface, key) =>
    new wasm.Engine({ prefix: OPTIONS.prefix, deployment: OPTIONS.deploymentId }).entryKey(
      iface,
      key,
    )

  test('an entry a script reads counts once per read: a lease poll, a page read', async (t) => {
    // A lease poll (lease_poll.lua): B waits on A's lease and reads A's write with its poll.
    const leased = (n) =>
      createUseCacheHandler({
        ...OPTIONS,
        ...redis.options,
        redisUrl: redis.url,
        leases: true,
        leaseWaitMs: 10_000,
        connectTimeoutMs: 10_000 + n,
      })
    const [A, B] = [leased(1), leased(2)]
    await A.refreshTags()
    await B.refreshTags()
    assert.equal(await A.get('polled', []), undefined, 'A holds the lease')
    const waits = stats().leases.waited
    const waiting = B.get('polled', [])
    for (let i = 0; i < 2000 && stats().leases.waited === waits; i++) await sleep(5)
    assert.equal(stats().leases.waited, waits + 1, 'B waits on the lease')
    const before = await sizes()
    await A.set('polled', Promise.resolve(entry('x'.repeat(3000), ['polled'])))
    const got = await waiting
    assert.ok(got, "B gets A's write")
    const stored = Number(
      await redis.command('STRLEN', keyOf(wasm.Interface.useCache('default'), 'polled')),
    )
    assert.ok(stored > 3000, `stored ${stored} bytes`)
    const after = await sizes()
    // A's write (lease_write.lua carries the value) and B's one poll that found it.
    assert.deepEqual(
      {
        scripts: after.scripts.count - before.scripts.count,
        bytes: after.scripts.sum - before.scripts.sum,
      },
      { scripts: 2, bytes: 2 * stored },
      "the lease holder's write and the poll that read it, once each",
    )
    assert.equal(after.get.count, before.get.count, 'no GET read it')

    // A page read (page_read.lua): a push follower that is caught up reads a route entry with
    // it in place of a GET. Not on Redis Cluster (page writes are not announced there).
    if (REDIS_CLUSTER) {
      t.diagnostic('page read: skipped, page writes are not announced on Redis Cluster')
      return
    }
    const route = (n) =>
      createIncrementalCacheHandler({
        ...OPTIONS,
        redisUrl: redis.url,
        connectTimeoutMs: 10_000 + n,
        ...(n === 4 ? { tagSync: 'push', memoryBytes: 8 << 20 } : {}),
      })
    const W = route(3)
    const R = route(4)
    const ctx = { kind: 'APP_ROUTE', cacheControl: { revalidate: 60, expire: 3600 } }
    const body = 'y'.repeat(4000)
    // R reads by GET until it has subscribed, pulled and heard of a page write: then by script.
    for (let i = 0; i < 200; i++) {
      const key = `/route-cache/APP_ROUTE/x/$/page-read-${String(i)}`
      await new W().set(
        key,
        { kind: 'APP_ROUTE', body: Buffer.from(body), status: 200, headers: {} },
        ctx,
      )
      const stored = Number(await redis.command('STRLEN', keyOf(wasm.Interface.incremental(), key)))
      const [sizesBefore, sentBefore] = [await sizes(), await sent()]
      const read = await new R({}).get(key, { kind: 'APP_ROUTE' })
      assert.equal(read?.value?.body.toString(), body)
      const [sizesAfter, sentAfter] = [await sizes(), await sent()]
      if (sentAfter.get > sentBefore.get || sentAfter.scripts === sentBefore.scripts) {
        // A GET (not caught up yet), counted as a GET's.
        assert.equal(sizesAfter.get.count - sizesBefore.get.count, 1)
        await sleep(5)
        continue
      }
      assert.deepEqual(
        {
          scripts: sizesAfter.scripts.count - sizesBefore.scripts.count,
          bytes: sizesAfter.scripts.sum - sizesBefore.scripts.sum,
        },
        { scripts: 1, bytes: stored },
        'the page read, once',
      )
      return
    }
    assert.fail('R never read a route entry by script')
  })
})

test('without @opentelemetry/api the package loads, serves and counts (stats only)', () => {
  const here = path.dirname(fileURLToPath(import.meta.url))
  // A child process in which resolving @opentelemetry/api fails, as in an app without it.
  const script = `
    const Module = require('node:module')
    const resolve = Module._resolveFilename
    Module._resolveFilename = function (request, ...rest) {
      if (request === '@opentelemetry/api') throw Object.assign(new Error('absent'), { code: 'MODULE_NOT_FOUND' })
      return resolve.call(this, request, ...rest)
    }
    const fc = require(${JSON.stringify(path.join(here, '..', 'dist', 'index.js'))})
    const h = fc.createUseCacheHandler({ prefix: 'nootel', deploymentId: 'd' })
    h.get('k', []).then((v) => {
      const s = fc.stats()
      // This version's telemetry slot (src/telemetry.ts): made when the handler started.
      const slot = globalThis[Symbol.for(${JSON.stringify(`fleetcache.telemetry@${OURS}`)})]
      process.stdout.write('\\n' + JSON.stringify({ v: v === undefined, miss: s.lookups.useCache.miss,
        otel: slot === undefined ? 'no slot' : Boolean(slot.telemetry) }))
    })
  `
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 })
  assert.equal(r.status, 0, r.stderr)
  // The last line is the result; fleetcache's own start-up lines come before it.
  const last = r.stdout.trim().split('\n').at(-1)
  assert.deepEqual(JSON.parse(last), { v: true, miss: 1, otel: false })
})
