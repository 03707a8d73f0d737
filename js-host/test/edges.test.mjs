// Freshness at the edges, on a real redis-server, with two instances (handler sets with their
// own engines) in one process: an entry and a revalidation of 10,000 tags, tags of characters
// with a meaning elsewhere (`:`, `{`, `}`, spaces, `_N_T_`, a lone surrogate, NFC and NFD), a
// tag update whose reply is lost, the event loop stalled past the 1 s push bound, and a flush
// between a regeneration's read and its write. A stall while replies are on their way times
// out no command: event-loop-stall.test.mjs.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, beforeEach, describe, test } from 'node:test'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import {
  fetchValue,
  instanceOptions,
  now,
  requestInstances,
  startHoldingProxy,
  startTestRedis,
  TAGGED_PAGE_CTX as pageCtx,
  taggedPage as page,
  text,
  useCacheEntry,
} from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-edges-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

// Each test has a tag state of its own: a new instance judges nothing tagged fresh until it
// has loaded the state, which another test's 20,000 tags would make take several calls.
let seq = 0
let ns = 'edges'
beforeEach(() => {
  seq += 1
  ns = `edges${String(seq)}`
})

const useCache = (extra) => createUseCacheHandler(instanceOptions(redis, ns, extra))
const incremental = (extra) => requestInstances(createIncrementalCacheHandler, redis, ns, extra)
const numbered = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}${String(i)}`)
const tagKey = (what) => `${ns}:tags:{${ns}}:${what}`

/** Blocks the event loop for `ms`, as a long synchronous render does. */
function block(ms) {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // busy: nothing else of this process runs
  }
}

/**
 * Waits until the clock is past the ms it is at: tag times are whole ms, rounded up, so what is
 * written in the ms of a revalidation counts as written before it.
 */
async function nextMs() {
  const ms = Math.floor(now())
  while (Math.floor(now()) === ms) await new Promise((r) => setImmediate(r))
}

/** Polls Redis (not a sleep: the condition is what is waited for) until `check` holds. */
async function untilRedis(check, what) {
  for (let i = 0; i < 500; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 10))
  }
  assert.fail(`never: ${what}`)
}

describe('ten thousand tags', () => {
  test("a 'use cache' entry with 10,000 tags, and one revalidation of 10,000 tags", async () => {
    const [a, b] = [useCache(), useCache()]
    const tags = numbered(10_000, 'uc-')
    await a.set('k-10k', Promise.resolve(useCacheEntry('many', { tags })))
    await b.refreshTags()
    const got = await b.get('k-10k', [])
    assert.ok(got, 'a hit on the other instance')
    assert.equal(await text(got.value), 'many')
    assert.equal(got.tags.length, 10_000)
    await a.updateTags([tags[9_999]])
    await b.refreshTags()
    assert.equal(await b.get('k-10k', []), undefined, 'the last tag reached it')
    // All 10,000 in one call (one update script run: no unpack, one HSET and ZADD a tag).
    const more = numbered(10_000, 'uc-b-')
    await b.set('k-10k-b', Promise.resolve(useCacheEntry('many', { tags: more })))
    await a.updateTags(more)
    assert.equal(await redis.command('HLEN', tagKey('state')), 10_001)
    const c = useCache()
    await c.refreshTags()
    assert.equal(await c.get('k-10k-b', []), undefined, 'a new instance loaded all of them')
    assert.ok((await c.getExpiration([more[0]])) > 0)
  })

  test('a FETCH entry with 10,000 tags', async () => {
    const [A, B] = [incremental(), incremental()]
    const tags = numbered(10_000, 'f-')
    await A().set('f-10k', fetchValue(tags), { fetchCache: true, tags, fetchIdx: 0 })
    const ctx = { kind: 'FETCH', revalidate: 60, tags, softTags: ['_N_T_/layout'] }
    const got = await B().get('f-10k', ctx)
    assert.equal(got?.value?.kind, 'FETCH', 'a hit on the other instance')
    await A().revalidateTag([tags[9_999]])
    assert.equal(await B().get('f-10k', ctx), null, 'the last tag reached it')
  })
})

describe('tags of characters with a meaning elsewhere', () => {
  // One pair of instances per handler for all of them (each instance is a connection of its
  // own to make): each tag on an entry of its own, with another tag beside it.
  test("':', '{', spaces, _N_T_, a lone surrogate: each one tag across instances, for 'use cache' and for a page", async () => {
    const [a, b] = [useCache(), useCache()]
    const [A, B] = [incremental(), incremental()]
    for (const [name, tag] of Object.entries({
      colon: 'a:b:c',
      braces: '{edges}x',
      spaces: '  spaced tag  ',
      'the implicit prefix alone': '_N_T_',
      'the implicit prefix and a slash': '_N_T_/',
      'a lone surrogate': 'lone\ud800surrogate',
    })) {
      const key = `k-${name}`
      await a.set(key, Promise.resolve(useCacheEntry('odd', { tags: [tag, 'other'] })))
      await b.refreshTags()
      assert.ok(await b.get(key, []), `${name}: stored and read`)
      await b.updateTags([tag])
      await a.refreshTags()
      assert.equal(await a.get(key, []), undefined, `${name}: not reached`)
      // Written after that revalidation (out of its ms): only the singular handler's own one
      // reaches it.
      await nextMs()
      await A().set(`/${key}`, page([tag, 'other']), {
        ...pageCtx,
        cacheControl: { revalidate: 60, expire: 3600 },
      })
      assert.ok(await B().get(`/${key}`, pageCtx), `${name}: page stored and read`)
      await B().revalidateTag(tag)
      assert.equal(await A().get(`/${key}`, pageCtx), null, `${name}: page not reached`)
    }
  })

  test('NFC and NFD forms of one text are two tags, as in Next', async () => {
    const [a, b] = [useCache(), useCache()]
    await a.set('k', Promise.resolve(useCacheEntry('nfc', { tags: ['caf\u00e9'] })))
    await b.refreshTags()
    await b.updateTags(['cafe\u0301'])
    await a.refreshTags()
    assert.ok(await a.get('k', []), 'the NFD revalidation reached the NFC tag')
    await b.updateTags(['caf\u00e9'])
    await a.refreshTags()
    assert.equal(await a.get('k', []), undefined)
  })
})

describe('a tag update whose reply is lost', () => {
  for (const tagSync of ['pull', 'push']) {
    test(`${tagSync}: applied by Redis, sent again with the same time; nothing fresher is invalidated`, async () => {
      const proxy = await startHoldingProxy(new URL(redis.url))
      try {
        const a = useCache({ redisUrl: proxy.url, tagSync })
        const b = useCache({ tagSync })
        await a.set('k', Promise.resolve(useCacheEntry('old', { tags: ['t'] })))
        // The update script loaded on a's connection: the held reply is the update's own.
        await a.updateTags(['warm'])
        await b.refreshTags()
        assert.ok(await b.get('k', []), 'cached before')
        proxy.hold = true
        proxy.all = true
        const sent = proxy.sentEval()
        const update = a.updateTags(['t'])
        await sent
        await untilRedis(() => redis.command('HGET', tagKey('state'), 't'), 'the update applied')
        // Redis ran it; its reply is held, and goes with the connection.
        proxy.cut()
        await update
        proxy.hold = false
        proxy.uncut()
        const record = await redis.command('HGET', tagKey('state'), 't')
        await b.refreshTags()
        assert.equal(await b.get('k', []), undefined, 'the other instance, after the call returned')
        await a.refreshTags()
        assert.equal(await a.get('k', []), undefined, 'the sender')
        // Regenerated after the revalidation: the update sent again must leave it fresh.
        await b.set('k', Promise.resolve(useCacheEntry('new', { tags: ['t'] })))
        await untilRedis(
          async () => Number(await redis.command('HGET', tagKey('meta'), 'ver')) >= 3,
          'the outbox sent the update again',
        )
        assert.equal(await redis.command('HGET', tagKey('meta'), 'ver'), '3', 'sent twice')
        assert.equal(await redis.command('HGET', tagKey('state'), 't'), record, 'the same record')
        const c = useCache({ tagSync })
        await c.refreshTags()
        const got = await c.get('k', [])
        assert.equal(got && (await text(got.value)), 'new', 'the regenerated entry stays fresh')
      } finally {
        proxy.close()
      }
    })
  }
})

describe('the event loop stalled for 1,100 ms', () => {
  test("push: the stall starts as another instance's revalidation resolves; a request in the turn it ends honours it", async () => {
    const r = useCache({ tagSync: 'push', memoryBytes: 1 << 20 })
    const b = useCache({ tagSync: 'push' })
    await b.updateTags(['warm'])
    await b.set('k', Promise.resolve(useCacheEntry('old', { tags: ['t'] })))
    await r.refreshTags()
    assert.ok(await r.get('k', []), 'cached, in r’s tier')
    await b.updateTags(['t'])
    // Its announcement reaches r's socket while r cannot read it, and the request comes in
    // the turn the stall ends, before any I/O or timer: past the 1 s bound r is not caught up,
    // so it pulls rather than trust a mirror that has not read the announcement.
    block(1100)
    const got = await r.refreshTags().then(() => r.get('k', []))
    assert.equal(got, undefined, 'served what the revalidation invalidated')
  })
})

describe('a flush between a regeneration’s read and its write', () => {
  const TAG = 'fl'
  const getCtx = { kind: 'FETCH', revalidate: 60, tags: [TAG], softTags: [] }
  const setCtx = { fetchCache: true, tags: [TAG], fetchIdx: 0 }

  test('FETCH: the flush, a revalidation elsewhere, then the write: stored expired everywhere', async () => {
    const [A, B, C] = [incremental(), incremental(), incremental()]
    await B().revalidateTag(['warm'])
    const r = A()
    assert.equal(await r.get('key', getCtx), null, 'a miss: the regeneration begins')
    // Keep the revalidation out of the read's ms.
    await nextMs()
    await redis.command('FLUSHALL')
    await B().revalidateTag([TAG], { expire: 0 })
    await r.set('key', fetchValue([TAG]), setCtx)
    for (const [name, H] of [
      ['the writer', A],
      ['a new instance', C],
      ['the revalidating instance', B],
    ]) {
      assert.equal((await H().get('key', getCtx))?.value ?? null, null, name)
    }
  })

  test("'use cache': the flush, a revalidation elsewhere, then the write", async () => {
    const [a, b] = [useCache(), useCache()]
    await b.updateTags(['warm'])
    await a.refreshTags()
    assert.equal(await a.get('k', []), undefined)
    const started = now()
    await nextMs()
    await redis.command('FLUSHALL')
    await b.updateTags([TAG])
    await a.set('k', Promise.resolve(useCacheEntry('old', { tags: [TAG], timestamp: started })))
    for (const [name, h] of [
      ['the writer', a],
      ['a new instance', useCache()],
      ['the revalidating instance', b],
    ]) {
      await h.refreshTags()
      assert.equal(await h.get('k', []), undefined, name)
    }
  })
})
