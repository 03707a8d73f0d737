// Two regenerations of one singular-handler key in flight at once in one process.
// Next's fetch cache locks a key per IncrementalCache, and Next builds an IncrementalCache
// per request (route-module.js: "incremental-cache is request specific"; patch-fetch.js:
// `incrementalCache.lock(cacheKey)`, `workStore.pendingRevalidates`), so two concurrent
// requests that find a fetch entry missing or stale each fetch it again and each write it.
// Each regeneration read its data after its own read; a revalidation that resolves between
// the second read and the second write must leave the second write stale or expired.
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
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-regen-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

/** One simulated server instance; `()` is one handler instance (Next builds one per request). */
const instance = (extra = {}) =>
  requestInstances(createIncrementalCacheHandler, redis, 'regentest', extra)

const TAG = 'origin-data'
const getCtx = { kind: 'FETCH', revalidate: 60, tags: [TAG], softTags: [] }
const setCtx = { fetchCache: true, tags: [TAG], fetchIdx: 0 }

/** A fetch result whose body says which regeneration fetched it. */
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

/**
 * Two requests on `A` regenerate `key` at once (`first` and `second` are what their reads
 * answered, checked by `read`); the first writes, `B` revalidates, then the second writes. A
 * third request must not get the second write as fresh.
 */
async function secondWriteAfterARevalidation(A, B, key, read) {
  const r1 = A()
  const r2 = A()
  read(await r1.get(key, getCtx), 'request 1 regenerates')
  read(await r2.get(key, getCtx), 'request 2 regenerates too: Next does not join them')
  await sleep(2)
  await r1.set(key, fetched('request 1, fetched before the revalidation'), setCtx)
  // Tag times are whole ms, rounded up: keep the revalidation out of the reads' ms.
  await sleep(2)
  await B().revalidateTag([TAG], { expire: 0 })
  await sleep(2)
  await r2.set(key, fetched('request 2, fetched before the revalidation'), setCtx)
  const later = await A().get(key, getCtx)
  assert.equal(
    later && bodyOf(later),
    null,
    'both regenerations began before the revalidation: the entry must be expired',
  )
  const elsewhere = await B().get(key, getCtx)
  assert.equal(elsewhere && bodyOf(elsewhere), null, 'on the other instance too')
}

describe('two regenerations of one key in one process, a revalidation before the second write', () => {
  test('leases off, both reads missed', async () => {
    const A = instance()
    const B = instance()
    await secondWriteAfterARevalidation(A, B, 'regen/miss', (got, m) => assert.equal(got, null, m))
  })

  test('leases off, both reads answered stale (a profile revalidation)', async () => {
    const A = instance()
    const B = instance()
    const key = 'regen/stale'
    await A().set(key, fetched('the old value'), setCtx)
    await sleep(2)
    await B().revalidateTag([TAG], { expire: 31_536_000 })
    await sleep(2)
    await secondWriteAfterARevalidation(A, B, key, (got, m) => {
      assert.ok(got, m)
      assert.ok(got.lastModified + 60_000 < now(), `${m}: Next sees it stale`)
    })
  })

  test('leases on, the second request falls back to regenerating after leaseWaitMs', async () => {
    const A = instance({ leases: true, leaseWaitMs: 50 })
    const B = instance({ leases: true, leaseWaitMs: 50 })
    await secondWriteAfterARevalidation(A, B, 'regen/lease', (got, m) => assert.equal(got, null, m))
  })
})

// docs/incremental.md leaves one case: Next regenerates on its own after a stall, and another
// read of the key answers stale or missing before that regeneration writes. For a page, Next's
// ResponseCache joins every read of the key in the process to the pending one (its getBatcher
// keeps the key pending until the regeneration ends), so only an on-demand revalidation reads
// it again. A fetch entry has no such join across requests: any concurrent request reads it.
describe('the case docs/incremental.md leaves, for a fetch entry', () => {
  test('a fresh answer that reached Next past its revalidate, then another request reads it', async () => {
    const A = instance()
    const B = instance()
    const key = 'regen/stalled'
    const ctx1 = { ...getCtx, revalidate: 1 }
    await A().set(key, { ...fetched('the old value'), revalidate: 1 }, setCtx)
    const r1 = A()
    const reading = r1.get(key, ctx1)
    // Between the handler's answer and Next's look at it, other work holds the event loop
    // for a whole revalidate (a stall): Next calls the answer stale and fetches again, in the
    // background of request 1.
    reading.then(() => {
      const end = now() + 1100
      while (now() < end);
    })
    const answered = await reading
    assert.ok(answered, 'answered')
    assert.ok(answered.lastModified + 1000 < now(), 'Next calls that answer stale')
    await B().revalidateTag([TAG], { expire: 0 })
    await sleep(2)
    assert.equal(await A().get(key, ctx1), null, 'request 2 finds it expired')
    await r1.set(
      key,
      { ...fetched('request 1, fetched before the revalidation'), revalidate: 1 },
      setCtx,
    )
    const later = await B().get(key, ctx1)
    assert.equal(
      later && bodyOf(later),
      null,
      "request 1's refetch began before the revalidation: the entry must be expired",
    )
  })
})
