// Page reads raced by page rewrites (decision 0031 for processes following by push, 0021 for
// pulling ones): a page read that begins after a page rewrite resolved is never handed the
// value it replaced, not by joining a GET sent before the rewrite (read-driver.ts, `share`),
// not from a copy a read of that value kept, this process's own rewrite included. Two runtimes
// on one real Redis; the reader's connections go through a proxy that holds replies back.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { createRequire } from 'node:module'

import { close, createIncrementalCacheHandler } from '../esm/index.mjs'
import {
  APP_PAGE_CTX,
  REDIS_CLUSTER,
  appPage,
  commandCalls,
  onDemand,
  pageHtml,
  startHoldingProxy,
  startTestRedis,
} from './helpers.mjs'

let redis
const proxies = []

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-page-push-races-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  for (const p of proxies) p.close()
  await redis?.stop()
})

/** W: writes on demand straight to Redis (pulling: it reads Redis, as 0021 says). */
function writer(prefix, connectTimeoutMs) {
  const OnDemand = createIncrementalCacheHandler({
    prefix,
    deploymentId: 'd1',
    ...redis.options,
    redisUrl: redis.url,
    connectTimeoutMs,
  })
  return onDemand(OnDemand)
}

/** R: a reader that follows the tag state by push, through `url` (a proxy, say). */
function pushReader(prefix, url, connectTimeoutMs, over = {}) {
  const RH = createIncrementalCacheHandler({
    prefix,
    deploymentId: 'd1',
    ...redis.options,
    redisUrl: url,
    tagSync: 'push',
    connectTimeoutMs,
    ...over,
  })
  return () => new RH({})
}

/**
 * Cuts the push follower's subscription through `proxy` (and keeps it from coming back), and
 * resolves once the follower logged the channel down: it is not caught up from then on. The
 * follower must be caught up (subscribed) before: a subscriber connection that had not sent
 * its SSUBSCRIBE yet is not cut, and its channel would never go down. Fails after 10 s.
 */
function subscriberCutter(t) {
  let down = () => {}
  t.mock.method(console, 'warn', (line) => {
    if (String(line).includes('tag announcements: channel down')) down()
  })
  return async (proxy) => {
    let timer
    const isDown = new Promise((resolve, reject) => {
      down = resolve
      timer = setTimeout(() => reject(new Error('the channel never went down')), 10_000)
    })
    proxy.cutSubscriber()
    try {
      await isDown
    } finally {
      clearTimeout(timer)
    }
  }
}

/** `GET`s Redis has run so far. */
const gets = () => commandCalls(redis, 'get')

/**
 * A function whose promise resolves at the next announcement the push follower applies (its
 * debug line comes after it is applied: tag-sync.ts).
 */
function announcements(t) {
  let heard = () => {}
  t.mock.method(console, 'log', (line) => {
    if (String(line).includes('tag announcement: applied')) heard()
  })
  return () => new Promise((resolve) => (heard = resolve))
}

/** Reads `key` on R until R serves `want` from its tier (caught up: no `GET`); bounded. */
async function fromTier(R, key, want) {
  for (let i = 0; i < 500; i++) {
    const g = await gets()
    if ((await pageHtml(R, key)) === want && (await gets()) === g) return true
    await new Promise((r) => setTimeout(r, 10))
  }
  return false
}

/**
 * Until a reply the proxy holds for R carries `text`: Redis has run the GET and its old value is
 * on the way (bounded: `replied` rejects after 20 s).
 */
const inFlight = (proxy, text) => proxy.replied(Buffer.from(text))

/**
 * Read A began before the rewrite resolved: either value is allowed. Which one it gets depends
 * on whether the rest of its work (after its GET went out) reaches Redis before or after the
 * rewrite; under load both happen. What the test is about is B.
 */
const beforeRewrite = (got) =>
  assert.ok(['<p>v1</p>', '<p>v2</p>'].includes(got), `A got ${JSON.stringify(got)}`)

async function proxied() {
  const proxy = await startHoldingProxy(new URL(redis.url))
  proxies.push(proxy)
  return [proxy, proxy.url]
}

test(
  "tagSync 'push': a read that begins more than 1 s after a page rewrite resolved gets it, though a GET sent before the rewrite is in flight",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async (t) => {
    const announced = announcements(t)
    const [proxy, proxyUrl] = await proxied()
    const W = writer('rv2b', 4201)
    const RH = createIncrementalCacheHandler({
      prefix: 'rv2b',
      deploymentId: 'd1',
      ...redis.options,
      redisUrl: proxyUrl,
      tagSync: 'push',
      // A read budget above the 1 s bound (accepted up to 60 s): a GET may be in flight longer.
      readTimeoutMs: 5000,
      connectTimeoutMs: 4202,
      debug: true,
    })
    const R = () => new RH({})
    // R caught up: it serves a page from its tier, no GET.
    await W().set('/warm', appPage('w'), APP_PAGE_CTX)
    assert.ok(await fromTier(R, '/warm', '<p>w</p>'), 'R never served from its tier')
    // R holds a copy of /p that its announcement marked for outages only: reads of /p send
    // their GET at once.
    let next = announced()
    await W().set('/p', appPage('v0'), APP_PAGE_CTX)
    await next
    assert.equal(await pageHtml(R, '/p'), '<p>v0</p>')
    next = announced()
    await W().set('/p', appPage('v1'), APP_PAGE_CTX)
    await next
    // Read A's GET goes out and reads v1; everything Redis sends R is held from here on
    // (its replies and the announcements: a slow or stalled link, not a lost message).
    proxy.hold = true
    proxy.all = true
    const sent = proxy.sentGet()
    const a = pageHtml(R, '/p')
    await sent
    // Redis has run A's GET before the rewrite: its reply, held, carries v1. (The GET reaching
    // the proxy first is not enough: Redis may read the rewrite's connection first.)
    await inFlight(proxy, '<p>v1</p>')
    await W().set('/p', appPage('v2'), APP_PAGE_CTX)
    assert.equal(await pageHtml(W, '/p'), '<p>v2</p>', 'the rewrite has resolved')
    const resolved = performance.now()
    // More than the bound later (a timer, not a synchronisation: the bound is a time).
    await new Promise((r) => setTimeout(r, 1200))
    assert.ok(performance.now() - resolved >= 1000)
    // Read B begins now: 0031's guarantee, "serves the value of every page write that
    // resolved at least 1 s before it began".
    const b = pageHtml(R, '/p')
    proxy.release()
    beforeRewrite(await a)
    assert.equal(
      await b,
      '<p>v2</p>',
      'B began 1.2 s after the rewrite resolved: joining A’s GET hands it v1',
    )
  },
)

test(
  "tagSync 'push': the writer's own page write, once resolved, is what its next read gets, though a GET sent before it replied after",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async (t) => {
    const announced = announcements(t)
    const [proxy, proxyUrl] = await proxied()
    const W = writer('rv2c', 4301)
    const options = {
      prefix: 'rv2c',
      deploymentId: 'd1',
      ...redis.options,
      redisUrl: proxyUrl,
      tagSync: 'push',
      connectTimeoutMs: 4302,
      debug: true,
    }
    const RH = createIncrementalCacheHandler(options)
    const R = () => new RH({})
    // R's own on-demand rewrites (the same runtime: the same options).
    const ROnDemand = () => new RH({ _requestHeaders: { 'x-prerender-revalidate': 'id' } })
    await W().set('/warm', appPage('w'), APP_PAGE_CTX)
    assert.ok(await fromTier(R, '/warm', '<p>w</p>'), 'R never served from its tier')
    // R's copy of /p marked for outages only by an announcement: a read of /p sends its GET.
    let next = announced()
    await W().set('/p', appPage('v0'), APP_PAGE_CTX)
    await next
    assert.equal(await pageHtml(R, '/p'), '<p>v0</p>')
    next = announced()
    await W().set('/p', appPage('v1'), APP_PAGE_CTX)
    await next
    // Everything Redis sends R is held: read A's GET reads v1.
    proxy.hold = true
    proxy.all = true
    const sentGet = proxy.sentGet()
    const a = pageHtml(R, '/p')
    await sentGet
    // R rewrites /p itself (its copy of v2 kept for outages only, as 0031 says) ...
    const sentEval = proxy.sentEval()
    const write = ROnDemand().set('/p', appPage('v2'), APP_PAGE_CTX)
    await sentEval
    // ... and the replies come back, in order: A's v1, then the write's. R's own announcement
    // is still on its way (a slower subscriber connection).
    proxy.releaseData()
    assert.equal(await a, '<p>v1</p>', 'A read Redis before the rewrite')
    await write
    assert.equal(await pageHtml(W, '/p'), '<p>v2</p>', 'the rewrite has resolved')
    // Read B begins after R's own write resolved: 0021 read Redis (v2); here A's v1 was kept
    // bound to the generation over the writer's own copy and serves.
    const b = await pageHtml(R, '/p')
    proxy.release()
    assert.equal(b, '<p>v2</p>', 'B, begun after its own process’s rewrite resolved, gets it')
  },
)

// The gap rule after an outage.
test(
  "tagSync 'push': a page copy served while Redis was out of reach does not serve again once caught up, when a rewrite was missed meanwhile",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async () => {
    const [proxy, proxyUrl] = await proxied()
    const W = writer('rv2d', 4401)
    const R = pushReader('rv2d', proxyUrl, 4402)
    await W().set('/warm', appPage('w'), APP_PAGE_CTX)
    await W().set('/p', appPage('v1'), APP_PAGE_CTX)
    assert.ok(await fromTier(R, '/warm', '<p>w</p>'), 'R never served /warm from its tier')
    assert.ok(await fromTier(R, '/p', '<p>v1</p>'), 'R never served /p from its tier')
    proxy.cut()
    // W rewrites /p while R cannot hear of it.
    await W().set('/p', appPage('v2'), APP_PAGE_CTX)
    assert.equal(await pageHtml(W, '/p'), '<p>v2</p>')
    // Redis out of reach: R serves its copy from memory (0021, 0031).
    assert.equal(await pageHtml(R, '/p'), '<p>v1</p>', 'served from memory during the outage')
    proxy.uncut()
    // Connected again: a read of a key R holds no copy of reaches Redis (a copy served from
    // the tier with no GET proves nothing while R cannot reach Redis: it serves outage copies).
    let connected = false
    for (let i = 0; i < 500 && !connected; i++) {
      const g = await gets()
      await pageHtml(R, '/none')
      connected = (await gets()) > g
      if (!connected) await new Promise((r) => setTimeout(r, 20))
    }
    assert.ok(connected, 'R never reached Redis again')
    // Caught up again (proved on another key), without reading /p in between ...
    assert.ok(await fromTier(R, '/warm', '<p>w</p>'), 'R never caught up again')
    // ... the copy of /p kept before the outage must not serve: the rewrite was missed.
    assert.equal(await pageHtml(R, '/p'), '<p>v2</p>', 'a copy from before the outage served again')
  },
)

// The race rule's counter is compared when the reply is judged, after the inflation of a
// compressed entry, not when the reply arrives.
test(
  "tagSync 'push': a compressed page read while its rewrite is announced is not kept over the announcement",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async (t) => {
    const announced = announcements(t)
    const [proxy, proxyUrl] = await proxied()
    const common = { prefix: 'rv2e', deploymentId: 'd1', ...redis.options, compressMinBytes: 1024 }
    const OnDemand = createIncrementalCacheHandler({
      ...common,
      redisUrl: redis.url,
      connectTimeoutMs: 4501,
    })
    const W = onDemand(OnDemand)
    const RH = createIncrementalCacheHandler({
      ...common,
      redisUrl: proxyUrl,
      tagSync: 'push',
      connectTimeoutMs: 4502,
      debug: true,
    })
    const R = () => new RH({})
    const big = (v) => appPage(`${v}:${'x'.repeat(200_000)}`)
    const tag = async (h) => (await pageHtml(h, '/p'))?.slice(0, 6)
    await W().set('/warm', appPage('w'), APP_PAGE_CTX)
    assert.ok(await fromTier(R, '/warm', '<p>w</p>'), 'R never served from its tier')
    let next = announced()
    await W().set('/p', big('v1'), APP_PAGE_CTX)
    await next
    // Everything Redis sends R is held: read A's GET reads v1 (stored compressed).
    proxy.hold = true
    proxy.all = true
    const sent = proxy.sentGet()
    const a = tag(R)
    await sent
    next = announced()
    await W().set('/p', big('v2'), APP_PAGE_CTX)
    assert.equal(await tag(W), '<p>v2:', 'the rewrite has resolved')
    // A's reply and the announcement together: the announcement is applied while A's value
    // is being inflated.
    proxy.release()
    await next
    assert.equal(await a, '<p>v1:', 'A read Redis before the rewrite')
    // B begins after the announcement was applied: it must get v2.
    assert.equal(await tag(R), '<p>v2:', 'B, begun after the announcement, gets the rewrite')
  },
)

test(
  "tagSync 'push', not caught up (0031: such reads read Redis as in 0021): a read that begins after a page rewrite resolved gets it, though a GET sent before the rewrite is in flight",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async (t) => {
    const cutSubscriber = subscriberCutter(t)
    const [proxy, proxyUrl] = await proxied()
    const W = writer('rv2f', 4601)
    const R = pushReader('rv2f', proxyUrl, 4602)
    await W().set('/p', appPage('v1'), APP_PAGE_CTX)
    // Caught up (subscribed), so that the cut below drops a subscription.
    assert.ok(await fromTier(R, '/p', '<p>v1</p>'), 'R never served from its tier')
    // R's subscription drops and cannot come back: R is not caught up from here on.
    await cutSubscriber(proxy)
    proxy.hold = true
    const sent = proxy.sentGet()
    const a = pageHtml(R, '/p')
    await sent
    // Redis has run A's GET before the rewrite: its reply, held, carries v1. (The GET reaching
    // the proxy first is not enough: Redis may read the rewrite's connection first.)
    await inFlight(proxy, '<p>v1</p>')
    await W().set('/p', appPage('v2'), APP_PAGE_CTX)
    assert.equal(await pageHtml(W, '/p'), '<p>v2</p>', 'the rewrite has resolved')
    const b = pageHtml(R, '/p')
    proxy.release()
    beforeRewrite(await a)
    assert.equal(
      await b,
      '<p>v2</p>',
      'B began after the rewrite resolved: joining A’s GET hands it v1',
    )
  },
)

// revalidatePath (the page's implicit tag) on another
// push instance reaches a page copy the tier serves, once announced.
test(
  "tagSync 'push': a page served from the tier is not served fresh once a revalidation of its path is announced",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async (t) => {
    const announced = announcements(t)
    const common = { prefix: 'rv2g', deploymentId: 'd1', ...redis.options, redisUrl: redis.url }
    // W revalidates by push too (0029: an instance that revalidates should), no debug lines.
    const WH = createIncrementalCacheHandler({ ...common, tagSync: 'push', connectTimeoutMs: 4701 })
    const W = () => new WH({})
    const RH = createIncrementalCacheHandler({
      ...common,
      tagSync: 'push',
      connectTimeoutMs: 4702,
      debug: true,
    })
    const R = () => new RH({})
    const tagged = (v) => ({ ...appPage(v), headers: { 'x-next-cache-tags': '_N_T_/p' } })
    // R caught up (subscribed): it serves a page from its tier, no GET.
    await W().set('/warm', appPage('w'), APP_PAGE_CTX)
    assert.ok(await fromTier(R, '/warm', '<p>w</p>'), 'R never served from its tier')
    let next = announced()
    await W().set('/p', tagged('v1'), APP_PAGE_CTX)
    await next
    let tier = false
    for (let i = 0; i < 2000 && !tier; i++) {
      const g = await gets()
      tier = (await pageHtml(R, '/p')) === '<p>v1</p>' && (await gets()) === g
      if (!tier) await new Promise((r) => setImmediate(r))
    }
    assert.ok(tier, 'R never served /p from its tier')
    next = announced()
    await W().revalidateTag(['_N_T_/p'])
    await next
    const got = await R().get('/p', { kind: 'APP_PAGE' })
    assert.ok(
      got === null || got.isStale === true || got.isStale === -1,
      `after the announced revalidation R served ${JSON.stringify(got?.value?.html)} as fresh`,
    )
  },
)

test(
  "tagSync 'push': caught up, a page read served from the tier asks for no tag refresh and is started by its machine's reuse, with the tier's bytes",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async (t) => {
    // The glue the runtime uses (one module instance per process: js-host/src/wasm.ts).
    const { ReadMachine } = createRequire(import.meta.url)('../wasm/node/fleetcache_wasm.js')
    const W = writer('hit', 4301)
    const R = pushReader('hit', redis.url, 4302)
    await W().set('/p', appPage('v1'), APP_PAGE_CTX)
    assert.ok(await fromTier(R, '/p', '<p>v1</p>'), 'R never served from its tier')
    const calls = { refreshed: 0, startWithTier: 0, start: 0, tier: 0, reuseIncrementalTexts: 0 }
    // The reuses that started their read themselves (a step kind back, not undefined).
    let started = 0
    for (const name of Object.keys(calls)) {
      const original = ReadMachine.prototype[name]
      t.mock.method(ReadMachine.prototype, name, function counted(...args) {
        calls[name]++
        const out = original.apply(this, args)
        if (name === 'reuseIncrementalTexts' && out !== undefined) started++
        return out
      })
    }
    // A tier hit (no GET) is a read that was caught up; bounded.
    let hit = false
    for (let i = 0; i < 50 && !hit; i++) {
      for (const name of Object.keys(calls)) calls[name] = 0
      started = 0
      const g = await gets()
      assert.equal(await pageHtml(R, '/p'), '<p>v1</p>')
      hit = (await gets()) === g
    }
    assert.ok(hit, 'no read served from the tier')
    assert.deepEqual(calls, {
      refreshed: 0,
      startWithTier: 0,
      start: 0,
      tier: 0,
      reuseIncrementalTexts: 1,
    })
    assert.equal(started, 1)
  },
)

/** Counts the calls of `names` on every read machine (the glue the runtime uses). */
function countCalls(t, names) {
  const { ReadMachine } = createRequire(import.meta.url)('../wasm/node/fleetcache_wasm.js')
  const calls = Object.fromEntries(names.map((n) => [n, 0]))
  for (const name of names) {
    const original = ReadMachine.prototype[name]
    t.mock.method(ReadMachine.prototype, name, function counted(...args) {
      calls[name]++
      return original.apply(this, args)
    })
  }
  return calls
}

/**
 * A writer W and a push reader R whose Redis connections go through a proxy, R having served
 * `/p` (v1, written by W) from its tier; `cut()` then cuts R's announcement channel.
 */
async function servedFromTierBehindProxy(t, name, port) {
  const cutSubscriber = subscriberCutter(t)
  const [proxy, proxyUrl] = await proxied()
  const W = writer(name, port)
  const R = pushReader(name, proxyUrl, port + 1)
  await W().set('/p', appPage('v1'), APP_PAGE_CTX)
  assert.ok(await fromTier(R, '/p', '<p>v1</p>'), 'R never served from its tier')
  return { W, R, cut: () => cutSubscriber(proxy) }
}

// Whether the tier's bytes go with the start is the machine's word (AsksTier, the core's
// read_asks_tier_first), not the tagSync option's: a read that refreshes first would have them
// looked up and copied for nothing.
test(
  "tagSync 'push' with the channel down: a page read refreshes first and offers no tier bytes with its start",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async (t) => {
    const { R, cut } = await servedFromTierBehindProxy(t, 'nooffer', 4801)
    await cut()
    const calls = countCalls(t, ['refreshed', 'startWithTier', 'start'])
    assert.equal(await pageHtml(R, '/p'), '<p>v1</p>')
    assert.deepEqual(calls, { refreshed: 1, startWithTier: 0, start: 1 })
  },
)

test('pulling the tag state: a page read refreshes first and offers no tier bytes with its start', async (t) => {
  const W = writer('pulloffer', 4901)
  const R = pushReader('pulloffer', redis.url, 4902, { tagSync: 'pull' })
  await W().set('/p', appPage('v1'), APP_PAGE_CTX)
  assert.equal(await pageHtml(R, '/p'), '<p>v1</p>')
  const calls = countCalls(t, ['refreshed', 'startWithTier', 'start'])
  assert.equal(await pageHtml(R, '/p'), '<p>v1</p>')
  assert.deepEqual(calls, { refreshed: 1, startWithTier: 0, start: 1 })
})

// On Redis Cluster page writes are not announced, so no page copy serves while Redis answers:
// a caught-up read (no refresh) goes to Redis without the tier's bytes (the core's
// read_asks_tier_first), which would be looked up and copied for nothing.
test(
  "tagSync 'push' on a Redis Cluster: a caught-up page read asks for no refresh and offers no tier bytes with its start",
  { skip: !REDIS_CLUSTER && 'a single Redis announces page writes: its page copies serve' },
  async (t) => {
    const W = writer('clusteroffer', 4903)
    const R = pushReader('clusteroffer', redis.url, 4904)
    await W().set('/p', appPage('v1'), APP_PAGE_CTX)
    assert.equal(await pageHtml(R, '/p'), '<p>v1</p>')
    const calls = countCalls(t, ['refreshed', 'startWithTier', 'start'])
    // A read with no refresh is one that was caught up at its start; bounded.
    let caughtUp = false
    for (let i = 0; i < 100 && !caughtUp; i++) {
      for (const name of Object.keys(calls)) calls[name] = 0
      assert.equal(await pageHtml(R, '/p'), '<p>v1</p>')
      caughtUp = calls.refreshed === 0
      if (!caughtUp) await new Promise((r) => setTimeout(r, 10))
    }
    assert.ok(caughtUp, 'R never caught up')
    assert.deepEqual(calls, { refreshed: 0, startWithTier: 0, start: 1 })
  },
)

// The singular read skips its refresh only while caught up at its start
// (read_machine.rs, `tags_caught_up`). A copy served from the tier (no GET, its decoded value
// memoised) while caught up, then the channel drops and a rewrite is made that R never hears:
// the next read is judged not caught up, asks for the refresh, and gets the rewrite from Redis,
// not the tier's copy nor its memo.
test(
  "tagSync 'push': a page served from the tier while caught up is not served again once the channel drops, when a rewrite is made meanwhile",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async (t) => {
    const { W, R, cut } = await servedFromTierBehindProxy(t, 'hitdown', 4701)
    // A second tier hit: the one that serves the memo.
    assert.ok(await fromTier(R, '/p', '<p>v1</p>'))
    await cut()
    await W().set('/p', appPage('v2'), APP_PAGE_CTX)
    assert.equal(await pageHtml(W, '/p'), '<p>v2</p>', 'the rewrite has resolved')
    const g = await gets()
    assert.equal(await pageHtml(R, '/p'), '<p>v2</p>', 'the tier’s v1 served after the drop')
    assert.ok((await gets()) > g, 'the read went to Redis')
    // And what it brought is what the next read serves.
    assert.equal(await pageHtml(R, '/p'), '<p>v2</p>')
  },
)
