// tagSync 'push' with the subscription's connection held open and silent (a proxy or load
// balancer that keeps the client's end of a connection whose Redis side is gone), while the
// process's other connection answers. Nothing tells the process its channel is lost: it stays
// subscribed as far as it knows, and caught up by its periodic pulls. What must hold is the
// bound of push (docs/failures.md, "Following by push"): a request honours every revalidation,
// and gets every page write, that resolved at least 1 s before it started, however long the
// channel stays silent. Against a real redis-server behind a proxy in this process.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, afterEach, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import {
  APP_PAGE_CTX,
  appPage,
  capture,
  commandCalls,
  holdingProxy,
  onDemand,
  pageHtml,
  text,
  useCacheEntry,
} from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-push-held-'))
  redis = await startRedis({ logDir })
})

afterEach(() => close())

after(async () => {
  await close()
  await redis?.stop()
})

/** The bound of push (the periodic pull's), in ms. */
const BOUND_MS = 1000

/** Waits until the proxy carries a connection that sent SSUBSCRIBE and Redis counts a subscriber. */
async function subscribed(proxy) {
  for (let i = 0; i < 200; i++) {
    if (proxy.conns.some((c) => c.sub && !c.closed)) {
      const channels = await redis.command('PUBSUB', 'SHARDCHANNELS')
      for (const ch of channels) {
        const [, n] = await redis.command('PUBSUB', 'SHARDNUMSUB', ch)
        if (Number(n) > 0) return
      }
    }
    await sleep(25)
  }
  throw new Error('the push follower never subscribed')
}

test("'use cache': a revalidation is honoured within the bound while the subscription is held silent", async () => {
  const proxy = await holdingProxy(redis.port)
  try {
    const opts = { prefix: 'pushheld', deploymentId: 'd1', memoryBytes: 0, leases: false }
    const R = createUseCacheHandler({ ...opts, redisUrl: proxy.url, tagSync: 'push' })
    const W = createUseCacheHandler({ ...opts, redisUrl: redis.url, maxTtlSeconds: 3600 })
    await R.refreshTags()
    await subscribed(proxy)
    proxy.holdSubscriber()
    assert.equal(proxy.held.length, 1, 'the subscription is held')
    const lines = await capture(async () => {
      for (let i = 0; i < 3; i++) {
        const [key, tag] = [`k${String(i)}`, `t${String(i)}`]
        await W.set(key, Promise.resolve(useCacheEntry('v', { tags: [tag] })))
        const e = await R.get(key, [])
        assert.equal(e === undefined ? undefined : await text(e.value), 'v', `round ${String(i)}`)
        await W.updateTags([tag])
        // The bound, from the revalidation's resolution.
        await sleep(BOUND_MS)
        assert.equal(await R.get(key, []), undefined, `round ${String(i)}: within the bound`)
      }
    })
    assert.ok(!proxy.held[0].closed, 'the held subscription is still open')
    assert.ok(
      !lines.some((l) => /tag announcements: channel down/.test(l)),
      'nothing told the process its channel is lost',
    )
  } finally {
    proxy.stop()
  }
})

test('pages: a rewrite is served within the bound while the subscription is held silent', async () => {
  const proxy = await holdingProxy(redis.port)
  try {
    const opts = { prefix: 'pushheldp', deploymentId: 'd1' }
    const RH = createIncrementalCacheHandler({ ...opts, redisUrl: proxy.url, tagSync: 'push' })
    const R = () => new RH({})
    const W = onDemand(
      createIncrementalCacheHandler({ ...opts, redisUrl: redis.url, connectTimeoutMs: 999 }),
    )
    await W().set('/p', appPage('v0'), APP_PAGE_CTX)
    assert.equal(await pageHtml(R, '/p'), '<p>v0</p>')
    await subscribed(proxy)
    // Caught up, R serves /p from its tier (a copy read after the subscription was confirmed).
    await sleep(BOUND_MS)
    assert.equal(await pageHtml(R, '/p'), '<p>v0</p>')
    assert.equal(await pageHtml(R, '/p'), '<p>v0</p>')
    proxy.holdSubscriber()
    assert.equal(proxy.held.length, 1, 'the subscription is held')
    for (let i = 1; i <= 3; i++) {
      await W().set('/p', appPage(`v${String(i)}`), APP_PAGE_CTX)
      // The bound, from the write's resolution.
      await sleep(BOUND_MS)
      assert.equal(await pageHtml(R, '/p'), `<p>v${String(i)}</p>`, `rewrite ${String(i)}`)
      // Served again from R's tier in between: a copy kept after the pull that found the write.
      assert.equal(await pageHtml(R, '/p'), `<p>v${String(i)}</p>`, `rewrite ${String(i)}, again`)
    }
    // Caught up still, as far as R knows: it serves /p from its tier, no round trip (a read
    // that lands beside R's periodic pull is tried again).
    let tierHit = false
    for (let i = 0; i < 100 && !tierHit; i++) {
      const before = await commandCalls(redis, 'get', 'evalsha')
      assert.equal(await pageHtml(R, '/p'), '<p>v3</p>')
      tierHit = (await commandCalls(redis, 'get', 'evalsha')) === before
    }
    assert.ok(tierHit, 'R served /p from its tier with its channel held')
    assert.ok(!proxy.held[0].closed, 'the held subscription is still open')
  } finally {
    proxy.stop()
  }
})
