// Leases (one regeneration per key across the fleet) and the in-process tier, against a real
// redis-server, or a 3-master Redis Cluster with JS_REDIS_CLUSTER=1 (helpers.mjs,
// startTestRedis). Each "instance" is a handler with its own runtime (engine, mirror, connection).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'

import {
  close,
  createIncrementalCacheHandler,
  createUseCacheHandler,
  optionsFromEnv,
  stats,
} from '../esm/index.mjs'
import { tagPullMonitor } from '../../tests/support/observe.mjs'
import { waitFor } from '../../tests/support/util.mjs'
import {
  APP_PAGE_CTX,
  appPage,
  assertServedStale,
  commandMonitor,
  inWorkUnit,
  now,
  onDemand,
  pageHtml,
  startTestRedis,
  text,
  useCacheEntry,
} from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')

let redis
let logDir
let seq = 0

let monitor

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-sf-'))
  redis = await startTestRedis({ logDir })
  monitor = await commandMonitor(redis)
})

after(async () => {
  await close()
  monitor?.close()
  await redis?.stop()
})

const PREFIX = 'sftest'

function options(extra = {}) {
  seq += 1
  // A distinct setting per "instance" gives it its own runtime.
  return {
    redisUrl: redis.url,
    prefix: PREFIX,
    deploymentId: 'd1',
    connectTimeoutMs: 4000 + seq,
    leaseWaitMs: 2000,
    ...redis.options,
    ...extra,
  }
}

const useCache = (extra) => createUseCacheHandler(options(extra))

function incremental(extra = {}) {
  const Handler = createIncrementalCacheHandler(options(extra))
  return () => new Handler({})
}

const engine = new wasm.Engine({ prefix: PREFIX, deployment: 'd1' })
const leaseKey = (iface, key) =>
  engine
    .entryKey(iface === 'inc' ? wasm.Interface.incremental() : wasm.Interface.useCache(iface), key)
    .replace(/:e$/, ':l')
const exists = async (key) => (await redis.command('EXISTS', key)) === 1

const entry = (value, over = {}) => useCacheEntry(value, { tags: ['sf'], ...over })

/**
 * Waits until the clock has moved `ms` past now: tag times are whole ms rounded up, so what
 * happens after this is later than a revalidation made before it (a timer alone may fire up to
 * a millisecond early).
 */
async function clockPast(ms) {
  const until = now() + ms
  while (now() < until) await sleep(1)
}

/** Lease waits begun so far in this process: a read found the lease held by another. */
const leaseWaits = () => stats()?.leases.waited ?? 0

/**
 * Resolves once `n` reads have begun waiting for the holder of `lease` since `before`
 * (leaseWaits()), the lease still held: the followers are waiting, not merely started.
 */
async function followersWaiting(before, n, lease) {
  await waitFor(async () => leaseWaits() >= before + n && (await exists(lease)), {
    timeoutMs: 5000,
    intervalMs: 5,
    what: `${n} follower(s) waiting on ${lease}`,
  })
}

/** Options of an instance whose commands `getCalls` counts apart (its own ACL user). */
const counted = async () => ({ redisUrl: (await monitor.user()).redisUrl })

/**
 * GETs the instance of `opts` (`counted()`) has sent so far, over every node of a cluster:
 * neither another instance's nor those a script runs in Redis (`redis.call('GET')`).
 */
const getCalls = (opts) => monitor.sent(new URL(opts.redisUrl).username, 'get')

describe("'use cache': leases", () => {
  test('on a miss one instance regenerates; the others wait for its write and return it', async () => {
    const [A, B, C] = [useCache(), useCache(), useCache()]
    assert.equal(
      await A.get('miss-1', []),
      undefined,
      'A holds the lease: a miss, Next regenerates',
    )
    assert.ok(await exists(leaseKey('default', 'miss-1')), 'the lease is in Redis')
    const waits = leaseWaits()
    const waiting = Promise.all([B.get('miss-1', []), C.get('miss-1', [])])
    await followersWaiting(waits, 2, leaseKey('default', 'miss-1'))
    await A.set('miss-1', Promise.resolve(entry('regenerated once')))
    const written = now()
    const [b, c] = await waiting
    assert.ok(b && c, 'the followers get the holder’s value, not a miss')
    assert.equal(await text(b.value), 'regenerated once')
    assert.equal(await text(c.value), 'regenerated once')
    // Well short of their 2 s budget, which followers that missed the write would spend.
    assert.ok(now() - written < 1500, 'followers picked the write up promptly')
    assert.equal(await exists(leaseKey('default', 'miss-1')), false, 'released with the write')
  })

  test('on a stale entry the holder gets it stale (backdated), a follower gets it as fresh', async () => {
    const [A, B] = [useCache(), useCache()]
    await A.set('stale-1', Promise.resolve(entry('old')))
    await clockPast(2)
    await A.updateTags(['sf'], { expire: 3600 })
    await B.refreshTags()
    const holder = await A.get('stale-1', [])
    assertServedStale(holder)
    const follower = await B.get('stale-1', [])
    assert.ok(follower, 'served')
    assert.equal(follower.revalidate, 900, 'presented as fresh: no second regeneration')
    assert.equal(await text(follower.value), 'old')
    await A.set('stale-1', Promise.resolve(entry('new')))
    assert.equal(await exists(leaseKey('default', 'stale-1')), false)
    const fresh = await B.get('stale-1', [])
    assert.equal(await text(fresh.value), 'new')
  })

  test('past revalidate: one holder, followers are shown a revalidate that covers the lease', async () => {
    const [A, B] = [useCache(), useCache()]
    await A.set(
      'time-1',
      Promise.resolve(entry('aged', { timestamp: now() - 120_000, revalidate: 60 })),
    )
    const holder = await A.get('time-1', [])
    assertServedStale(holder)
    const follower = await B.get('time-1', [])
    assert.ok(follower.revalidate > 120, `fresh presentation, got ${follower.revalidate}`)
  })

  test('a follower falls back to regenerating when its budget runs out', async () => {
    const A = useCache()
    const B = useCache({ leaseWaitMs: 300 })
    assert.equal(await A.get('fallback-1', []), undefined)
    const started = now()
    assert.equal(await B.get('fallback-1', []), undefined, 'no write came: B regenerates')
    const waited = now() - started
    // Below 2 s: short of both the default 3 s wait and A's 10 s lease, which a follower
    // ignoring its budget would spend, with room for a busy machine.
    assert.ok(waited >= 250 && waited < 2000, `waited ${waited.toFixed(0)} ms, budget 300`)
  })

  test('FLEETCACHE_LEASE_WAIT_MS=0: a follower on a miss regenerates at once, not counted as a wait', async () => {
    const leaseWaitMs = optionsFromEnv({ FLEETCACHE_LEASE_WAIT_MS: '0' }).leaseWaitMs
    assert.equal(leaseWaitMs, 0)
    const A = useCache()
    const B = useCache({ leaseWaitMs })
    assert.equal(await A.get('nowait-1', []), undefined, 'A regenerates and holds the lease')
    const lease = leaseKey('default', 'nowait-1')
    assert.ok(await exists(lease))
    const before = leaseWaits()
    assert.equal(await B.get('nowait-1', []), undefined, 'B regenerates too')
    assert.ok(await exists(lease), "B answered while A's lease was still held")
    assert.equal(leaseWaits(), before, 'B did not wait, and is not counted as waiting')
    // A stale entry is still regenerated once: B serves it as fresh while A holds the lease.
    await A.set(
      'nowait-2',
      Promise.resolve(entry('aged', { timestamp: now() - 120_000, revalidate: 60 })),
    )
    assert.ok(await A.get('nowait-2', []), 'A serves it stale and regenerates')
    assert.ok(await exists(leaseKey('default', 'nowait-2')), 'A holds the lease')
    const follower = await B.get('nowait-2', [])
    assert.ok(follower.revalidate > 120, `fresh presentation, got ${follower.revalidate}`)
    assert.equal(leaseWaits(), before)
  })

  test('a crashed holder blocks no one beyond its lease', async () => {
    const A = useCache({ leaseTtlMs: 400 })
    const B = useCache({ leaseTtlMs: 400, leaseWaitMs: 3000 })
    assert.equal(await A.get('crash-1', []), undefined) // A "dies" here: no set
    await waitFor(async () => !(await exists(leaseKey('default', 'crash-1'))), {
      timeoutMs: 5000,
      intervalMs: 50,
      what: 'the lease to expire',
    })
    const started = now()
    assert.equal(await B.get('crash-1', []), undefined, 'B takes over')
    // Waiting would cost B its 3 s budget; half of it leaves room for a busy machine.
    assert.ok(now() - started < 1500, 'as the new holder, without waiting')
    assert.ok(await exists(leaseKey('default', 'crash-1')))
  })

  test('a holder that ends without writing lets its followers go at once', async () => {
    // An uncacheable result, an entry over maxEntryBytes and a failed render all end in a
    // release without a write. Followers with a long budget must notice it on their next
    // poll, not wait the budget out.
    const cases = [
      ['rel-error', (A, key) => A.set(key, Promise.reject(new Error('render failed')))],
      ['rel-uncacheable', (A, key) => A.set(key, Promise.resolve(entry('x', { expire: 0 })))],
    ]
    for (const [key, end] of cases) {
      const A = useCache()
      const [B, C] = [useCache({ leaseWaitMs: 20_000 }), useCache({ leaseWaitMs: 20_000 })]
      const base = leaseWaits()
      const releases = stats()?.leases.waitReleases ?? 0
      assert.equal(await A.get(key, []), undefined, 'A holds the lease')
      const polls = []
      const waiting = Promise.all(
        [B, C].map(async (h) => {
          const got = await h.get(key, [])
          polls.push(now())
          return got
        }),
      )
      // Both followers are polling: their lease requests found A's lease.
      await waitFor(() => leaseWaits() >= base + 2, {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the followers to ask for the lease',
      })
      const released = now()
      await end(A, key)
      // A failed render's release is sent without being awaited.
      await waitFor(async () => !(await exists(leaseKey('default', key))), {
        timeoutMs: 5_000,
        intervalMs: 10,
        what: `${key}: the release`,
      })
      const got = await waiting
      assert.deepEqual(got, [undefined, undefined], `${key}: the followers regenerate`)
      // Within one poll interval (50 ms) on an idle machine; a tenth of their 20 s budget
      // leaves room for a busy one, and a follower that waits for its budget fails.
      for (const t of polls) assert.ok(t - released < 2_000, `${key}: waited ${t - released} ms`)
      assert.equal((stats()?.leases.waitReleases ?? 0) - releases, 2, 'counted as released')
    }
  })

  test("a refused write resolves without waiting for its lease's release, which still happens", async () => {
    // Over maxEntryBytes, or not cacheable: the write machine only releases the lease. Next
    // awaits `set` before it answers; the release round trip is no part of that.
    const cases = [
      ['refused-big', { maxEntryBytes: 1024 }, entry('x'.repeat(4096))],
      ['refused-uncacheable', {}, entry('x', { expire: 0 })],
    ]
    for (const [key, extra, refused] of cases) {
      const A = useCache({ writeTimeoutMs: 30_000, ...extra })
      const lk = leaseKey('default', key)
      assert.equal(await A.get(key, []), undefined, 'A holds the lease')
      assert.ok(await exists(lk))
      // Scripts that may write (the release among them) wait; reads do not.
      await redis.eachNode('CLIENT', 'PAUSE', '20000', 'WRITE')
      try {
        await A.set(key, Promise.resolve(refused))
        assert.ok(await exists(lk), `${key}: set resolved while its release was held back`)
      } finally {
        await redis.eachNode('CLIENT', 'UNPAUSE')
      }
      await waitFor(async () => !(await exists(lk)), {
        timeoutMs: 5_000,
        intervalMs: 10,
        what: `${key}: the release`,
      })
    }
  })

  test('a holder renews its lease while it renders, up to the cap', async () => {
    // Long enough that B's request and A's write fit, with room, before the cap.
    const ttl = 1000
    const A = useCache({ leaseTtlMs: ttl })
    const B = useCache({ leaseTtlMs: ttl, leaseWaitMs: 20_000 })
    const lk = leaseKey('default', 'renew-1')
    const won = now()
    assert.equal(await A.get('renew-1', []), undefined, 'A holds the lease')
    const token = await redis.command('GET', lk)
    // A render that outlasts the first TTL: the lease stays A's all along.
    await waitFor(
      async () => {
        assert.equal(await redis.command('GET', lk), token, `the lease at ${now() - won} ms`)
        return now() - won > 1.2 * ttl
      },
      {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the first lease TTL to pass',
        stopOn: (err) => err instanceof assert.AssertionError,
      },
    )
    // So a second instance waits for A's write instead of regenerating too.
    const base = leaseWaits()
    const waiting = B.get('renew-1', [])
    await waitFor(() => leaseWaits() >= base + 1, {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'B to ask for the lease',
    })
    await A.set('renew-1', Promise.resolve(entry('rendered once')))
    assert.equal(await text((await waiting).value), 'rendered once')
    assert.equal(await exists(lk), false, 'released with the write, not renewed after it')

    // A holder that never writes (no set, not even a failure) is renewed for at most three
    // TTLs from its win, then the lease lapses.
    const C = useCache({ leaseTtlMs: ttl })
    const lk2 = leaseKey('default', 'renew-2')
    const won2 = now()
    assert.equal(await C.get('renew-2', []), undefined)
    await waitFor(async () => !(await exists(lk2)), {
      timeoutMs: 20 * ttl + 5_000,
      intervalMs: 50,
      what: 'the renewals to stop at their cap',
    })
    const lived = now() - won2
    assert.ok(lived > 2 * ttl, `renewed: lived ${lived} ms`)
  })

  test('a lease request has the lease budget, not the read budget', async () => {
    // Event-loop lag or a busy Redis can delay a lease answer past the 100 ms read budget
    // here; the lease budget (the longer write budget) still counts it. Before: no answer, so
    // this instance regenerated beside the lease it had in fact taken.
    const A = useCache({ readTimeoutMs: 100, writeTimeoutMs: 5_000 })
    const lk = leaseKey('default', 'lag-1')
    await A.refreshTags()
    const won = stats()?.leases.acquired ?? 0
    // Scripts that may write wait 400 ms; the entry's GET does not.
    await redis.eachNode('CLIENT', 'PAUSE', '400', 'WRITE')
    assert.equal(await A.get('lag-1', []), undefined, 'a miss')
    assert.equal((stats()?.leases.acquired ?? 0) - won, 1, 'the late answer counted: the lease')
    assert.ok(await exists(lk))
    await A.set('lag-1', Promise.resolve(entry('v')))
    assert.equal(await exists(lk), false, 'released with the write: A knew it held it')
  })

  test('leases: false restores per-instance regeneration', async () => {
    const A = useCache({ leases: false })
    assert.equal(await A.get('nolease-1', []), undefined)
    assert.equal(await exists(leaseKey('default', 'nolease-1')), false)
  })
})

describe("'use cache': a read whose consumer caches never gets a stale entry", () => {
  // A page regenerating (a prerender) over a stale entry bakes it into the
  // page; so does an outer cache. Next treats a stale entry as a miss there; fleetcache's lease
  // followers must not hand it over "as fresh" either.
  const prerender = (fn) => inWorkUnit('prerender', fn)

  async function staleEverywhere(key, handlers) {
    await handlers[0].set(key, Promise.resolve(entry('old')))
    await clockPast(2)
    await handlers[0].updateTags(['sf'], { expire: 3600 })
    for (const h of handlers) await h.refreshTags()
  }

  test('a prerender following another instance waits for the holder’s write', async () => {
    const [A, B] = [useCache(), useCache()]
    await staleEverywhere('cons-1', [A, B])
    // A request on A (a dynamic route) holds the lease and regenerates in the background.
    assertServedStale(await inWorkUnit('request', () => A.get('cons-1', [])))
    const waits = leaseWaits()
    const reading = prerender(() => B.get('cons-1', []))
    await followersWaiting(waits, 1, leaseKey('default', 'cons-1'))
    await A.set('cons-1', Promise.resolve(entry('new')))
    const got = await reading
    assert.ok(got, 'the holder’s write, not a miss')
    assert.equal(await text(got.value), 'new', 'never the stale value as fresh')
    assert.equal(got.revalidate, 900)
  })

  test('a prerender in the holder’s own process waits for its write too', async () => {
    const A = useCache()
    await staleEverywhere('cons-2', [A])
    assertServedStale(await A.get('cons-2', []), 'no store: a response, holder')
    const waits = leaseWaits()
    const reading = prerender(() => A.get('cons-2', []))
    await followersWaiting(waits, 1, leaseKey('default', 'cons-2'))
    await A.set('cons-2', Promise.resolve(entry('new')))
    assert.equal(await text((await reading).value), 'new')
  })

  test('a prerender that wins the lease regenerates before it answers', async () => {
    const [A, B] = [useCache(), useCache()]
    await staleEverywhere('cons-3', [A, B])
    assert.equal(await prerender(() => A.get('cons-3', [])), undefined, 'a miss, not stale')
    assert.ok(await exists(leaseKey('default', 'cons-3')), 'it holds the lease')
    // A request elsewhere still gets the stale value as fresh meanwhile.
    const follower = await inWorkUnit('request', () => B.get('cons-3', []))
    assert.equal(await text(follower.value), 'old')
    assert.equal(follower.revalidate, 900)
    await A.set('cons-3', Promise.resolve(entry('new')))
  })

  test('past its budget a waiting prerender regenerates itself', async () => {
    const [A, B] = [useCache(), useCache({ leaseWaitMs: 300 })]
    await staleEverywhere('cons-4', [A, B])
    assertServedStale(await A.get('cons-4', []))
    const started = now()
    assert.equal(await prerender(() => B.get('cons-4', [])), undefined)
    assert.ok(now() - started >= 300, 'it waited for the holder first')
  })

  test('cache scopes: stale as fresh only when their own consumer does not cache', async () => {
    const [A, B] = [useCache(), useCache({ leaseWaitMs: 200 })]
    await staleEverywhere('cons-5', [A, B])
    assertServedStale(await A.get('cons-5', []))
    const serving = await inWorkUnit('cache', () => B.get('cons-5', []), {
      consumerWillServerCache: false,
    })
    assert.equal(await text(serving.value), 'old')
    assert.equal(serving.revalidate, 900)
    // A scope of a release without the field is taken to cache.
    assert.equal(await inWorkUnit('cache', () => B.get('cons-5', [])), undefined)
    assert.equal(await inWorkUnit('prerender-legacy', () => B.get('cons-5', [])), undefined)
  })
})

describe('a page regenerated while a request was handed stale data it reads', () => {
  // Next 16.4 lets a prerender join a 'use cache' invocation a request has pending, without
  // asking the handler: the page gets what the request got. Its write must not be fresh.
  test('is stamped no later than that data, so it reads as stale', async () => {
    const o = options()
    const uc = createUseCacheHandler(o)
    const Inc = createIncrementalCacheHandler(o)
    const B = incremental()
    const page = (v) => ({
      kind: 'APP_PAGE',
      html: `<p>${v}</p>`,
      rscData: Buffer.from(v),
      headers: { 'x-next-cache-tags': '_N_T_/joined,joined' },
      status: 200,
      postponed: undefined,
      segmentData: undefined,
    })
    const ctx = { kind: 'APP_PAGE', cacheControl: { revalidate: 900, expire: 86400 } }
    await uc.set('joined-data', Promise.resolve(entry('old', { tags: ['joined'] })))
    await new Inc({}).set('/joined', page('old'), ctx)
    await clockPast(2)
    await uc.updateTags(['joined'], { expire: 3600 })
    // The page's regeneration begins (a stale read: Next regenerates in the background) ...
    const before = await new Inc({}).get('/joined', { kind: 'APP_PAGE' })
    assert.ok(before.lastModified + 900_000 < now(), 'stale')
    // ... a request is handed the stale data (it holds the lease) and the page joins it ...
    assertServedStale(await inWorkUnit('request', () => uc.get('joined-data', [])))
    // ... and the page is written with it.
    await new Inc({}).set('/joined', page('joined old data'), ctx)
    const got = await B().get('/joined', { kind: 'APP_PAGE' })
    assert.equal(got.value.html, '<p>joined old data</p>')
    assert.ok(got.lastModified + 900_000 < now(), 'stale, so it is regenerated again')
  })
})

describe('singular handler: leases', () => {
  const route = (body) => ({
    kind: 'APP_ROUTE',
    body: Buffer.from(body),
    status: 200,
    headers: { 'x-next-cache-tags': 'sf-route' },
  })
  const setCtx = { kind: 'APP_ROUTE', cacheControl: { revalidate: 60, expire: 3600 } }
  const getCtx = { kind: 'APP_ROUTE' }

  test('on a miss the followers wait for the holder’s write', async () => {
    const [A, B] = [incremental(), incremental()]
    assert.equal(await A().get('/inc-miss', getCtx), null)
    const waits = leaseWaits()
    const waiting = B().get('/inc-miss', getCtx)
    await followersWaiting(waits, 1, leaseKey('inc', '/inc-miss'))
    await A().set('/inc-miss', route('one render'), setCtx)
    const got = await waiting
    assert.equal(got?.value?.body.toString(), 'one render')
    assert.equal(await exists(leaseKey('inc', '/inc-miss')), false)
  })

  test('on a stale entry the holder sees it stale, a follower sees it fresh', async () => {
    const [A, B] = [incremental(), incremental()]
    await A().set('/inc-stale', route('v1'), setCtx)
    await clockPast(2)
    await A().revalidateTag(['sf-route'], { expire: 3600 })
    const holder = await A().get('/inc-stale', getCtx)
    assert.ok(holder.lastModified + 60_000 < now(), 'holder: Next regenerates in the background')
    const follower = await B().get('/inc-stale', getCtx)
    assert.ok(follower.lastModified + 60_000 >= now(), 'follower: fresh, no regeneration')
    assert.equal(follower.value.body.toString(), 'v1')
  })

  test('a FETCH read inside a page regeneration waits for the holder instead of stale data', async () => {
    const [A, B] = [incremental(), incremental()]
    const fetched = (body) => ({
      kind: 'FETCH',
      data: { headers: {}, body: Buffer.from(body).toString('base64'), url: 'u', status: 200 },
      tags: ['sf-fetch'],
      revalidate: 60,
    })
    const setFetch = { fetchCache: true, tags: ['sf-fetch'], fetchIdx: 0 }
    const getFetch = { kind: 'FETCH', revalidate: 60, tags: ['sf-fetch'], softTags: [] }
    const body = (got) => Buffer.from(got.value.data.body, 'base64').toString()
    await A().set('fetch-cons', fetched('v1'), setFetch)
    await clockPast(2)
    await A().revalidateTag(['sf-fetch'], { expire: 3600 })
    // Tag times are whole ms, rounded up: a regeneration that begins within the same ms as a
    // revalidation counts as older than it (and would be regenerated again).
    await clockPast(2)
    const holder = await inWorkUnit('request', () => A().get('fetch-cons', getFetch))
    assert.ok(holder.lastModified + 60_000 < now(), 'holder: stale, regenerating')
    const waits = leaseWaits()
    const reading = inWorkUnit('prerender', () => B().get('fetch-cons', getFetch))
    await followersWaiting(waits, 1, leaseKey('inc', 'fetch-cons'))
    await A().set('fetch-cons', fetched('v2'), setFetch)
    const got = await reading
    assert.equal(body(got), 'v2', 'never the stale response as fresh')
    assert.ok(got.lastModified + 60_000 >= now())
  })
})

describe('in-process tier', () => {
  test('hits without Redis, honours revalidations from other instances, and coalesces reads', async () => {
    const bOpts = await counted()
    const [A, B] = [useCache(), useCache(bOpts)]
    await A.set('tier-1', Promise.resolve(entry('tiered')))
    await B.refreshTags()
    assert.equal(await text((await B.get('tier-1', [])).value), 'tiered')
    // Gone from Redis: B still has it in memory, and serves it without a GET.
    await redis.command('DEL', engine.entryKey(wasm.Interface.useCache('default'), 'tier-1'))
    const before = await getCalls(bOpts)
    assert.ok(before > 0, "B's own GETs are counted")
    assert.equal(await text((await B.get('tier-1', [])).value), 'tiered')
    assert.equal(await getCalls(bOpts), before, 'a tier hit sends no GET')
    // A revalidation on A reaches B's tier through the tag mirror.
    await A.updateTags(['sf'])
    await B.refreshTags()
    assert.equal(await B.get('tier-1', []), undefined, 'never served after a revalidation')

    // Concurrent reads of one key in one process share one GET. Its tag state loaded first:
    // reads of a handler that never pulled it wait for a pull, the first caller's or the one
    // queued behind it, and those waiting on different pulls reach Redis apart.
    const cOpts = await counted()
    const C = useCache({ leases: false, ...cOpts })
    await A.set('tier-2', Promise.resolve(entry('shared')))
    // C's tag state loaded: a read of another key sends no tag pull. One refreshTags may leave
    // it loading (a pull that timed out on a loaded machine, or a state of many pages), and
    // then the ten reads below would wait on two pulls and reach Redis apart (bounded).
    const pulls = async () => {
      const user = new URL(cOpts.redisUrl).username
      return (await monitor.sent(user, 'evalsha')) + (await monitor.sent(user, 'eval'))
    }
    let loaded = false
    for (let i = 0; i < 20 && !loaded; i++) {
      await C.refreshTags()
      const before = await pulls()
      await C.get(`tier-probe-${String(i)}`, [])
      loaded = (await pulls()) === before
    }
    assert.ok(loaded, "C's tag state never loaded")
    const start = await getCalls(cOpts)
    const all = await Promise.all(Array.from({ length: 10 }, () => C.get('tier-2', [])))
    assert.ok(all.every((e) => e !== undefined))
    assert.equal((await getCalls(cOpts)) - start, 1, 'one GET for ten readers')
  })

  test('Pages ISR values are never served from the tier while Redis answers: an on-demand re-render elsewhere is seen at once', async () => {
    const [A, B] = [incremental(), incremental()]
    const page = (html) => ({
      kind: 'PAGES',
      html,
      pageData: { v: html },
      headers: {},
      status: 200,
    })
    const ctx = { kind: 'PAGES', cacheControl: { revalidate: 3600, expire: 31_536_000 } }
    await A().set('/isr-tier', page('v1'), ctx)
    assert.equal((await B().get('/isr-tier', { kind: 'PAGES' })).value.html, 'v1')
    // res.revalidate('/isr-tier') on A: a new value, no tag, well within revalidate.
    await A().set('/isr-tier', page('v2'), ctx)
    assert.equal((await B().get('/isr-tier', { kind: 'PAGES' })).value.html, 'v2')
    assert.equal((await A().get('/isr-tier', { kind: 'PAGES' })).value.html, 'v2')
  })

  test('App Router pages and routes are never served from the tier while Redis answers: an on-demand rewrite elsewhere is seen at once', async () => {
    // `x-prerender-revalidate` rewrites the entry in Redis on one instance,
    // with no tag and well within `revalidate` (30 days with revalidate: false).
    const cases = [
      {
        key: '/app-od',
        kind: 'APP_PAGE',
        value: (v) => ({
          kind: 'APP_PAGE',
          html: `<p>${v}</p>`,
          rscData: Buffer.from(v),
          headers: { 'x-next-cache-tags': '_N_T_/app-od' },
          status: 200,
          postponed: undefined,
          segmentData: undefined,
        }),
        read: (got) => got.value.html,
        want: (v) => `<p>${v}</p>`,
      },
      {
        key: '/route-od',
        kind: 'APP_ROUTE',
        value: (v) => ({
          kind: 'APP_ROUTE',
          body: Buffer.from(v),
          headers: { 'x-next-cache-tags': '_N_T_/route-od' },
          status: 200,
        }),
        read: (got) => got.value.body.toString(),
        want: (v) => v,
      },
    ]
    for (const c of cases) {
      const Handler = createIncrementalCacheHandler(options())
      const A = onDemand(Handler)
      const B = incremental()
      const ctx = { kind: c.kind, cacheControl: { revalidate: false, expire: undefined } }
      await A().set(c.key, c.value('v1'), ctx)
      assert.equal(c.read(await B().get(c.key, { kind: c.kind })), c.want('v1'))
      // On-demand revalidation on A: Next reads, renders, writes.
      await A().get(c.key, { kind: c.kind })
      await A().set(c.key, c.value('v2'), ctx)
      assert.equal(c.read(await B().get(c.key, { kind: c.kind })), c.want('v2'), c.kind)
    }
  })

  test("tagSync 'push': App Router pages are served from the tier while caught up, and an on-demand rewrite elsewhere is seen once announced", async (t) => {
    if (redis.cluster) {
      t.skip('page writes are not announced on Redis Cluster: pages are read from Redis there')
      return
    }
    /** Calls of `command` Redis has run so far (every node). */
    const calls = async (command) => {
      let n = 0
      for (const info of await redis.eachNode('INFO', 'commandstats')) {
        const m = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(info))
        if (m) n += Number(m[1])
      }
      return n
    }
    const monitor = await tagPullMonitor(redis.server)
    t.after(() => monitor.close())
    const key = '/app-push'
    const kind = 'APP_PAGE'
    const value = (v) => ({ ...appPage(v), headers: { 'x-next-cache-tags': '_N_T_/app-push' } })
    const ctx = APP_PAGE_CTX
    const html = (h) => pageHtml(h, key)
    // A rewrites on demand (`x-prerender-revalidate`) and pulls per request: a fleet may mix
    // both, and its writes are announced all the same. B follows the tag state by push.
    const OnDemand = createIncrementalCacheHandler(options())
    const A = onDemand(OnDemand)
    const B = incremental({ tagSync: 'push' })
    /** Reads on B until a read sends Redis nothing (caught up, served from the tier). */
    const fromTier = async (want) => {
      for (let i = 0; i < 2000; i++) {
        const [scripts, gets] = [await calls('evalsha'), await calls('get')]
        const got = await html(B)
        if (got === want && (await calls('evalsha')) === scripts && (await calls('get')) === gets) {
          return
        }
        await new Promise((r) => setImmediate(r))
      }
      assert.fail(`B never served ${want} from its tier`)
    }
    await A().set(key, value('v1'), ctx)
    await fromTier('<p>v1</p>')
    const gets = await calls('get')
    for (let i = 0; i < 5; i++) assert.equal(await html(B), '<p>v1</p>')
    assert.equal(await calls('get'), gets, 'caught up, B reads the page from its tier, not Redis')
    // Each instance also pulls on its own before its caught-up bound runs out (a pull that
    // finds versions no announcement brought also stops the page copies). Freshness is
    // asserted every round; "by the announcement" needs one round without such a pull.
    const rounds = []
    for (let round = 2; round < 8; round++) {
      const v = `v${String(round)}`
      await fromTier(`<p>v${String(round - 1)}</p>`)
      // On-demand revalidation on A: Next reads, renders, writes.
      await A().get(key, { kind })
      await A().set(key, value(v), ctx)
      // B's tag pulls only (its page reads are scripts too: page_read.lua).
      let got
      const pulls = await monitor.pullsDuring(async () => {
        for (let i = 0; i < 2000 && (got = await html(B)) !== `<p>${v}</p>`; i++) {
          await new Promise((r) => setImmediate(r))
        }
      })
      assert.equal(got, `<p>${v}</p>`, 'B serves the rewrite once announced')
      rounds.push(pulls)
      if (pulls === 0) {
        await fromTier(`<p>${v}</p>`)
        return
      }
    }
    assert.fail(`every round also ran a pull (pulls per round: ${rounds.join(', ')})`)
  })

  test("tagSync 'push': a page served from the tier settles in its get's own turn, as a 'use cache' hit does", async (t) => {
    if (redis.cluster) {
      t.skip('page writes are not announced on Redis Cluster: pages are read from Redis there')
      return
    }
    const gets = async () => {
      let n = 0
      for (const info of await redis.eachNode('INFO', 'commandstats')) {
        const m = /cmdstat_get:calls=(\d+)/.exec(String(info))
        if (m) n += Number(m[1])
      }
      return n
    }
    const key = '/app-push-turn'
    const value = { ...appPage('t1'), headers: { 'x-next-cache-tags': '_N_T_/app-push-turn' } }
    await incremental()().set(key, value, APP_PAGE_CTX)
    const B = incremental({ tagSync: 'push' })
    let fromTier = false
    for (let i = 0; i < 2000 && !fromTier; i++) {
      const before = await gets()
      fromTier = (await pageHtml(B, key)) === '<p>t1</p>' && (await gets()) === before
      if (!fromTier) await new Promise((r) => setImmediate(r))
    }
    assert.ok(fromTier, 'B serves the page from its tier (no GET)')
    const before = await gets()
    // A reaction to the get runs before one queued after the call: the get's promise was
    // settled when the call returned (no await inside it), so Next's own await of it costs one
    // turn, as with its own handler's hit.
    const order = []
    const got = B()
      .get(key, { kind: 'APP_PAGE' })
      .then((e) => {
        order.push('get')
        return e
      })
    void Promise.resolve().then(() => order.push('queued after'))
    const entry = await got
    assert.equal(await gets(), before, 'served from the tier')
    assert.equal(String(entry?.value?.html), '<p>t1</p>')
    assert.deepEqual(order, ['get', 'queued after'])
  })

  test('while the breaker is open, reads are served from the tier', async () => {
    const fast = {
      readTimeoutMs: 150,
      writeTimeoutMs: 200,
      connectTimeoutMs: 300,
      breakerFailures: 2,
      breakerOpenMs: 5000,
      breakerMaxOpenMs: 5000,
    }
    const A = useCache(fast)
    // As Next does at the start of a request: the tag state is loaded before Redis stops.
    await A.refreshTags()
    await A.set('down-1', Promise.resolve(entry('kept')))
    await clockPast(2)
    // Stale locally, so the tier alone would not serve it while Redis is healthy.
    await A.updateTags(['sf'], { expire: 3600 })
    // Every server of a cluster stops, so whichever master owns the key is unreachable.
    for (const pid of redis.pids) process.kill(pid, 'SIGSTOP')
    try {
      for (let i = 0; i < 4; i++) {
        const got = await A.get('down-1', [])
        assert.ok(got, `read ${i} served from the tier`)
        assertServedStale(got)
        assert.equal(await text(got.value), 'kept')
      }
    } finally {
      for (const pid of redis.pids) process.kill(pid, 'SIGCONT')
    }
  })

  test('while the breaker is open, pages and routes are served from the tier too: no origin stampede', async () => {
    // Page and route entries are read from Redis while it answers (above),
    // and kept in the tier for outages only.
    const fast = {
      readTimeoutMs: 160,
      writeTimeoutMs: 200,
      connectTimeoutMs: 300,
      breakerFailures: 2,
      breakerOpenMs: 5000,
      breakerMaxOpenMs: 5000,
    }
    const Handler = createIncrementalCacheHandler(options(fast))
    const A = () => new Handler()
    const pagesCtx = { kind: 'PAGES', cacheControl: { revalidate: 3600, expire: 31_536_000 } }
    const routeCtx = { kind: 'APP_ROUTE', cacheControl: { revalidate: false, expire: undefined } }
    const page = (html) => ({ kind: 'PAGES', html, pageData: {}, headers: {}, status: 200 })
    const route = (v) => ({ kind: 'APP_ROUTE', body: Buffer.from(v), headers: {}, status: 200 })
    await A().set('/down-pages', page('p1'), pagesCtx)
    await A().set('/down-route', route('r1'), routeCtx)
    // Read once from Redis while it answers (and the tier keeps it for outages).
    assert.equal((await A().get('/down-pages', { kind: 'PAGES' })).value.html, 'p1')
    for (const pid of redis.pids) process.kill(pid, 'SIGSTOP')
    try {
      for (let i = 0; i < 4; i++) {
        const p = await A().get('/down-pages', { kind: 'PAGES' })
        assert.equal(p?.value.html, 'p1', `PAGES read ${i} served from the tier`)
        const r = await A().get('/down-route', { kind: 'APP_ROUTE' })
        assert.equal(r?.value.body.toString(), 'r1', `APP_ROUTE read ${i} served from the tier`)
      }
      // Rendered while Redis is out of reach: kept, and served, by this instance.
      await A().set('/down-new', page('n1'), pagesCtx)
      const n = await A().get('/down-new', { kind: 'PAGES' })
      assert.equal(n?.value.html, 'n1', 'a page rendered during the outage is served again')
    } finally {
      for (const pid of redis.pids) process.kill(pid, 'SIGCONT')
    }
  })
})
