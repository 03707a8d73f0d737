// tagSync 'push' with App Router pages served from the tier: a read that starts while a GET
// sent before a page announcement is in flight (read-driver.ts `share` shares GETs) must get the
// announced write, and no read may keep the page that write replaced bound to the current
// generation, where it would serve with no time limit (decision 0031).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

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
let proxy

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-page-push-coalesce-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  proxy?.close()
  await redis?.stop()
})

test(
  'a read starting after a page announcement joins no GET sent before it, and the replaced page is not kept',
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async (t) => {
    // The push follower's debug line comes after the announcement is applied (tag-sync.ts).
    let heard = () => {}
    t.mock.method(console, 'log', (line) => {
      if (String(line).includes('tag announcement: applied')) heard()
    })
    const announced = () => new Promise((resolve) => (heard = resolve))
    const target = new URL(redis.url)
    proxy = await startHoldingProxy(target)
    const proxyUrl = proxy.url
    const base = { prefix: 'ppc', deploymentId: 'd1', leaseWaitMs: 2000, ...redis.options }
    // W rewrites on demand straight to Redis; R follows by push through the proxy. Different
    // connect timeouts: two runtimes, as two processes would have.
    const OnDemand = createIncrementalCacheHandler({
      ...base,
      redisUrl: redis.url,
      connectTimeoutMs: 4001,
    })
    const W = onDemand(OnDemand)
    const RH = createIncrementalCacheHandler({
      ...base,
      redisUrl: proxyUrl,
      tagSync: 'push',
      connectTimeoutMs: 4002,
      debug: true,
    })
    const R = () => new RH({})
    const gets = () => commandCalls(redis, 'get')
    // R caught up: it serves a page from its tier, no GET.
    await W().set('/warm', appPage('w'), APP_PAGE_CTX)
    let warm = false
    for (let i = 0; i < 2000 && !warm; i++) {
      const g = await gets()
      warm = (await pageHtml(R, '/warm')) === '<p>w</p>' && (await gets()) === g
      if (!warm) await new Promise((r) => setImmediate(r))
    }
    assert.ok(warm, 'R never served from its tier')
    const first = announced()
    await W().set('/p', appPage('v1'), APP_PAGE_CTX)
    await first
    // Read A's GET goes out; its reply (v1) is held.
    proxy.hold = true
    const sent = proxy.sentGet()
    const a = pageHtml(R, '/p')
    await sent
    // W rewrites /p; R applies the announcement (the subscriber's replies are not held).
    const second = announced()
    await W().set('/p', appPage('v2'), APP_PAGE_CTX)
    await second
    // Read B starts after the announcement, while A's GET is in flight (it reaches its GET
    // before the held reply can arrive: no I/O on its way). It must get v2: joining A's GET
    // would hand it v1, which the announced write replaced before B began.
    const b = pageHtml(R, '/p')
    proxy.release()
    assert.equal(await a, '<p>v1</p>', 'A read Redis before the rewrite')
    assert.equal(await b, '<p>v2</p>', 'B, begun after the announcement, gets the rewrite')
    // Reads that begin now, after the rewrite and its announcement, must see it.
    const seen = []
    for (let i = 0; i < 5; i++) seen.push(await pageHtml(R, '/p'))
    assert.deepEqual(seen, Array(5).fill('<p>v2</p>'))
  },
)
