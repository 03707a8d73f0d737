// Where a singular-handler write is stamped with its own request's read (OwnReads,
// incremental-handler.ts) and the stamp is later than when what it stores was made.
// Against a real redis-server (helpers.mjs, startTestRedis).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'

import { createRequire } from 'node:module'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import {
  asRequest,
  inRender,
  now,
  startTestRedis,
  requestInstances,
  useCacheEntry,
} from './helpers.mjs'

// The CLI's module, which can plan a tag update for a given time: an outbox's replay.
const tools = createRequire(import.meta.url)('../wasm/tools/node/fleetcache_wasm.js')

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

// Where Next hands one handler instance to concurrent calls (every 16.x from 16.0 to 16.5):
// - `unstable_cache` without a work store (the Pages Router's getServerSideProps/
//   getStaticProps, API routes, code outside any request) uses `globalThis.__incrementalCache`,
//   the IncrementalCache the process built last. Its `fetchIdx` comes from a counter of the
//   module (`noStoreFetchIdx`), one value per call, the same in the call's `get` and `set` ctx.
// - A proxy (middleware) invocation's work store holds that same global IncrementalCache
//   (server/async-storage/work-store.js: `renderOpts.incrementalCache ||
//   globalThis.__incrementalCache`), as do edge-runtime routes under `next start`
//   (route-module.js, sandbox.js); there `fetchIdx` counts per work store, so two concurrent
//   invocations' calls carry the same one.
// Next joins calls of one key neither there nor across requests. A `fetch` through such an
// instance is not at risk: Next holds the instance's per-key lock from its read to its write.
describe('two regenerations of one key through one shared handler instance', () => {
  const TAG = 'origin-data'
  // unstable_cache's read and write contexts, without a work store (unstable-cache.js).
  const readCtx = (fetchIdx) => ({
    kind: 'FETCH',
    revalidate: 60,
    tags: [TAG],
    fetchIdx,
    fetchUrl: 'unstable_cache  getData',
    softTags: undefined,
  })
  const writeCtx = (fetchIdx) => ({
    fetchCache: true,
    tags: [TAG],
    fetchIdx,
    fetchUrl: 'unstable_cache  getData',
  })
  const result = (body) => ({
    kind: 'FETCH',
    data: { headers: {}, body: JSON.stringify(body), status: 200, url: '' },
    revalidate: 60,
  })
  const bodyOf = (entry) => JSON.parse(entry.value.data.body)

  for (const order of [
    ['first', 'second'],
    ['second', 'first'],
  ]) {
    test(`a revalidation before the ${order[1]} call's write leaves it expired`, async () => {
      const A = instance()
      const B = instance()
      const key = `own/shared-instance-${order[0]}`
      const shared = A()
      const idx = { first: 7, second: 8 }
      assert.equal(await shared.get(key, readCtx(idx.first)), null, 'the first call misses')
      await sleep(2)
      assert.equal(await shared.get(key, readCtx(idx.second)), null, 'the second misses too')
      await sleep(2)
      await shared.set(key, result(`${order[0]} call`), writeCtx(idx[order[0]]))
      await sleep(2)
      await B().revalidateTag([TAG], { expire: 0 })
      await sleep(2)
      await shared.set(key, result(`${order[1]} call`), writeCtx(idx[order[1]]))
      const later = await B().get(key, readCtx(99))
      assert.equal(
        later && bodyOf(later),
        null,
        'both calls began before the revalidation: the entry must be expired',
      )
    })
  }

  // A proxy invocation's calls run in its work store; an edge route's, whose work store this
  // process's copy of Next cannot see, in the scope its request opened as Next reset the
  // request's IncrementalCache.
  for (const [where, within] of [
    ['render', (A, fn) => inRender(fn)],
    [
      'request',
      (A, fn) =>
        asRequest(async () => {
          A().resetRequestCache()
          return fn()
        }),
    ],
    [
      // As Next makes the calls: each reset after an `await`, the call in the route handler
      // the request's handling awaits (tags.test.mjs, `asNext`).
      'request, opened as Next opens it',
      (A, fn) =>
        asRequest(async () => {
          await Promise.resolve()
          A().resetRequestCache()
          const routeHandler = async () => {
            await Promise.resolve()
            A().resetRequestCache()
            return fn()
          }
          return routeHandler()
        }),
    ],
  ]) {
    test(`concurrent calls with one fetchIdx are told apart by their ${where}`, async () => {
      const A = instance()
      const B = instance()
      const key = `own/shared-instance-${where}`
      const shared = A()
      // Each invocation's work store counts from 1: both calls carry fetchIdx 1.
      const call = (body, between) =>
        within(A, async () => {
          assert.equal(await shared.get(key, readCtx(1)), null, `${body} misses`)
          await between()
          await shared.set(key, result(body), writeCtx(1))
        })
      let firstRead
      const firstHasRead = new Promise((resolve) => (firstRead = resolve))
      let release
      const held = new Promise((resolve) => (release = resolve))
      const first = call('first', async () => {
        firstRead()
        await held
      })
      await firstHasRead
      await sleep(2)
      await call('second', () => sleep(2))
      await sleep(2)
      await B().revalidateTag([TAG], { expire: 0 })
      await sleep(2)
      release()
      await first
      const later = await B().get(key, readCtx(99))
      assert.equal(
        later && bodyOf(later),
        null,
        'the first call began before the revalidation: the entry must be expired',
      )
    })
  }

  // A call whose function throws (a failing origin) reads and never writes. Its read must not
  // stamp the writes of later calls: counting outstanding reads would stamp each of them with
  // it, born expired after any revalidation since, a regeneration on every request.
  test("a call that never writes does not stamp later calls' writes", async () => {
    const A = instance()
    const B = instance()
    const key = 'own/shared-instance-failing'
    const shared = A()
    assert.equal(await shared.get(key, readCtx(20)), null, 'a call misses; its function throws')
    for (let round = 1; round <= 3; round++) {
      await sleep(2)
      await B().revalidateTag([TAG], { expire: 0 })
      await sleep(2)
      const fetchIdx = 20 + round
      assert.equal(await shared.get(key, readCtx(fetchIdx)), null, `round ${round}: a miss`)
      await shared.set(key, result(`round ${round}`), writeCtx(fetchIdx))
      const later = await B().get(key, readCtx(99))
      assert.equal(
        later && bodyOf(later),
        `round ${round}`,
        `round ${round}: begun after every revalidation, the write is fresh`,
      )
    }
  })
})

// An instance that read a key fresh, then stale, then writes it. Stamped with the fresh read, the
// write of the regeneration the stale answer began is born due when the two reads are more than a
// revalidate apart, so a start won. The freshness simulation then found the other history of the
// same reads: Next's second look of the fresh answer, late (a stalled event loop), began a refetch,
// a revalidation came, and the stale read joined that refetch (Next's pending revalidation):
// stamped with the stale read, the refetch's older data was fresh after the revalidation. The
// handler cannot tell the two apart, so once the fresh answer is due the write is stamped with the
// earlier read (ce72f8b): never late; at worst born due and regenerated once more.
describe('an instance that read a key fresh, then stale, then writes it', () => {
  test('the write is stamped with the earlier read, which may have begun it', async () => {
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
    assert.ok(
      later.lastModified <= fresh.lastModified,
      `stamped ${String(later.lastModified)}, after the fresh read (${String(fresh.lastModified)})`,
    )
    assert.ok(!freshToNext(later), 'stamped with read 1, more than its revalidate ago: born due')
  })
})

// retainPreviousCacheEntry exists "to delay retries after revalidation fails":
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
  // A revalidation issued before the write-back that reaches Redis only after it
  // (an instance that could not reach Redis replays it from its outbox, with the time it was
  // issued; or the update was still on its way while the writer pulled). The writer's pull
  // could not see it, so no stamp the writer chooses from what it knows is safe: the entry
  // keeps when the value was made, and its tags judge it by that.
  test('a revalidation issued before the write-back that reaches Redis after it leaves it stale', async () => {
    const A = instance()
    const B = instance()
    const key = '/own/retained-late-revalidation'
    await A().set(key, route('made once'), routeSet({ revalidate: 1, expire: 3600 }))
    // Past the clamped revalidate Next writes back with (3 s): a clock deadline.
    await sleep(3100)
    // Issued now on an instance that cannot reach Redis: it waits in that instance's outbox.
    const issued = now()
    await sleep(2)
    const request = A()
    const previous = await request.get(key, routeGet)
    assert.ok(previous && !freshToNext(previous), 'stale by time: Next regenerates')
    const revalidate = Math.min(Math.max(previous.cacheControl.revalidate || 3, 3), 30)
    await request.set(key, previous.value, routeSet({ revalidate, expire: 3600 }))
    // The replay: the tag update script with the revalidation's own time, sent only now.
    const replaying = new tools.Engine({ prefix: 'owntest', deployment: 'd1' })
    const argv = replaying
      .planTagUpdate(ROUTE_TAG, tools.RevalidationMode.Stale, 31_536_000, issued)
      .split('\0')
    const source = replaying.scriptSource(argv[1])
    replaying.free()
    await redis.eachNode('SCRIPT', 'LOAD', source)
    await redis.command(...argv)
    const later = await B().get(key, routeGet)
    assert.equal(Buffer.from(later.value.body).toString(), 'made once')
    assert.ok(
      !freshToNext(later),
      'made before a revalidation that resolved before this read: must not be served as fresh',
    )
  })
})

// The failing regeneration's render reads a 'use cache' entry with one of the page's
// tags, stale by time (a page stale by time usually holds such data), and the process hands it
// out stale. The write-back that follows is the old value unchanged, yet its stamp was lowered
// to that entry's creation (the stale hand-outs meant for a render that may have joined it):
// born due, Next's retry delay was void, and a failing regeneration was retried on every request.
test('a write-back after a stale use-cache hand-out with its tag keeps the retry delay', async () => {
  const opts = {
    redisUrl: redis.url,
    prefix: 'owntest',
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    connectTimeoutMs: 3999,
    ...redis.options,
  }
  const useCache = createUseCacheHandler(opts)
  const Inc = createIncrementalCacheHandler(opts)
  const A = () => new Inc({ dev: false, revalidatedTags: [] })
  const B = instance()
  const key = '/own/retained-after-hand-out'
  await useCache.set(
    'uc-in-page',
    Promise.resolve(useCacheEntry('data', { tags: [ROUTE_TAG], revalidate: 1 })),
  )
  await A().set(key, route('made once'), routeSet({ revalidate: 1, expire: 3600 }))
  // Past the clamped revalidate Next writes back with (3 s), and the entry's 1 s: a deadline.
  await sleep(3100)
  const request = A()
  const previous = await request.get(key, routeGet)
  assert.ok(previous && !freshToNext(previous), 'stale by time: Next regenerates')
  // The regeneration renders: its 'use cache' function gets its entry, stale by time.
  const data = await useCache.get('uc-in-page', [])
  assert.ok(data && now() > data.timestamp + data.revalidate * 1000, 'handed out stale')
  // The regeneration fails: Next writes the value it read back.
  const revalidate = Math.min(Math.max(previous.cacheControl.revalidate || 3, 3), 30)
  await request.set(key, previous.value, routeSet({ revalidate, expire: 3600 }))
  const next = await B().get(key, routeGet)
  assert.equal(Buffer.from(next.value.body).toString(), 'made once')
  assert.ok(
    freshToNext(next),
    `no revalidation since it was made: retained for the retry delay, not born stale (lastModified ${String(now() - next.lastModified)} ms ago)`,
  )
})
