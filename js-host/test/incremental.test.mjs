// The singular cacheHandler (fleetcache/incremental) against a real redis-server, or a 3-master
// Redis Cluster with JS_REDIS_CLUSTER=1 (helpers.mjs, startTestRedis).
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import { crossingCounts, fetchValue, REDIS_CLUSTER, startTestRedis } from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')
// `planIncrementalEntry` is in the tools module (docs/decisions/0028-wasm-size-budget.md).
const tools = require('../wasm/tools/node/fleetcache_wasm.js')
const { plannedEntry } = require('../dist/packed.js')

let redis
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-inc-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

const now = () => performance.timeOrigin + performance.now()
let seq = 0

function options(extra = {}) {
  seq += 1
  // A distinct setting per "instance" gives it its own runtime (engine, mirror, connection).
  return {
    redisUrl: redis.url,
    prefix: 'inctest',
    deploymentId: 'd1',
    // These tests look at Redis itself (values written or broken behind the handler's back,
    // outages): the in-process tier and leases are off; test/single-flight.test.mjs covers them.
    memoryBytes: 0,
    leases: false,
    connectTimeoutMs: 3000 + seq,
    ...redis.options,
    ...extra,
  }
}

/** One simulated server instance: Next constructs the class per request, so do we. */
function instance(extra = {}) {
  const Handler = createIncrementalCacheHandler(options(extra))
  return { Handler, h: () => new Handler({ dev: false, revalidatedTags: [] }) }
}

function entryKey(key) {
  return new wasm.Engine({ prefix: 'inctest', deployment: 'd1' }).entryKey(
    wasm.Interface.incremental(),
    key,
  )
}

const rand = (n) => crypto.randomBytes(n)
const cc = (revalidate, expire) => ({ revalidate, expire })

/** Every value kind Next 16 stores, with binary content that JSON would mangle. */
function values() {
  const tags = '_N_T_/layout,_N_T_/products/layout,_N_T_/products/page,_N_T_/products,products'
  return {
    APP_PAGE: {
      kind: 'APP_PAGE',
      html: '<!DOCTYPE html><html><body>héllo ✓ "quotes" \u0000</body></html>',
      rscData: rand(3000),
      headers: { 'x-nextjs-stale-time': '30', 'x-next-cache-tags': tags },
      postponed: JSON.stringify({ state: 'x'.repeat(2000) }),
      status: 200,
      segmentData: new Map([
        ['/_tree', rand(100)],
        ['/_full', rand(0)],
        ['/products/__PAGE__', rand(5000)],
      ]),
    },
    APP_PAGE_MINIMAL: {
      kind: 'APP_PAGE',
      html: '',
      rscData: undefined,
      headers: undefined,
      postponed: undefined,
      status: undefined,
      segmentData: undefined,
    },
    PAGES: {
      kind: 'PAGES',
      html: '<div>isr</div>',
      pageData: { pageProps: { n: 1, nested: { a: [1, 'two', null] } }, __N_SSG: true },
      headers: undefined,
      status: undefined,
    },
    APP_ROUTE: {
      kind: 'APP_ROUTE',
      body: rand(10_000),
      status: 201,
      headers: { 'content-type': 'application/octet-stream', 'x-next-cache-tags': 'route-tag' },
    },
    FETCH: fetchValue(['products']),
    REDIRECT: { kind: 'REDIRECT', props: { redirect: { destination: '/x', permanent: false } } },
    IMAGE: {
      kind: 'IMAGE',
      etag: 'W/"abc"',
      upstreamEtag: '"up"',
      buffer: rand(20_000),
      extension: 'webp',
      revalidate: 60,
      isMiss: false,
      isStale: false,
    },
  }
}

function ctxFor(value, cacheControl = cc(60, 3600)) {
  if (value?.kind === 'FETCH') return { fetchCache: true, tags: value.tags ?? [], fetchIdx: 0 }
  return { kind: value?.kind ?? 'PAGES', isRoutePPREnabled: false, isFallback: false, cacheControl }
}

function getCtx(value) {
  if (value?.kind === 'FETCH')
    return { kind: 'FETCH', revalidate: 60, tags: value.tags, softTags: ['_N_T_/layout'] }
  return { kind: value?.kind ?? 'PAGES', isRoutePPREnabled: false, isFallback: false }
}

async function scriptVersion() {
  const v = await redis.command('HGET', 'inctest:tags:{inctest}:meta', 'ver')
  return v === null ? 0 : Number(v)
}

describe('incremental handler on Redis', () => {
  test('every value kind written on A comes back byte for byte on B', async () => {
    const A = instance()
    const B = instance()
    for (const [name, value] of Object.entries(values())) {
      const key = `/route-cache/${name}/k`
      await A.h().set(key, value, ctxFor(value))
      const got = await B.h().get(key, getCtx(value))
      assert.ok(got, `${name}: miss on B`)
      assert.deepStrictEqual(got.value, value, `${name} differs after the round trip`)
      assert.ok(Math.abs(got.lastModified - now()) < 5000)
      if (value.kind === 'APP_PAGE' && value.rscData) {
        assert.ok(Buffer.isBuffer(got.value.rscData), 'rscData must be a real Buffer')
        assert.ok(got.value.segmentData instanceof Map, 'segmentData must be a real Map')
        for (const seg of got.value.segmentData.values()) assert.ok(Buffer.isBuffer(seg))
      }
      if (value.kind === 'APP_ROUTE') assert.ok(Buffer.isBuffer(got.value.body))
      if (value.kind === 'IMAGE') assert.ok(Buffer.isBuffer(got.value.buffer))
      if (value.kind === 'FETCH') assert.equal(got.cacheControl, undefined)
      else assert.deepStrictEqual(got.cacheControl, cc(60, 3600))
    }
  })

  test('a cached not-found (null) round-trips', async () => {
    const A = instance()
    await A.h().set('/route-cache/PAGES/nf', null, ctxFor(null, cc(30, 300)))
    const got = await instance().h().get('/route-cache/PAGES/nf', getCtx(null))
    assert.ok(got)
    assert.equal(got.value, null)
    assert.deepStrictEqual(got.cacheControl, cc(30, 300))
  })

  test('the stored cacheControl is returned, including revalidate false and no expire', async () => {
    const A = instance()
    const v = values().APP_PAGE
    await A.h().set('/cc/false', v, ctxFor(v, { revalidate: false, expire: undefined }))
    const got = await instance().h().get('/cc/false', getCtx(v))
    assert.deepStrictEqual(got.cacheControl, { revalidate: false, expire: undefined })
    await A.h().set('/cc/sentinel', v, ctxFor(v, cc(10, 0xfffffffe)))
    const got2 = await instance().h().get('/cc/sentinel', getCtx(v))
    assert.deepStrictEqual(got2.cacheControl, cc(10, 0xfffffffe))
  })

  test('TTLs: from expire, or the configured default without any limit', async () => {
    const A = instance({ defaultTtlSeconds: 120 })
    const v = values().APP_ROUTE
    await A.h().set('/ttl/expire', v, ctxFor(v, cc(60, 3600)))
    const t1 = Number(await redis.command('PTTL', entryKey('/ttl/expire')))
    assert.ok(t1 > 3_590_000 && t1 <= 3_600_000, `PTTL ${t1}`)
    await A.h().set('/ttl/none', v, ctxFor(v, { revalidate: false, expire: undefined }))
    const t2 = Number(await redis.command('PTTL', entryKey('/ttl/none')))
    assert.ok(t2 > 110_000 && t2 <= 120_000, `PTTL ${t2}`)
    // revalidate 0 is dynamic: nothing is stored.
    await A.h().set('/ttl/zero', v, ctxFor(v, cc(0, 3600)))
    assert.equal(await redis.command('EXISTS', entryKey('/ttl/zero')), 0)
  })

  test('tags from x-next-cache-tags: expiry on A is a miss on B', async () => {
    const A = instance()
    const B = instance()
    const v = values().APP_PAGE
    await A.h().set('/tags/expire', v, ctxFor(v))
    assert.ok(await B.h().get('/tags/expire', getCtx(v)))
    await A.h().revalidateTag(['products'])
    assert.equal(await B.h().get('/tags/expire', getCtx(v)), null)
    // Implicit tags in the header: revalidatePath reaches the entry.
    await A.h().set('/tags/path', v, ctxFor(v))
    assert.ok(await B.h().get('/tags/path', getCtx(v)))
    await A.h().revalidateTag('_N_T_/products')
    assert.equal(await B.h().get('/tags/path', getCtx(v)), null)
  })

  test('a profile revalidation is served stale: lastModified past revalidate, within expire', async () => {
    const A = instance()
    const B = instance()
    const v = values().APP_ROUTE
    await A.h().set('/tags/stale', v, ctxFor(v, cc(60, 3600)))
    await A.h().revalidateTag(['route-tag'], { expire: 31_536_000 })
    const got = await B.h().get('/tags/stale', getCtx(v))
    assert.ok(got, 'a stale entry must still be served')
    const t = now()
    assert.ok(got.lastModified + 60_000 < t, 'Next must see it past its revalidate window')
    assert.ok(got.lastModified + 3_600_000 >= t, 'but not past expire')
    assert.deepStrictEqual(got.cacheControl, cc(60, 3600))
    assert.deepStrictEqual(got.value.body, v.body)
    // { expire: 0 }: expired at once.
    await A.h().revalidateTag(['route-tag'], { expire: 0 })
    assert.equal(await B.h().get('/tags/stale', getCtx(v)), null)
  })

  test('a stale entry without a revalidate limit is shown with revalidate 1', async () => {
    const A = instance()
    const v = values().APP_PAGE
    await A.h().set('/tags/stale-false', v, ctxFor(v, { revalidate: false, expire: undefined }))
    await A.h().revalidateTag(['products'], { expire: 31_536_000 })
    const got = await instance().h().get('/tags/stale-false', getCtx(v))
    assert.deepStrictEqual(got.cacheControl, { revalidate: 1, expire: undefined })
    assert.ok(got.lastModified + 1000 < now())
  })

  test('an entry counts as created when its regeneration began: a revalidation during it is kept', async () => {
    // Next reads (a miss or a stale entry), renders, then writes; a
    // revalidation that resolves on another instance while it renders must leave the written
    // entry invalid, not fresh.
    const A = instance()
    const B = instance()
    const v = values().APP_ROUTE
    const during = async (key, revalidate) => {
      // Not within the ms of the previous revalidation (tag times are whole ms, rounded up).
      await sleep(2)
      const began = now()
      assert.equal(await A.h().get(key, getCtx(v)), null, 'a miss: Next regenerates')
      await sleep(2)
      if (revalidate) await revalidate()
      await sleep(2)
      await A.h().set(key, v, ctxFor(v, cc(60, 3600)))
      return began
    }
    await during('/regen/expire', () => B.h().revalidateTag(['route-tag'], { expire: 0 }))
    assert.equal(await B.h().get('/regen/expire', getCtx(v)), null, 'expired, not fresh')
    assert.equal(await A.h().get('/regen/expire', getCtx(v)), null, 'on the writer too')

    await during('/regen/max', () => B.h().revalidateTag(['route-tag'], { expire: 31_536_000 }))
    const stale = await B.h().get('/regen/max', getCtx(v))
    assert.ok(stale.lastModified + 60_000 < now(), 'stale: Next regenerates it again')

    // Nothing revalidated meanwhile: fresh, created when the regeneration began.
    const began = await during('/regen/none')
    const fresh = await B.h().get('/regen/none', getCtx(v))
    assert.ok(fresh.lastModified >= began && fresh.lastModified + 60_000 > now(), 'fresh')

    // FETCH: the fetch cache reads before it fetches too.
    const f = values().FETCH
    const fctx = { kind: 'FETCH', revalidate: 60, tags: ['products'], softTags: [] }
    assert.equal(await A.h().get('/regen/fetch', fctx), null)
    await sleep(2)
    await B.h().revalidateTag(['products'])
    await sleep(2)
    await A.h().set('/regen/fetch', f, { fetchCache: true, tags: ['products'], fetchIdx: 0 })
    assert.equal(await B.h().get('/regen/fetch', fctx), null, 'expired, not fresh')
  })

  test('FETCH: tags from ctx.tags on set, soft tags from ctx.softTags on get', async () => {
    const A = instance()
    const B = instance()
    const v = { ...values().FETCH, tags: undefined }
    delete v.tags
    await A.h().set('fetch-key', v, { fetchCache: true, tags: ['f-tag'] })
    const ctx = { kind: 'FETCH', revalidate: 60, tags: ['f-tag'], softTags: ['_N_T_/f'] }
    assert.ok(await B.h().get('fetch-key', ctx))
    await A.h().revalidateTag(['_N_T_/f'])
    assert.equal(await B.h().get('fetch-key', ctx), null, 'soft tag expiry')
    await A.h().set('fetch-key', v, { fetchCache: true, tags: ['f-tag'] })
    await A.h().revalidateTag(['f-tag'], { expire: 600 })
    const stale = await B.h().get('fetch-key', { ...ctx, softTags: [] })
    assert.ok(stale)
    assert.ok((now() - stale.lastModified) / 1000 > 60, 'Next must see the fetch as stale')
    // The stored tag alone (the get ctx naming none) is enough.
    await A.h().revalidateTag(['f-tag'])
    assert.equal(await B.h().get('fetch-key', { kind: 'FETCH', revalidate: 60 }), null)
  })

  test('kind mismatches and corrupt values are misses, never throws', async () => {
    const A = instance()
    const v = values().APP_ROUTE
    await A.h().set('/mismatch', v, ctxFor(v))
    assert.equal(await A.h().get('/mismatch', { kind: 'FETCH', tags: [], softTags: [] }), null)
    await redis.command('SET', entryKey('/corrupt'), 'not an envelope')
    assert.equal(await A.h().get('/corrupt', getCtx(v)), null)
    // A valid envelope whose JSON part is damaged.
    await A.h().set('/bad-json', v, ctxFor(v))
    const engine = new tools.Engine({ prefix: 'inctest', deployment: 'd1' })
    const { header } = plannedEntry(
      engine.planIncrementalEntry(
        '/bad-json',
        3,
        0,
        0,
        '',
        60,
        3600,
        Uint32Array.from([3, 1]),
        now(),
      ),
    )
    const client = await redis.client()
    try {
      await client.set(entryKey('/bad-json'), Buffer.concat([header, Buffer.from('{x}b')]))
    } finally {
      await client.close()
    }
    assert.equal(await A.h().get('/bad-json', getCtx(v)), null)
    // Values Next would never hand over are logged and skipped, not thrown.
    await A.h().set('/weird', { kind: 'NOPE' }, ctxFor(v))
    await A.h().set('/weird', { kind: 'APP_ROUTE', body: 'not a buffer' }, ctxFor(v))
    assert.equal(await A.h().get('/weird', getCtx(v)), null)
  })

  test('one revalidation seen by updateTags and revalidateTag writes Redis once', async () => {
    const opts = options()
    const useCache = createUseCacheHandler(opts)
    const Inc = createIncrementalCacheHandler(opts)
    const before = await scriptVersion()
    // What Next 16.4 does: updateTags on every cacheHandlers object, then revalidateTag,
    // all started in the same tick and awaited together. The handlers' first calls: each
    // sets its handler up synchronously, which took over 10 ms on a loaded machine, and the
    // pair was written twice while it had to come within 10 ms (decision 0005).
    await Promise.all([
      useCache.updateTags(['dedupe'], { expire: 300 }),
      new Inc().revalidateTag(['dedupe'], { expire: 300 }),
    ])
    assert.equal((await scriptVersion()) - before, 1, 'expected exactly one TAG_UPDATE')
    // The same with 50 ms of synchronous work between the two reports, in the same run.
    const slow = await scriptVersion()
    await Promise.all([
      useCache.updateTags(['dedupe-slow'], { expire: 300 }),
      (() => {
        const until = performance.now() + 50
        while (performance.now() < until);
        return new Inc().revalidateTag(['dedupe-slow'], { expire: 300 })
      })(),
    ])
    assert.equal((await scriptVersion()) - slow, 1, 'a slow run: expected exactly one TAG_UPDATE')
    // Another event later (or other durations) is written.
    await new Inc().revalidateTag(['dedupe'])
    assert.equal((await scriptVersion()) - before, 3)
    // Without a use-cache handler in front, revalidateTag writes by itself.
    await new Inc().revalidateTag(['dedupe-alone'], { expire: 300 })
    assert.equal((await scriptVersion()) - before, 4)
  })

  test('two revalidations of the same tag are two writes, however close', async () => {
    // A revalidation the singular handler recorded itself made a second one of the
    // same tags within 10 ms look like its second report, and the second was never written: a
    // page whose regeneration began between the two then read as fresh after the second.
    const opts = options()
    const useCache = createUseCacheHandler(opts)
    const Inc = createIncrementalCacheHandler(opts)
    const before = await scriptVersion()
    // The singular handler alone, twice in a row: back to back, with no await between them.
    await Promise.all([
      new Inc().revalidateTag(['close'], { expire: 300 }),
      new Inc().revalidateTag(['close'], { expire: 300 }),
    ])
    assert.equal((await scriptVersion()) - before, 2, 'the singular handler alone')
    // Two requests' revalidations through both interfaces, in two runs a moment apart.
    for (let i = 0; i < 2; i++) {
      await Promise.all([
        useCache.updateTags(['close'], { expire: 300 }),
        new Inc().revalidateTag(['close'], { expire: 300 }),
      ])
    }
    assert.equal((await scriptVersion()) - before, 4, 'one write per revalidation')
    // One run reporting the same revalidation to updateTags, then twice to revalidateTag: the
    // second report to revalidateTag is another event.
    await Promise.all([
      useCache.updateTags(['close'], { expire: 300 }),
      new Inc().revalidateTag(['close'], { expire: 300 }),
      new Inc().revalidateTag(['close'], { expire: 300 }),
    ])
    assert.equal((await scriptVersion()) - before, 6)
  })

  test('the class is constructed per request but shares one runtime', async () => {
    const { Handler } = instance()
    const v = values().PAGES
    await new Handler().set('/shared', v, ctxFor(v))
    assert.deepStrictEqual((await new Handler().get('/shared', getCtx(v))).value, v)
    const h = new Handler()
    assert.equal(h.resetRequestCache(), undefined)
  })
})

describe('reused read machines take their strings in place (reuseIncrementalTexts)', () => {
  test('keys and soft tags of every shape read back their own entries through warm machines', async () => {
    const A = instance()
    const B = instance()
    // ASCII (written in place), not ASCII and longer than the texts area (passed as strings),
    // for the key and for a FETCH read's soft tags: a reused machine must read the key and
    // judge the tags each get names, whichever way it went last time.
    const keys = ['inc-texts-a', 'inc-texts-ключ', 'inc-texts-' + 'x'.repeat(4000), 'inc-texts-b']
    const fetchValue = (k) => ({
      ...values().FETCH,
      data: { ...values().FETCH.data, body: Buffer.from(k.slice(0, 40)).toString('base64') },
    })
    for (const k of keys) {
      await A.h().set(k, fetchValue(k), { fetchCache: true, tags: ['f-texts'] })
    }
    const softs = [['_N_T_/texts'], ['_N_T_/ü'], ['_N_T_/' + 'y'.repeat(3000)], []]
    const b = B.h()
    for (let round = 0; round < 3; round++) {
      for (const [i, k] of keys.entries()) {
        const ctx = { kind: 'FETCH', revalidate: 60, tags: ['f-texts'], softTags: softs[i] }
        const got = await b.get(k, ctx)
        assert.ok(got, `round ${String(round)}: miss for ${k.slice(0, 40)}`)
        assert.equal(
          Buffer.from(got.value.data.body, 'base64').toString(),
          k.slice(0, 40),
          `round ${String(round)}: ${k.slice(0, 40)}`,
        )
      }
    }
  })

  test('the soft tags written in place are judged: a revalidated path misses', async () => {
    const A = instance()
    const B = instance()
    const v = { ...values().FETCH }
    delete v.tags
    await A.h().set('inc-texts-soft', v, { fetchCache: true, tags: ['f-soft'] })
    const ctx = (path) => ({ kind: 'FETCH', revalidate: 60, tags: ['f-soft'], softTags: [path] })
    const b = B.h()
    // The machine is reused from the second get on.
    assert.ok(await b.get('inc-texts-soft', ctx('_N_T_/texts-page')))
    assert.ok(await b.get('inc-texts-soft', ctx('_N_T_/texts-page')))
    await A.h().revalidateTag(['_N_T_/texts-page'])
    assert.equal(await b.get('inc-texts-soft', ctx('_N_T_/texts-page')), null)
    assert.ok(await b.get('inc-texts-soft', ctx('_N_T_/texts-other')))
  })

  test('the binding refuses lengths that overrun the texts area, and the machine is unchanged', () => {
    const engine = new wasm.Engine({ prefix: 'inctest', deployment: 'd1' })
    const serves = wasm.Consumer.Serves
    const m = wasm.ReadMachine.incremental(engine, 'k', false, '', NaN, serves, false, 't', 1)
    const before = m.entryKey
    m.texts()
    assert.throws(
      () => m.reuseIncrementalTexts(engine, 0, 2049, 0, false, NaN, serves, false, 0, 2),
      {
        code: 'ERR_KEY_ILL_FORMED',
      },
    )
    assert.equal(m.entryKey, before)
    m.free()
  })

  test(
    'a push page hit from the tier makes one call into wasm: the reuse, which starts the read (the index keeps the header)',
    { skip: REDIS_CLUSTER && 'bench/crossings.mjs reads a single Redis URL' },
    async () => {
      const counts = crossingCounts(redis.url)
      assert.deepEqual(counts.incrementalTierHit, { binding: 1, wasm: 1 })
    },
  )
})

describe('incremental handler without a reachable Redis', () => {
  test('during next build it does not wait for Redis at all', async () => {
    const prev = process.env.NEXT_PHASE
    process.env.NEXT_PHASE = 'phase-production-build'
    try {
      // A port nothing listens on, and a connect budget that would show up if it were used.
      const Handler = createIncrementalCacheHandler({
        redisUrl: 'redis://127.0.0.1:1',
        prefix: 'build',
        connectTimeoutMs: 5000,
      })
      const v = values().FETCH
      const t0 = Date.now()
      const h = new Handler()
      assert.equal(await h.get('k', getCtx(v)), null)
      await h.set('k', v, ctxFor(v))
      // The build-phase store is in-process: entries are reused within the worker.
      assert.deepStrictEqual((await h.get('k', getCtx(v))).value, v)
      await h.revalidateTag(['products'])
      // Never waits for Redis: less than the one connect budget that waiting would cost.
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`)
    } finally {
      if (prev === undefined) delete process.env.NEXT_PHASE
      else process.env.NEXT_PHASE = prev
    }
  })

  test('at run time get misses within its budget and never throws', async () => {
    const Handler = createIncrementalCacheHandler({
      redisUrl: 'redis://127.0.0.1:1',
      prefix: 'down',
      connectTimeoutMs: 300,
      commandTimeoutMs: 200,
    })
    const t0 = Date.now()
    assert.equal(await new Handler().get('k', { kind: 'PAGES' }), null)
    await new Handler().set('k', values().PAGES, ctxFor(values().PAGES))
    await new Handler().revalidateTag('x')
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`)
  })
})

describe('package entry point fleetcache/incremental', () => {
  test('ESM import and CommonJS require give the same class', async () => {
    const esm = (await import('../esm/incremental.mjs')).default
    const cjs = require('../dist/incremental.js')
    assert.equal(esm, cjs)
    assert.equal(typeof esm, 'function')
    const h = new esm({})
    for (const m of ['get', 'set', 'revalidateTag', 'resetRequestCache'])
      assert.equal(typeof h[m], 'function')
  })
})
