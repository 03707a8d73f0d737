// Review 13: where a singular-handler write is stamped with its own request's read (OwnReads,
// incremental-handler.ts) and the stamp is later than when what it stores was made.
// Against a real redis-server (helpers.mjs, startTestRedis).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'

import { close, createIncrementalCacheHandler } from '../esm/index.mjs'
import { now, startTestRedis, requestInstances } from './helpers.mjs'

let redis
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-own-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

/** One simulated server instance; `()` is one handler instance (Next builds one per request). */
const instance = (extra = {}) =>
  requestInstances(createIncrementalCacheHandler, redis, 'owntest', extra)

const ROUTE_TAG = 'route-tag'
const route = (body) => ({
  kind: 'APP_ROUTE',
  body: Buffer.from(body),
  status: 200,
  headers: { 'content-type': 'text/plain', 'x-next-cache-tags': ROUTE_TAG },
})
const routeGet = { kind: 'APP_ROUTE', isRoutePPREnabled: false, isFallback: false }
const routeSet = (cacheControl) => ({ ...routeGet, cacheControl })

/** Whether Next, judging `entry` now (lastModified + revalidate), calls it fresh. */
const freshToNext = (entry) =>
  entry !== null && entry.lastModified + entry.cacheControl.revalidate * 1000 > now()

// Next 16.5 (server/response-cache/index.js, handleRevalidate -> retainPreviousCacheEntry):
// when a regeneration throws or returns an error, the response cache writes the entry it read
// back through the same IncrementalCache, its revalidate clamped to 3..30 s, "to delay retries".
// Next 16.0 has no such write. The request's own read of the key (stale, after a profile
// revalidation) stamps that write, so the pre-revalidation value is stored as created after
// the revalidation.
describe('Next 16.5 retains the previous entry after a failed regeneration', () => {
  test('a value made before a profile revalidation is not served fresh after it', async () => {
    const A = instance()
    const B = instance()
    const key = '/own/retained'
    await A().set(
      key,
      route('made before the revalidation'),
      routeSet({ revalidate: 60, expire: 3600 }),
    )
    await sleep(2)
    await B().revalidateTag([ROUTE_TAG], { expire: 31_536_000 })
    await sleep(2)
    // A request reads it stale; Next serves it and regenerates; the regeneration throws.
    const request = A()
    const previous = await request.get(key, routeGet)
    assert.ok(previous && !freshToNext(previous), 'stale after the revalidation: Next regenerates')
    const revalidate = Math.min(Math.max(previous.cacheControl.revalidate || 3, 3), 30)
    const expire =
      previous.cacheControl.expire === undefined
        ? undefined
        : Math.max(revalidate + 3, previous.cacheControl.expire)
    await request.set(key, previous.value, routeSet({ revalidate, expire }))
    const later = await B().get(key, routeGet)
    assert.equal(Buffer.from(later.value.body).toString(), 'made before the revalidation')
    assert.ok(
      !freshToNext(later),
      'made before the revalidation: must not be served as fresh to a request after it',
    )
  })

  test("past the revalidation's expire, a value made before it is a miss", async () => {
    const A = instance()
    const B = instance()
    const key = '/own/retained-expire'
    await A().set(
      key,
      route('made before the revalidation'),
      routeSet({ revalidate: 60, expire: 3600 }),
    )
    await sleep(2)
    await B().revalidateTag([ROUTE_TAG], { expire: 1 })
    await sleep(2)
    const request = A()
    const previous = await request.get(key, routeGet)
    assert.ok(previous && !freshToNext(previous), 'stale within the profile: Next regenerates')
    await request.set(key, previous.value, routeSet({ revalidate: 30, expire: 3600 }))
    // The revalidation's expire (1 s) passes: a clock deadline, not synchronisation.
    await sleep(1100)
    const later = await B().get(key, routeGet)
    assert.equal(
      later && Buffer.from(later.value.body).toString(),
      null,
      "made before a revalidation whose expire has passed: a miss (docs/failures.md, 'The rule')",
    )
  })
})

// Next 16.5 unstable_cache (server/web/spec-extension/unstable-cache.js) outside an App Router
// render (the Pages Router's getServerSideProps/getStaticProps/API routes, code outside any
// request) has no work store and uses `globalThis.__incrementalCache`, the IncrementalCache
// the process built last: concurrent calls share one handler instance, and Next joins calls of
// one key neither there nor across requests. The instance's OwnReads merges both reads into
// one record, which the first write takes: the second write has no read of its own.
describe('two regenerations of one key through one shared handler instance', () => {
  const TAG = 'origin-data'
  const getCtx = { kind: 'FETCH', revalidate: 60, tags: [TAG], softTags: [] }
  const setCtx = { fetchCache: true, tags: [TAG], fetchIdx: 0 }
  const fetched = (body) => ({
    kind: 'FETCH',
    data: {
      headers: { 'content-type': 'text/plain' },
      body: Buffer.from(body).toString('base64'),
      url: 'https://origin.test/data',
      status: 200,
    },
    tags: [TAG],
    revalidate: 60,
  })
  const bodyOf = (entry) => Buffer.from(entry.value.data.body, 'base64').toString()

  // Known gap (docs/incremental.md): one shared instance cannot tell two calls' reads apart.
  // Kept as a todo: it runs and reports, and turns into a failure-free pass once closed.
  test(
    'a revalidation before the second write leaves it expired',
    {
      todo: 'a handler instance shared by concurrent calls (unstable_cache outside an App Router render)',
    },
    async () => {
      const A = instance()
      const B = instance()
      const key = 'own/shared-instance'
      const shared = A()
      assert.equal(await shared.get(key, getCtx), null, 'call 1 misses: it runs the function')
      await sleep(2)
      assert.equal(await shared.get(key, getCtx), null, 'call 2 misses too: not joined')
      await sleep(2)
      await shared.set(key, fetched('call 1, made before the revalidation'), setCtx)
      await sleep(2)
      await B().revalidateTag([TAG], { expire: 0 })
      await sleep(2)
      await shared.set(key, fetched('call 2, made before the revalidation'), setCtx)
      const later = await B().get(key, getCtx)
      assert.equal(
        later && bodyOf(later),
        null,
        'both calls began before the revalidation: the entry must be expired',
      )
    },
  )
})

// OwnReads keeps the earliest read and the earliest due of an instance's reads of a key: a
// fresh answer (its due ahead) and a later stale answer merge into "the fresh read, due at
// once". The write of the regeneration the stale answer began is then stamped with the fresh
// read, earlier than its start: born due when the two reads are more than a revalidate apart.
// Before 7d9023d the engine's table stamped it with the stale read (starts before fresh
// answers, Regenerations::started_of).
describe('an instance that read a key fresh, then stale, then writes it', () => {
  test('the write is stamped with the stale read, not born due', async () => {
    const A = instance()
    const B = instance()
    const key = '/own/fresh-then-stale'
    const v = route('v')
    await A().set(key, v, routeSet({ revalidate: 1, expire: 3600 }))
    const shared = A()
    const fresh = await shared.get(key, routeGet)
    assert.ok(fresh && freshToNext(fresh), 'read 1: fresh')
    // The entry's revalidate (1 s) passes: a clock deadline, not synchronisation.
    await sleep(1100)
    const stale = await shared.get(key, routeGet)
    assert.ok(stale && !freshToNext(stale), 'read 2: stale, Next regenerates')
    await shared.set(
      key,
      route('regenerated after read 2'),
      routeSet({ revalidate: 1, expire: 3600 }),
    )
    const later = await B().get(key, routeGet)
    assert.equal(Buffer.from(later.value.body).toString(), 'regenerated after read 2')
    assert.ok(freshToNext(later), 'regenerated after read 2, within its revalidate: fresh')
  })
})

// Review 14: retainPreviousCacheEntry exists "to delay retries after revalidation fails":
// Next's own caches store the retained entry as written now, fresh for its clamped revalidate
// (3..30 s). Stamped with the lastModified it was shown with, an entry that was stale by time
// alone (no revalidation since it was made) is stored born stale: the very next request
// regenerates again, and a regeneration that keeps failing is retried on every request instead
// of once per 3..30 s (each retry also rewrites the whole value to Redis).
describe('Next 16.5 retains the previous entry after a failed regeneration, stale by time only', () => {
  test('the retained entry is fresh for its clamped revalidate, as Next intends', async () => {
    const A = instance()
    const B = instance()
    const key = '/own/retained-time'
    await A().set(key, route('made once'), routeSet({ revalidate: 1, expire: 3600 }))
    // Past the clamped revalidate Next writes back with (max(1, 3) = 3 s): a clock deadline.
    await sleep(3100)
    const request = A()
    const previous = await request.get(key, routeGet)
    assert.ok(previous && !freshToNext(previous), 'stale by time: Next regenerates')
    const revalidate = Math.min(Math.max(previous.cacheControl.revalidate || 3, 3), 30)
    const expire =
      previous.cacheControl.expire === undefined
        ? undefined
        : Math.max(revalidate + 3, previous.cacheControl.expire)
    // The regeneration failed: Next writes the value it read back.
    await request.set(key, previous.value, routeSet({ revalidate, expire }))
    const next = await B().get(key, routeGet)
    assert.equal(Buffer.from(next.value.body).toString(), 'made once')
    assert.ok(
      freshToNext(next),
      'no revalidation since it was made: retained for the retry delay, not born stale',
    )
  })
})
