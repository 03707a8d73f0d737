// The 'use cache' handler against a real redis-server on a free loopback port, or a 3-master
// Redis Cluster with JS_REDIS_CLUSTER=1 (helpers.mjs, startTestRedis).
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'

import { createUseCacheHandler, ConfigError, close } from '../esm/index.mjs'
import {
  bytes,
  capture,
  crossingCounts,
  now,
  startTestRedis,
  text,
  useCacheEntry,
  assertServedStale,
  REDIS_CLUSTER,
} from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')

let redis
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-js-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

let seq = 0

/**
 * Two handlers with separate engines (tag mirrors) on one Redis stand in for two instances.
 * Runtimes are shared per configuration within a process, so each "instance" gets a
 * configuration that differs in a setting that does not matter here.
 */
function instance(extra = {}) {
  seq += 1
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'jstest',
    deploymentId: 'd1',
    connectTimeoutMs: 2000 + seq,
    // These tests look at Redis itself (values written or broken behind the handler's back,
    // outages): the in-process tier and leases are off; test/single-flight.test.mjs covers them.
    memoryBytes: 0,
    leases: false,
    ...redis.options,
    ...extra,
  })
}

const entry = (value, over = {}) =>
  useCacheEntry(value, { tags: ['products'], revalidate: 60, ...over })

function entryKey(name, key, deployment = 'd1') {
  return new wasm.Engine({ prefix: 'jstest', deployment }).entryKey(name, key)
}

describe('use-cache handler on Redis', () => {
  test('a value set on one instance is read on another, with its metadata', async () => {
    const a = instance()
    const b = instance()
    const e = entry('hello fleet')
    await a.set('k-roundtrip', Promise.resolve(e))
    await b.refreshTags()
    const got = await b.get('k-roundtrip', [])
    assert.ok(got, 'expected a hit on the second instance')
    assert.equal(await text(got.value), 'hello fleet')
    assert.deepEqual(got.tags, ['products'])
    assert.equal(got.timestamp, e.timestamp)
    assert.equal(got.revalidate, 60)
    assert.equal(got.expire, 3600)
    assert.equal(got.stale, 30)
    // Every get hands out a fresh stream.
    const again = await b.get('k-roundtrip', [])
    assert.equal(await text(again.value), 'hello fleet')
  })

  test('tags come back as set, from Redis and from the tier, again and again', async () => {
    // The answer's tags are read in place from the header the tier shares (not moved out of
    // it): a second and third hit of the same bytes must still see them.
    const long = Array.from({ length: 40 }, (_, i) => `tag-${String(i).padStart(4, '0')}`)
    // Non-ASCII tags come back in Next's percent-encoded form, the one Next 16.2.7 and later
    // send and the core keeps (docs/decisions/0020-tags-as-next-produces-them.md); the long
    // list (past 256 bytes) is decoded by the UTF-8 decoder, the others cut in JS.
    const cases = [
      ['k-tags-ascii', ['products', 'p-1'], ['products', 'p-1']],
      [
        'k-tags-utf8',
        ['produits', 'café', '日本'],
        ['produits', 'caf%C3%A9', '%E6%97%A5%E6%9C%AC'],
      ],
      ['k-tags-long', long, long],
      ['k-tags-none', [], []],
    ]
    const a = instance()
    const b = instance({ memoryBytes: 1 << 20 })
    for (const [key, tags] of cases) await a.set(key, Promise.resolve(entry(key, { tags })))
    await b.refreshTags()
    for (let round = 0; round < 3; round++) {
      for (const [key, , tags] of cases) {
        const got = await b.get(key, [])
        assert.ok(got, `${key}: a hit (round ${String(round)})`)
        assert.deepEqual(got.tags, tags, `${key}, round ${String(round)}`)
        assert.equal(await text(got.value), key)
      }
    }
  })

  test('a held copy replaced by a newer write shows its own payload and tags, not the last ones', async () => {
    // A hit on a copy held in this process (the tier's, the embedded store's) works out its
    // payload and tags once and shows them again at the next hit of the same bytes: a copy
    // replaced under the same key must not show what its predecessor showed.
    for (const [where, h] of [
      ['tier', instance({ memoryBytes: 1 << 20 })],
      ['embedded store', createUseCacheHandler({ prefix: 'jstest', deploymentId: 'held-memo' })],
    ]) {
      const key = `k-held-memo-${where}`
      // The first two are the same size with the same number of tags: the same layout.
      for (const [value, tags] of [
        ['first', ['memo-a']],
        ['other', ['memo-b']],
        ['third, longer', ['memo-c', 'memo-d']],
        ['4', []],
      ]) {
        await h.set(key, Promise.resolve(entry(value, { tags, timestamp: now() })))
        for (let round = 0; round < 3; round++) {
          const got = await h.get(key, [])
          assert.ok(got, `${where}, ${value}: a hit (round ${String(round)})`)
          assert.deepEqual(got.tags, tags, `${where}, ${value}, round ${String(round)}`)
          assert.equal(await text(got.value), value, `${where}, round ${String(round)}`)
        }
      }
    }
  })

  test('binary payloads survive byte for byte', async () => {
    const a = instance()
    const payload = Buffer.alloc(200_000)
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) & 0xff
    await a.set(
      'k-binary',
      Promise.resolve({
        ...entry(''),
        value: new ReadableStream({
          start(c) {
            c.enqueue(payload.subarray(0, 1000))
            c.enqueue(payload.subarray(1000))
            c.close()
          },
        }),
      }),
    )
    const got = await instance().get('k-binary', [])
    assert.ok(got)
    assert.ok((await bytes(got.value)).equals(payload))
  })

  test('immediate expiry on one instance is a miss on the other after refreshTags', async () => {
    const a = instance()
    const b = instance()
    await a.set('k-expire', Promise.resolve(entry('v1', { tags: ['t-expire'] })))
    await b.refreshTags()
    assert.ok(await b.get('k-expire', []))
    await a.updateTags(['t-expire'])
    // A miss on A at once (its own mirror), and on B after its per-request refresh.
    assert.equal(await a.get('k-expire', []), undefined)
    await b.refreshTags()
    assert.equal(await b.get('k-expire', []), undefined)
  })

  test('a profile revalidation makes the entry stale (served once, regenerated behind), not a miss', async () => {
    const a = instance()
    const b = instance()
    await a.set('k-stale', Promise.resolve(entry('v1', { tags: ['t-stale'] })))
    await a.updateTags(['t-stale'], { expire: 31536000 })
    await b.refreshTags()
    const got = await b.get('k-stale', [])
    assert.ok(got, 'a stale entry is still served')
    assertServedStale(got)
    assert.equal(await text(got.value), 'v1')
    // An entry written after the revalidation is fresh again.
    await a.set('k-stale', Promise.resolve(entry('v2', { tags: ['t-stale'] })))
    const fresh = await b.get('k-stale', [])
    assert.equal(fresh.revalidate, 60)
    assert.equal(await text(fresh.value), 'v2')
  })

  test('an entry counts as created when Next began generating it, not when it was written', async () => {
    // Next's startTime reaches set as `timestamp` (use-cache-wrapper collectResult); a
    // revalidation that resolves while the function runs leaves its result invalid.
    const a = instance()
    const b = instance()
    const began = now()
    await sleep(2)
    await b.updateTags(['t-began'], { expire: 0 })
    await sleep(2)
    await a.set('k-began', Promise.resolve(entry('v1', { tags: ['t-began'], timestamp: began })))
    await a.refreshTags()
    assert.equal(await a.get('k-began', []), undefined, 'expired on the writer')
    assert.equal(await b.get('k-began', []), undefined, 'and elsewhere')
  })

  test('{ expire: 0 } expires at once', async () => {
    const a = instance()
    const b = instance()
    await a.set('k-zero', Promise.resolve(entry('v1', { tags: ['t-zero'] })))
    await a.updateTags(['t-zero'], { expire: 0 })
    await b.refreshTags()
    assert.equal(await b.get('k-zero', []), undefined)
  })

  test('soft tags: a revalidated path is a miss through get and reported by getExpiration', async () => {
    const a = instance()
    const b = instance()
    const soft = ['_N_T_/layout', '_N_T_/products']
    await a.set('k-soft', Promise.resolve(entry('v1', { tags: [] })))
    await b.refreshTags()
    assert.ok(await b.get('k-soft', soft))
    assert.equal(await b.getExpiration(soft), 0)
    const before = now()
    await a.updateTags(['_N_T_/products'])
    await b.refreshTags()
    const exp = await b.getExpiration(soft)
    assert.ok(exp >= before, `getExpiration ${exp} should be at least ${before}`)
    assert.equal(await b.get('k-soft', soft), undefined)
    // Unrelated soft tags are unaffected.
    assert.ok(await b.get('k-soft', ['_N_T_/other']))
  })

  test('get waits for a set of the same key that is still in flight', async () => {
    const a = instance()
    let release
    const pending = new Promise((r) => {
      release = r
    })
    const setDone = a.set('k-pending', pending)
    const getting = a.get('k-pending', [])
    release(entry('late'))
    await setDone
    const got = await getting
    assert.ok(got, 'get must not miss while the set is in flight')
    assert.equal(await text(got.value), 'late')
  })

  test('deployments do not share entries, but they share tag revalidations', async () => {
    const x = instance({ deploymentId: 'deploy-x' })
    const y = instance({ deploymentId: 'deploy-y' })
    await x.set('k-deploy', Promise.resolve(entry('from x', { tags: ['t-deploy'] })))
    assert.equal(await y.get('k-deploy', []), undefined)
    await y.set('k-deploy', Promise.resolve(entry('from y', { tags: ['t-deploy'] })))
    await x.updateTags(['t-deploy'])
    await y.refreshTags()
    assert.equal(await y.get('k-deploy', []), undefined)
  })

  test('TTLs follow expire, and Infinity or the 0xfffffffe sentinel are capped', async () => {
    const a = instance({ maxTtlSeconds: 7200 })
    await a.set('k-ttl-60', Promise.resolve(entry('x', { expire: 60 })))
    await a.set('k-ttl-inf', Promise.resolve(entry('x', { expire: Infinity })))
    await a.set('k-ttl-sentinel', Promise.resolve(entry('x', { expire: 0xfffffffe })))
    const ttl = (k) => redis.command('PTTL', entryKey(wasm.Interface.useCache('default'), k))
    const t60 = await ttl('k-ttl-60')
    assert.ok(t60 > 55_000 && t60 <= 60_000, `PTTL ${t60}`)
    for (const k of ['k-ttl-inf', 'k-ttl-sentinel']) {
      const t = await ttl(k)
      assert.ok(t > 7_100_000 && t <= 7_200_000, `${k} PTTL ${t}`)
    }
  })

  test('corrupt, foreign and truncated values are misses, never throws', async () => {
    const a = instance()
    await a.set('k-victim', Promise.resolve(entry('good value')))
    const key = entryKey(wasm.Interface.useCache('default'), 'k-victim')
    const good = await redis.command('GET', key)
    assert.ok(good.startsWith('FLCE'))
    for (const bad of [
      '{"json":true}',
      '',
      'FLCE',
      good.slice(0, good.length - 3),
      'FLCE\u0009' + good.slice(5),
    ]) {
      await redis.command('SET', key, bad)
      assert.equal(
        await a.get('k-victim', []),
        undefined,
        `value ${JSON.stringify(bad.slice(0, 12))}`,
      )
    }
  })

  test('a cacheHandlers name `inc` is an ordinary use-cache key space, not the singular handler', async () => {
    const a = instance({ name: 'inc' })
    const b = instance({ name: 'inc' })
    await a.set('k-inc-name', Promise.resolve(entry('named inc')))
    const key = entryKey(wasm.Interface.useCache('inc'), 'k-inc-name')
    assert.match(key, /^jstest:d1:uc-inc:\{[0-9a-f]{32}\}:e$/)
    assert.equal(await redis.command('EXISTS', key), 1, 'stored under uc-inc')
    const inc = entryKey(wasm.Interface.incremental(), 'k-inc-name')
    assert.equal(await redis.command('EXISTS', inc), 0, 'nothing under the singular handler')
    const got = await b.get('k-inc-name', [])
    assert.ok(got, 'expected a hit')
    assert.equal(await text(got.value), 'named inc')
  })

  test('an entry stored under another key that hashes alike is not served', async () => {
    const a = instance()
    await a.set('k-owner', Promise.resolve(entry('owner')))
    const value = await redis.command(
      'GET',
      entryKey(wasm.Interface.useCache('default'), 'k-owner'),
    )
    await redis.command('SET', entryKey(wasm.Interface.useCache('default'), 'k-intruder'), value)
    assert.equal(await a.get('k-intruder', []), undefined)
  })
})

describe('reused read machines take their strings in place (reuseUseCacheTexts)', () => {
  test('keys of every shape read back their own entries through warm machines', async () => {
    const a = instance()
    const b = instance()
    // ASCII (written in place), not ASCII and longer than the texts area (passed as strings):
    // a reused machine must read the key each get names, whichever way it went last time.
    const keys = ['k-texts-ascii', 'k-texts-ключ', 'k-texts-' + 'x'.repeat(4000), 'k-texts-b']
    for (const k of keys) await a.set(k, Promise.resolve(entry('v:' + k.slice(0, 40))))
    await b.refreshTags()
    for (let round = 0; round < 3; round++) {
      for (const k of keys) {
        const got = await b.get(k, ['_N_T_/texts', '_N_T_/ü'])
        assert.ok(got, `round ${String(round)}: miss for ${k.slice(0, 40)}`)
        assert.equal(await text(got.value), 'v:' + k.slice(0, 40))
      }
    }
  })

  test('the soft tags written in place are judged: a revalidated path misses', async () => {
    const a = instance()
    const b = instance()
    await a.set('k-texts-soft', Promise.resolve(entry('v1', { tags: [] })))
    await b.refreshTags()
    // The machine is reused from the second get on.
    assert.ok(await b.get('k-texts-soft', ['_N_T_/texts-page']))
    assert.ok(await b.get('k-texts-soft', ['_N_T_/texts-page']))
    await a.updateTags(['_N_T_/texts-page'])
    await b.refreshTags()
    assert.equal(await b.get('k-texts-soft', ['_N_T_/texts-page']), undefined)
    assert.ok(await b.get('k-texts-soft', ['_N_T_/texts-other']))
  })

  test('the binding refuses lengths that overrun the texts area, and the machine is unchanged', () => {
    const engine = new wasm.Engine({ prefix: 'jstest', deployment: 'd1' })
    const iface = wasm.Interface.useCache('default')
    const m = wasm.ReadMachine.useCache(engine, iface, 'k', '', false, wasm.Consumer.Serves, 't', 1)
    const before = m.entryKey
    m.texts()
    assert.throws(
      () => m.reuseUseCacheTexts(engine, iface, 0, 0, 2049, false, wasm.Consumer.Serves, 2),
      { code: 'ERR_KEY_ILL_FORMED' },
    )
    assert.equal(m.entryKey, before)
    m.free()
  })

  test(
    'a tier hit and an embedded-store hit make one call into wasm each (tierHitTexts)',
    { skip: REDIS_CLUSTER && 'bench/crossings.mjs reads a single Redis URL' },
    async () => {
      const counts = crossingCounts(redis.url)
      // The copy's header was kept in the engine's index at an earlier hit: the engine answers
      // from it without a read (`Engine::read_tier_hit`).
      assert.deepEqual(counts.useCacheTierHit, { binding: 1, wasm: 1 })
      // The store's bytes judged the same way, in the same index: no `memoryTouch`, no read.
      assert.deepEqual(counts.useCacheEmbeddedHit, { binding: 1, wasm: 1 })
    },
  )
})

describe('a tier hit answered in one call (tierHitTexts)', () => {
  /** Calls of the binding's `tierHitTexts`, and how many it answered. */
  function spy() {
    const proto = wasm.ReadMachine.prototype
    const real = proto.tierHitTexts
    const seen = { asked: 0, answered: 0 }
    proto.tierHitTexts = function (...args) {
      const answered = real.apply(this, args)
      seen.asked += 1
      if (answered) seen.answered += 1
      return answered
    }
    return { seen, restore: () => (proto.tierHitTexts = real) }
  }

  test('still judges the tags and the soft tags: a revalidation since is a miss', async () => {
    const a = instance()
    const b = instance({ memoryBytes: 2 ** 20 })
    const { seen, restore } = spy()
    try {
      await a.set('k-one-call', Promise.resolve(entry('v1', { tags: ['t-one'] })))
      await a.set('k-one-soft', Promise.resolve(entry('v2', { tags: [] })))
      await b.refreshTags()
      const soft = ['_N_T_/one-page']
      // From Redis, then (the copy kept, its header too) from the tier, in one call.
      for (let i = 0; i < 3; i++) {
        assert.equal(await text((await b.get('k-one-call', soft)).value), 'v1')
        assert.equal(await text((await b.get('k-one-soft', soft)).value), 'v2')
      }
      assert.ok(seen.answered >= 2, `answered in one call: ${JSON.stringify(seen)}`)
      await a.updateTags(['t-one'])
      await a.updateTags(['_N_T_/one-page'])
      await b.refreshTags()
      const asked = seen.asked
      const answered = seen.answered
      assert.equal(await b.get('k-one-call', []), undefined)
      assert.equal(await b.get('k-one-soft', soft), undefined)
      // Asked, and declined: the read that followed judged the copy expired.
      assert.equal(seen.asked, asked + 2)
      assert.equal(seen.answered, answered)
      // The soft tag is this read's: another page's read of the same entry still hits.
      assert.equal(await text((await b.get('k-one-soft', ['_N_T_/other'])).value), 'v2')
    } finally {
      restore()
    }
  })

  test('from the embedded store, still judges the tags', async () => {
    const h = createUseCacheHandler({
      prefix: 'jstest',
      deploymentId: 'one-call-embedded',
      memoryBytes: 2 ** 20,
    })
    const { seen, restore } = spy()
    try {
      await h.set('k-one-emb', Promise.resolve(entry('v1', { tags: ['t-one-emb'] })))
      for (let i = 0; i < 3; i++) {
        assert.equal(await text((await h.get('k-one-emb', [])).value), 'v1')
      }
      assert.ok(seen.answered >= 2, `answered in one call: ${JSON.stringify(seen)}`)
      await h.updateTags(['t-one-emb'])
      const { asked, answered } = { ...seen }
      assert.equal(await h.get('k-one-emb', []), undefined)
      assert.deepEqual(seen, { asked: asked + 1, answered })
    } finally {
      restore()
    }
  })

  test('is not asked while this process writes the key: the read sees its own write', async () => {
    const b = instance({ memoryBytes: 2 ** 20 })
    const { seen, restore } = spy()
    try {
      await b.set('k-one-own', Promise.resolve(entry('v1')))
      for (let i = 0; i < 3; i++) await b.get('k-one-own', [])
      let resolve = () => undefined
      const pending = new Promise((r) => (resolve = r))
      const writing = b.set('k-one-own', pending)
      const asked = seen.asked
      const got = b.get('k-one-own', [])
      resolve(entry('v2'))
      assert.equal(await text((await got).value), 'v2')
      await writing
      assert.equal(seen.asked, asked)
    } finally {
      restore()
    }
  })
})

describe('use-cache handler when Redis is unreachable', () => {
  test('get misses quickly, refreshTags and updateTags resolve', async () => {
    const dead = createUseCacheHandler({
      redisUrl: 'redis://127.0.0.1:1',
      prefix: 'jstest',
      deploymentId: 'dead',
      connectTimeoutMs: 300,
      commandTimeoutMs: 300,
    })
    const t0 = Date.now()
    assert.equal(await dead.get('k', []), undefined)
    await dead.refreshTags()
    await dead.updateTags(['x'])
    await dead.set('k', Promise.resolve(entry('v')))
    assert.ok(Date.now() - t0 < 5000, 'calls on a dead Redis must not hang')
  })
})

describe('in-process store (no Redis URL)', () => {
  test('the warning names where the missing URL was looked for', async () => {
    const saved = { url: process.env.REDIS_URL, prefix: process.env.FLEETCACHE_PREFIX }
    try {
      process.env.REDIS_URL = 'redis://127.0.0.1:1'
      // Options given in code replace the environment: its REDIS_URL does not apply.
      const inCode = await capture(async () => {
        createUseCacheHandler({ prefix: 'jstest-warn', deploymentId: 'code' })
      })
      assert.ok(
        inCode.some((l) => l.includes('no redisUrl in the options given in code')),
        inCode.join('\n'),
      )
      assert.ok(!inCode.some((l) => l.includes('no REDIS_URL set')), inCode.join('\n'))
      delete process.env.REDIS_URL
      process.env.FLEETCACHE_PREFIX = 'jstest-warn-env'
      const fromEnv = await capture(async () => {
        createUseCacheHandler()
      })
      assert.ok(
        fromEnv.some((l) => l.includes('no REDIS_URL set: using an in-process store')),
        fromEnv.join('\n'),
      )
    } finally {
      for (const [k, v] of [
        ['REDIS_URL', saved.url],
        ['FLEETCACHE_PREFIX', saved.prefix],
      ]) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    }
  })

  test('set, get and a local revalidation', async () => {
    const m = createUseCacheHandler({ prefix: 'jstest', deploymentId: 'mem' })
    await m.set('k-mem', Promise.resolve(entry('in memory', { tags: ['t-mem'] })))
    const got = await m.get('k-mem', [])
    assert.equal(await text(got.value), 'in memory')
    await m.updateTags(['t-mem'])
    assert.equal(await m.get('k-mem', []), undefined)
  })

  test('the byte budget evicts the least recently used entries', async () => {
    const m = createUseCacheHandler({
      prefix: 'jstest',
      deploymentId: 'mem-small',
      // Room for two entries of ~1.6 KB with what each costs besides (~700 B), not three.
      memoryBytes: 6000,
    })
    const big = 'x'.repeat(1500)
    await m.set('k1', Promise.resolve(entry(big)))
    await m.set('k2', Promise.resolve(entry(big)))
    assert.ok(await m.get('k1', []))
    await m.set('k3', Promise.resolve(entry(big)))
    assert.equal(await m.get('k2', []), undefined, 'k2 was least recently used')
    assert.ok(await m.get('k1', []))
    assert.ok(await m.get('k3', []))
  })
})

describe('package entry points', () => {
  test('ESM import and CommonJS require of fleetcache/use-cache give one handler', async () => {
    const esm = (await import('../esm/use-cache.mjs')).default
    const cjs = require('../dist/use-cache.js')
    assert.equal(esm, cjs)
    for (const m of ['get', 'set', 'refreshTags', 'getExpiration', 'updateTags']) {
      assert.equal(typeof esm[m], 'function', m)
    }
  })

  test('invalid configuration names the setting', () => {
    assert.throws(
      () => createUseCacheHandler({ redisUrl: 'http://x' }),
      (e) => {
        return e instanceof ConfigError && /redisUrl/.test(e.message)
      },
    )
    assert.throws(() => createUseCacheHandler({ prefix: 'has space' }), /prefix/)
    assert.throws(() => createUseCacheHandler({ memoryBytes: -1 }), /memoryBytes/)
  })
})
