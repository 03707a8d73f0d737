// Tags as Next produces them, through both handlers on a real
// redis-server: entries and revalidations with any number of tags, tags percent-encoded by
// Next 16.2.7 and later (encodeHeaderSafe) up to 256 x 9 bytes, and the raw form an older Next
// sends reaching entries written with the encoded form, and the reverse.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import {
  asRequest,
  capture,
  commandMonitor,
  inRender,
  instanceOptions,
  requestInstances,
  startTestRedis,
  TAGGED_PAGE_CTX as pageCtx,
  taggedPage as page,
  text,
  useCacheEntry,
} from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')

let redis

let monitor

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-tags-'))
  redis = await startTestRedis({ logDir })
  monitor = await commandMonitor(redis)
})

after(async () => {
  await close()
  monitor?.close()
  await redis?.stop()
})

let seq = 0

const options = () => instanceOptions(redis, 'tagtest')
const useCache = () => createUseCacheHandler(options())
const incremental = () => requestInstances(createIncrementalCacheHandler, redis, 'tagtest')

const entryKey = (iface, key) =>
  new wasm.Engine({ prefix: 'tagtest', deployment: 'd1' }).entryKey(iface, key)

/** Next's encodeHeaderSafe (dist/server/lib/encode-header-safe.js in next@16.4.6). */
const encode = (tag) =>
  /[^\t\x20-\x7e]/.test(tag)
    ? tag.replace(/[^\t\x20-\x7e]+/g, (run) => encodeURIComponent(run))
    : tag

const numbered = (n, prefix) => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

const setCtx = { ...pageCtx, cacheControl: { revalidate: 60, expire: 3600 } }

// 29 CJK characters: within Next's 256-character limit, 261 bytes once encoded.
const CJK = '\u6f22'.repeat(29)

describe('tags as Next produces them', () => {
  for (const n of [129, 2000]) {
    test(`a 'use cache' entry with ${n} tags is stored, read elsewhere and invalidated by its last tag`, async () => {
      const [a, b] = [useCache(), useCache()]
      const tags = numbered(n, `uc${n}-`)
      await a.set(`k-uc-${n}`, Promise.resolve(useCacheEntry('many tags', { tags })))
      assert.equal(
        await redis.command('EXISTS', entryKey(wasm.Interface.useCache('default'), `k-uc-${n}`)),
        1,
        'stored',
      )
      await b.refreshTags()
      const got = await b.get(`k-uc-${n}`, [])
      assert.ok(got, 'a hit on the other instance')
      assert.equal(await text(got.value), 'many tags')
      assert.deepEqual(got.tags, tags)
      await a.updateTags([tags[n - 1]])
      await b.refreshTags()
      assert.equal(await b.get(`k-uc-${n}`, []), undefined)
    })

    test(`an APP_PAGE with ${n} tags is stored, read elsewhere and invalidated by its last tag`, async () => {
      const [A, B] = [incremental(), incremental()]
      // Explicit tags (cacheTag, fetch tags) land in x-next-cache-tags too.
      const tags = numbered(n, `page${n}-`)
      await A().set(`/page-${n}`, page(tags), setCtx)
      assert.equal(
        await redis.command('EXISTS', entryKey(wasm.Interface.incremental(), `/page-${n}`)),
        1,
        'stored',
      )
      const got = await B().get(`/page-${n}`, pageCtx)
      assert.ok(got, 'a hit on the other instance')
      assert.equal(got.value.headers['x-next-cache-tags'], tags.join(','))
      await A().revalidateTag([tags[n - 1]])
      assert.equal(await B().get(`/page-${n}`, pageCtx), null)
    })
  }

  test('updateTags with 129 tags invalidates every one of them on another instance', async () => {
    const [a, b] = [useCache(), useCache()]
    const tags = numbered(129, 'rv-')
    for (const t of tags) await a.set(`k-${t}`, Promise.resolve(useCacheEntry(t, { tags: [t] })))
    await b.refreshTags()
    for (const t of tags) assert.ok(await b.get(`k-${t}`, []), `${t} cached before`)
    await a.updateTags(tags)
    await b.refreshTags()
    const left = []
    for (const t of tags) if ((await b.get(`k-${t}`, [])) !== undefined) left.push(t)
    assert.deepEqual(left, [], 'entries still served after the revalidation')
    assert.ok((await b.getExpiration([tags[128]])) > 0)
  })

  /** An entry on one instance with `entryForm`, a revalidation on another with `revalidatedForm`. */
  async function crosses(entryForm, revalidatedForm) {
    seq += 1
    const key = `k-form-${seq}`
    const [a, b] = [useCache(), useCache()]
    await a.set(key, Promise.resolve(useCacheEntry('form', { tags: [entryForm, 'other'] })))
    await b.refreshTags()
    assert.ok(await b.get(key, []), 'stored and read')
    await b.updateTags([revalidatedForm])
    await a.refreshTags()
    assert.equal(await a.get(key, []), undefined, `${entryForm} not reached by ${revalidatedForm}`)
    assert.ok((await a.getExpiration([entryForm])) > 0, 'getExpiration in the entry’s form')
    // The same for the singular handler's pages, tagged through x-next-cache-tags (Next writes
    // no header for tags joining to '': the empty tag rides with another one).
    const [A, B] = [incremental(), incremental()]
    await A().set(`/${key}`, page(entryForm === '' ? ['', 'other'] : [entryForm]), setCtx)
    assert.ok(await B().get(`/${key}`, pageCtx), 'page stored and read')
    await B().revalidateTag(revalidatedForm)
    assert.equal(await A().get(`/${key}`, pageCtx), null, `page: ${entryForm} not reached`)
  }

  test('a 29-CJK-character tag works raw and encoded, across forms in both directions', async () => {
    for (const [entryForm, revalidatedForm] of [
      [encode(CJK), encode(CJK)],
      [CJK, CJK],
      [encode(CJK), CJK],
      [CJK, encode(CJK)],
    ])
      await crosses(entryForm, revalidatedForm)
  })

  test('an old pod’s raw tag and a new pod’s encoded one are one tag, both ways', async () => {
    for (const tag of ['café', 'emoji 😀 and %41', '_N_T_/über/page'])
      for (const [entryForm, revalidatedForm] of [
        [encode(tag), tag],
        [tag, encode(tag)],
      ])
        await crosses(entryForm, revalidatedForm)
  })

  // Next before 16.2.7 passes tags raw, NUL included (validateTags checks only type and
  // length); later releases send it as %00. The engine takes lists NUL-joined.
  test('a tag with NUL is one tag, raw or as %00, never split at the NUL', async () => {
    for (const [entryForm, revalidatedForm] of [
      ['a\0b', 'a\0b'],
      ['a\0b', 'a%00b'],
      ['a%00b', 'a\0b'],
      ['\0', '%00'],
      ['%00', '\0'],
    ])
      await crosses(entryForm, revalidatedForm)
    // Not two tags either: revalidating a\0b leaves what is tagged a alone.
    const [a, b] = [useCache(), useCache()]
    await a.set('k-nul-a', Promise.resolve(useCacheEntry('a', { tags: ['a'] })))
    await b.updateTags(['a\0b'])
    await a.refreshTags()
    assert.ok(await a.get('k-nul-a', []), 'a revalidation of a\\0b reached the tag a')
    // A fetch entry: its tags on the write, and on the read (Next's ctx.tags), raw.
    const [A, B] = [incremental(), incremental()]
    const fetchTags = ['a\0b']
    const getCtx = { kind: 'FETCH', revalidate: 60, tags: fetchTags, softTags: [] }
    const value = {
      kind: 'FETCH',
      data: { headers: {}, body: '', url: 'https://origin.test/nul', status: 200 },
      tags: fetchTags,
      revalidate: 60,
    }
    await A().set('nul-fetch', value, { fetchCache: true, tags: fetchTags, fetchIdx: 0 })
    assert.ok((await B().get('nul-fetch', getCtx))?.value, 'fetch entry stored and read')
    await B().revalidateTag('a%00b')
    assert.equal(
      await A().get('nul-fetch', getCtx),
      null,
      'fetch entry: a\\0b not reached by a%00b',
    )
  })

  // Next takes the empty tag too (cacheTag(''), revalidateTag('')); joined alone it reads as
  // no tag at all.
  test('the empty tag is a tag: an entry carrying it is reached by its revalidation', async () => {
    await crosses('', '')
    const [a, b] = [useCache(), useCache()]
    await a.set('k-empty-alone', Promise.resolve(useCacheEntry('e', { tags: [''] })))
    await b.refreshTags()
    assert.ok(await b.get('k-empty-alone', []), 'stored and read')
    await b.updateTags([''])
    await a.refreshTags()
    assert.equal(await a.get('k-empty-alone', []), undefined, 'the empty tag alone not reached')
  })

  test('a tag past the byte limit is dropped with one line; the entry and the revalidation go on', async () => {
    const [a, b] = [useCache(), useCache()]
    const huge = 'h'.repeat(16 * 1024 + 1)
    let lines = await capture(() =>
      a.set('k-huge', Promise.resolve(useCacheEntry('kept', { tags: [huge, 'small'] }))),
    )
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0], /dropped 1 tag\(s\) longer than 16384 bytes/)
    await b.refreshTags()
    const got = await b.get('k-huge', [])
    assert.ok(got, 'stored without the over-long tag')
    assert.deepEqual(got.tags, ['small'])
    lines = await capture(() => a.updateTags([huge, 'small']))
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0], /dropped 1 tag\(s\) longer than 16384 bytes/)
    await b.refreshTags()
    assert.equal(await b.get('k-huge', []), undefined, 'the other tag applied')
  })
})

/**
 * One simulated instance's options (`options()`) under an ACL user of its own, so that
 * `scriptCalls` counts its commands and no other instance's.
 */
async function counted() {
  return { ...options(), redisUrl: (await monitor.user()).redisUrl }
}

/** EVALSHA calls the instance of `opts` (`counted()`) has sent (every tag pull is one). */
const scriptCalls = (opts) => monitor.sent(new URL(opts.redisUrl).username, 'evalsha')

describe('pull: one tag round trip per request', () => {
  test('refreshTags of each cache kind and the singular reads of one render share one pull', async () => {
    // Both interfaces on one runtime, as in a Next server (same options).
    const opts = await counted()
    const h = createUseCacheHandler(opts)
    const Handler = createIncrementalCacheHandler(opts)
    const Inc = () => new Handler({ dev: false, revalidatedTags: [] })
    await h.refreshTags()
    const before = await scriptCalls(opts)
    await inRender(async () => {
      await h.refreshTags()
      await h.refreshTags()
      await Inc().get('/render-shared', pageCtx)
    })
    assert.equal((await scriptCalls(opts)) - before, 1, 'one pull for the render')
    await inRender(() => h.refreshTags())
    assert.equal((await scriptCalls(opts)) - before, 2, 'the next render pulls again')
    await h.refreshTags()
    await h.refreshTags()
    assert.equal((await scriptCalls(opts)) - before, 4, 'outside a render every call pulls')
  })

  /**
   * The handlers as one Next request uses them: Next resets the request's `IncrementalCache`
   * (`resetRequestCache` on its singular handler, `a`) as the request begins, the response
   * cache reads the page through another `IncrementalCache` (`b`, outside any render), then
   * the page renders (or resumes) with a work store holding the request's (`a`): 'use cache'
   * refreshTags and `fetch` reads through `a`. `renderWith` overrides the render's own;
   * `resetAnother` resets a second one after `a`, as 16.0 and 16.1 do in
   * `renderToResponseWithComponents` while the page renders with the first. `asNext`: the calls
   * where Next makes them, each reset after an `await` (a promise continuation, where
   * `enterWith` behaves alike on every Node release: not in a callback of a reused native
   * resource, where Node 24's AsyncContextFrame keeps it from later callbacks and Node 20 did
   * not), the page read and render in the route handler the server's handling awaits, which
   * resets `a` again (16.2 to 16.5, app-page-runtime.js or app-page.js).
   */
  async function nextRequest(
    Handler,
    h,
    { pageRead = true, renderWith, resetAnother, during, asNext } = {},
  ) {
    return asRequest(async () => {
      const ctx = { dev: false, revalidatedTags: [] }
      const a = new Handler(ctx)
      // Next awaits `getIncrementalCache` first (base-server.js, handleRequestImpl).
      if (asNext) await Promise.resolve(ctx)
      a.resetRequestCache()
      if (resetAnother) new Handler(ctx).resetRequestCache()
      await during?.()
      const routeHandler = async () => {
        if (asNext) {
          // The route handler awaits its module's preparation before it resets.
          await Promise.resolve(ctx)
          a.resetRequestCache()
        }
        if (pageRead) await new Handler(ctx).get('/request-shared', pageCtx)
        const incrementalCache = { cacheHandler: renderWith ?? a }
        return inRender(
          async () => {
            await h.refreshTags()
            await a.get('request-shared-fetch', { kind: 'FETCH', tags: [], softTags: [] })
            return h.get('k-request', [])
          },
          { incrementalCache },
        )
      }
      return routeHandler()
    })
  }

  test("a request's page read and its render share one pull; a later request pulls again", async () => {
    const opts = await counted()
    const h = createUseCacheHandler(opts)
    const Handler = createIncrementalCacheHandler(opts)
    await h.refreshTags()
    let before = await scriptCalls(opts)
    await nextRequest(Handler, h)
    assert.equal(
      (await scriptCalls(opts)) - before,
      1,
      'the page read pulled, the render shared it',
    )
    before = await scriptCalls(opts)
    await nextRequest(Handler, h)
    assert.equal((await scriptCalls(opts)) - before, 1, 'the next request pulled once too')
    before = await scriptCalls(opts)
    await nextRequest(Handler, h, { resetAnother: true })
    assert.equal(
      (await scriptCalls(opts)) - before,
      1,
      'a render with the first of two IncrementalCaches the request reset is still its own',
    )
    before = await scriptCalls(opts)
    await nextRequest(Handler, h, { asNext: true })
    assert.equal(
      (await scriptCalls(opts)) - before,
      1,
      'a scope opened in a promise continuation reaches the route handler the request awaits',
    )
    before = await scriptCalls(opts)
    await nextRequest(Handler, h, { pageRead: false })
    assert.equal(
      (await scriptCalls(opts)) - before,
      1,
      'a render without a page read in its request pulls: the earlier requests’ pulls do not serve it',
    )
    before = await scriptCalls(opts)
    await nextRequest(Handler, h, { renderWith: new Handler({ dev: false, revalidatedTags: [] }) })
    assert.equal(
      (await scriptCalls(opts)) - before,
      2,
      'a work store holding another IncrementalCache than the one reset (a proxy’s) pulls on its own',
    )
  })

  test('a revalidation that resolves before a request begins reaches its render; the earlier pull does not serve it', async () => {
    const opts = await counted()
    const h = createUseCacheHandler(opts)
    const Handler = createIncrementalCacheHandler(opts)
    const other = useCache()
    await other.set('k-request', Promise.resolve(useCacheEntry('old', { tags: ['t-request'] })))
    assert.ok(await nextRequest(Handler, h), 'cached before the revalidation')
    await other.updateTags(['t-request'])
    const before = await scriptCalls(opts)
    assert.equal(
      await nextRequest(Handler, h, { pageRead: false }),
      undefined,
      'the next request does not serve what the revalidation invalidated',
    )
    assert.equal((await scriptCalls(opts)) - before, 1, 'its render pulled')
  })

  test('a revalidation that resolves after a request began, before its page read, reaches the render', async () => {
    const opts = options()
    const h = createUseCacheHandler(opts)
    const Handler = createIncrementalCacheHandler(opts)
    const other = useCache()
    await other.set('k-request', Promise.resolve(useCacheEntry('old', { tags: ['t-during'] })))
    assert.ok(await nextRequest(Handler, h), 'cached before the revalidation')
    const got = await nextRequest(Handler, h, {
      during: () => other.updateTags(['t-during']),
    })
    assert.equal(got, undefined, 'the page read’s pull, which started after it, carried it')
  })
})

describe("tagSync 'push': announcements on a real Redis", () => {
  /** Refreshes until one refresh makes no round trip: the instance is caught up. */
  async function caughtUp(handler, opts) {
    for (let i = 0; i < 200; i++) {
      const before = await scriptCalls(opts)
      await handler.refreshTags()
      if ((await scriptCalls(opts)) === before) return
      // Not yet subscribed or pulled: let the subscription's events run.
      await new Promise((r) => setImmediate(r))
    }
    assert.fail('never caught up')
  }

  test('a revalidation reaches another instance without a pull; a caught-up request makes none', async () => {
    const [aOpts, bOpts] = [await counted(), await counted()]
    const [a, b] = [aOpts, bOpts].map((o) => createUseCacheHandler({ ...o, tagSync: 'push' }))
    // The state exists (a new one comes under a new epoch: a gap, pulled in full) and the
    // update script is loaded.
    await a.updateTags(['push-warm'])
    // Each instance also pulls on its own before its caught-up bound runs out; on a busy machine
    // such a pull can land inside a round and prove nothing about the announcement. Freshness
    // is asserted every round; "by the announcement alone" needs one round without such a pull.
    const rounds = []
    for (let round = 0; round < 5; round++) {
      const key = `k-push-${round}`
      const tag = `push-tag-${round}`
      await a.set(key, Promise.resolve(useCacheEntry('pushed', { tags: [tag] })))
      await caughtUp(a, aOpts)
      await caughtUp(b, bOpts)
      assert.ok(await b.get(key, []), 'cached before')
      const [aBefore, bBefore] = [await scriptCalls(aOpts), await scriptCalls(bOpts)]
      const aCalls = async () => (await scriptCalls(aOpts)) - aBefore
      const bCalls = async () => (await scriptCalls(bOpts)) - bBefore
      await a.updateTags([tag])
      for (let i = 0; i < 1000 && (await b.getExpiration([tag])) === 0; i++) {
        await new Promise((r) => setImmediate(r))
      }
      assert.ok((await b.getExpiration([tag])) > 0, 'announced')
      // The update's script call, and one pull in the background by each instance that
      // learned of it otherwise than by a pull (a: its own; b: the announcement), so that what
      // either regenerates afterwards is judged with a pull after it (docs/failures.md).
      for (let i = 0; i < 1000 && ((await aCalls()) < 2 || (await bCalls()) < 1); i++) {
        await new Promise((r) => setImmediate(r))
      }
      const [aBackground, bBackground] = [await aCalls(), await bCalls()]
      await b.refreshTags()
      assert.equal(await b.get(key, []), undefined, 'invalidated on the other instance')
      // b learned it from the announcement, and its caught-up request ran no script.
      const bRequest = (await bCalls()) - bBackground
      const a2 = await aCalls()
      rounds.push(`a ${String(aBackground)}, b ${String(bBackground)}+${String(bRequest)}`)
      if (aBackground === 2 && a2 === 2 && bBackground === 1 && bRequest === 0) return
    }
    assert.fail(
      `every round also ran another pull (script calls per round: a's, b's in the background + by the request: ${rounds.join('; ')})`,
    )
  })

  test('an invalid tagSync is refused, naming the option', () => {
    assert.throws(() => createUseCacheHandler({ ...options(), tagSync: 'sometimes' }), /tagSync/)
  })
})
