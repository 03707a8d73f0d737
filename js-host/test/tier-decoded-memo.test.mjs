// The decoded value of a page served from the in-process tier is memoised alongside the tier's
// copy (incremental-handler.ts `decode`, store.ts `keepDecoded`), against a real redis-server:
// every hit gets a shape of its own, a rewrite is served at once, and the memo is charged to
// the tier's budget (`memoryBytes`), which evicts to make room for it.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createIncrementalCacheHandler, stats } from '../esm/index.mjs'
import { REDIS_CLUSTER, startTestRedis } from './helpers.mjs'

/** A hit without its `lastModified` (a fresh entry shows the time of each read). */
const sansTime = (hit) => ({ ...hit, lastModified: 0 })

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-tier-memo-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

const skip =
  REDIS_CLUSTER && 'page writes are not announced on Redis Cluster: pages are read from Redis there'
const kind = 'APP_PAGE'
const ctx = { kind, cacheControl: { revalidate: false, expire: undefined } }

function page(v, size = 64) {
  return {
    kind,
    html: `<p>${v}</p>`.padEnd(size, '.'),
    rscData: Buffer.from(`rsc ${v}`),
    headers: { 'x-v': v, 'set-cookie': ['a=1', 'b=2'] },
    status: 200,
    postponed: undefined,
    segmentData: new Map([['/_tree', Buffer.from(`tree ${v}`)]]),
  }
}

let seq = 0
/** A writer (no tier: its stats add nothing) and a reader following by push, own runtimes. */
function pair(memoryBytes) {
  seq += 1
  const base = { prefix: `memo${seq}`, deploymentId: 'd1', leaseWaitMs: 2000, ...redis.options }
  const W = createIncrementalCacheHandler({
    ...base,
    redisUrl: redis.url,
    memoryBytes: 0,
    connectTimeoutMs: 5000 + 2 * seq,
  })
  const R = createIncrementalCacheHandler({
    ...base,
    redisUrl: redis.url,
    tagSync: 'push',
    memoryBytes,
    connectTimeoutMs: 5001 + 2 * seq,
  })
  return { w: new W({}), r: new R({}) }
}

const gets = async () =>
  Number(
    /cmdstat_get:calls=(\d+)/.exec(String(await redis.command('INFO', 'commandstats')))?.[1] ?? 0,
  )
const memory = () => stats()?.memory ?? { bytes: 0, entries: 0 }

/** A get that sends no GET: served from the tier. */
async function tierHit(r, key) {
  const g = await gets()
  const e = await r.get(key, { kind })
  assert.equal(await gets(), g, `${key} served from the tier`)
  return e
}

/**
 * Reads `key` until it serves `html` from the tier (the write's announcement takes a moment to
 * arrive, and a copy kept before it is not served after it); bounded.
 */
async function until(r, key, html) {
  for (let i = 0; i < 2000; i++) {
    const g = await gets()
    if ((await r.get(key, { kind }))?.value?.html === html && (await gets()) === g) return
    await new Promise((res) => setImmediate(res))
  }
  assert.fail(`${key} never served ${html}`)
}

test(
  'two tier hits return equal values, and mutating one does not change the next',
  { skip },
  async () => {
    const { w, r } = pair(1 << 20)
    await w.set('/a', page('v1'), ctx)
    await until(r, '/a', page('v1').html)
    // A fresh entry shows the time of the read as its `lastModified`: compared apart.
    const first = await tierHit(r, '/a')
    const second = await tierHit(r, '/a')
    assert.deepEqual(sansTime(first), sansTime(second))
    assert.ok(second.lastModified >= first.lastModified)
    assert.notEqual(first.value, second.value)
    // Built apart from any hit: a hit sharing its containers with the memo would match itself.
    const expected = {
      lastModified: 0,
      value: page('v1'),
      cacheControl: { revalidate: false, expire: undefined },
    }
    assert.deepEqual(sansTime(second), expected)
    first.lastModified = 0
    first.value.html = 'bad'
    first.value.status = 500
    first.value.headers['x-v'] = 'bad'
    first.value.headers['set-cookie'].push('c=3')
    first.value.headers['x-new'] = 'bad'
    first.value.segmentData.set('/bad', Buffer.from('bad'))
    first.value.segmentData.delete('/_tree')
    delete first.value.rscData
    assert.deepEqual(sansTime(await tierHit(r, '/a')), expected)
    assert.deepEqual(sansTime(second), expected)
  },
)

test(
  'a rewrite is served, never the memo: own write and another process’s by push',
  { skip },
  async () => {
    const { w, r } = pair(1 << 20)
    await w.set('/b', page('v1'), ctx)
    await until(r, '/b', page('v1').html)
    assert.equal((await tierHit(r, '/b')).value.html, page('v1').html)
    await r.set('/b', page('own'), ctx)
    const own = await r.get('/b', { kind })
    assert.equal(own.value.html, page('own').html)
    assert.equal(own.value.headers['x-v'], 'own')
    assert.equal((await r.get('/b', { kind })).value.html, page('own').html)
    await w.set('/b', page('pushed'), ctx)
    await until(r, '/b', page('pushed').html)
    const pushed = await tierHit(r, '/b')
    assert.equal(pushed.value.headers['x-v'], 'pushed')
    assert.equal(pushed.value.segmentData.get('/_tree').toString(), 'tree pushed')
  },
)

test('the memo is charged to the tier and evicts at the budget', { skip }, async () => {
  const size = 4000
  // Two copies fit (about 2 x 4.2 KB); a copy with its memo's charge (over twice its size)
  // and another copy do not.
  const budget = 16_000
  const { w, r } = pair(budget)
  const m0 = memory()
  await w.set('/e1', page('e1', size), ctx)
  await w.set('/e2', page('e2', size), ctx)
  // Each ends with a tier hit, which memoises: /e1's memo, then /e2's copy, do not fit together.
  await until(r, '/e1', page('e1', size).html)
  await until(r, '/e2', page('e2', size).html)
  await tierHit(r, '/e2')
  const m1 = memory()
  const held = m1.bytes - m0.bytes
  assert.ok(held <= budget, `${held} bytes within ${budget}`)
  assert.equal(m1.entries - m0.entries, 1, '/e2 and its memo evicted /e1')
  assert.ok(held > 3 * size, `${held} bytes count the memo of /e2 (its copy ~${size})`)
  // /e1 is read from Redis again, kept (evicting /e2 and its memo), then memoised.
  const g = await gets()
  assert.equal((await r.get('/e1', { kind })).value.html, page('e1', size).html)
  assert.equal(await gets(), g + 1, '/e1 had been evicted')
  await tierHit(r, '/e1')
  const m2 = memory()
  assert.ok(m2.bytes - m0.bytes <= budget)
  assert.ok(m2.bytes - m0.bytes > 3 * size)
  assert.equal(m2.entries - m0.entries, 1)
})

test('memoryBytes 0: no tier, no memo, values still decoded per hit', { skip }, async () => {
  const { w, r } = pair(0)
  const m0 = memory()
  await w.set('/z', page('z'), ctx)
  const a = await r.get('/z', { kind })
  const b = await r.get('/z', { kind })
  assert.deepEqual(sansTime(a), sansTime(b))
  assert.notEqual(a.value, b.value)
  assert.deepEqual(memory(), m0)
})

// The charge counts 64 bytes per `,` of the JSON part and 1 KiB for the memo's own objects,
// while every segment of an APP_PAGE value adds a Buffer view and a Map entry to the memo: a
// page of many small segments is the shape most likely to keep more heap than it is charged.
test(
  'the memo of a page of many small segments keeps no more heap than it is charged',
  { skip: skip || (typeof globalThis.gc !== 'function' && 'needs node --expose-gc') },
  async () => {
    const n = 4000
    const many = {
      ...page('seg'),
      segmentData: new Map(Array.from({ length: n }, (_, i) => [`/${i}`, Buffer.from('x')])),
    }
    const { w, r } = pair(1 << 24)
    await w.set('/seg', many, ctx)
    // Reads until one adds a charge to the tier (bytes up, no entry added): that read made the
    // memo; the heap it leaves behind, once collected, is the memo's (its value is dropped).
    const heap = () => {
      globalThis.gc()
      return process.memoryUsage().heapUsed
    }
    let charged = 0
    let retained = 0
    for (let i = 0; i < 2000 && charged === 0; i++) {
      const m0 = memory()
      const h0 = heap()
      const got = await r.get('/seg', { kind })
      assert.equal(got?.value?.segmentData?.size, n)
      const m1 = memory()
      if (m1.entries === m0.entries && m1.bytes > m0.bytes) {
        charged = m1.bytes - m0.bytes
        retained = heap() - h0
      } else {
        await new Promise((res) => setImmediate(res))
      }
    }
    assert.ok(charged > 0, 'no read memoised the page')
    assert.ok(
      retained <= charged,
      `the memo keeps ${retained} bytes of heap, charged ${charged} (${n} segments)`,
    )
  },
)
