// The page-write sequence erased while page entries stay (decision 0031): the tag
// state's meta hash lost alone (DEL by hand, eviction) takes pver and pvid with it, not the
// page entries the writes made. A process that follows by push and missed a page write must
// not take a pull that finds no page write for "nothing written since", even when its previous
// pull found none either: one state without a page write cannot be told from the next
// (PushFollow::page_write_pulled). One real Redis; the reader's connections go through a proxy
// that holds its subscriber's messages back.
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
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-page-push-meta-loss-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  proxy?.close()
  await redis?.stop()
})

const gets = () => commandCalls(redis, 'get')

/** Reads `key` on R until R serves `want` from its tier (caught up: no `GET`); bounded. */
async function fromTier(R, key, want) {
  for (let i = 0; i < 500; i++) {
    const g = await gets()
    if ((await pageHtml(R, key)) === want && (await gets()) === g) return true
    await new Promise((r) => setTimeout(r, 10))
  }
  return false
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

test(
  "tagSync 'push': a page rewrite missed, then the meta hash lost alone twice: the old copy is not served past the bound",
  {
    skip:
      REDIS_CLUSTER &&
      'page writes are not announced on Redis Cluster: pages are read from Redis there',
  },
  async () => {
    const prefix = 'pmeta'
    const meta = `${prefix}:tags:{${prefix}}:meta`
    proxy = await startHoldingProxy(new URL(redis.url))
    const OnDemand = createIncrementalCacheHandler({
      prefix,
      deploymentId: 'd1',
      ...redis.options,
      redisUrl: redis.url,
      connectTimeoutMs: 4301,
    })
    const W = onDemand(OnDemand)
    const RH = createIncrementalCacheHandler({
      prefix,
      deploymentId: 'd1',
      ...redis.options,
      redisUrl: proxy.url,
      tagSync: 'push',
      connectTimeoutMs: 4302,
    })
    const R = () => new RH({})
    // R caught up and serving pages from its tier.
    await W().set('/warm', appPage('w'), APP_PAGE_CTX)
    assert.ok(await fromTier(R, '/warm', '<p>w</p>'), 'R never served from its tier')
    await W().set('/p', appPage('v1'), APP_PAGE_CTX)
    // The meta hash lost alone: no tag record exists, so the state reads as none at all
    // (epoch '', no page write). R's periodic pulls (every second at most) find it so.
    assert.equal(await redis.command('DEL', meta), 1)
    await sleep(1300)
    // R reads v1 from Redis and keeps the copy; it may serve it from its tier from here on.
    assert.equal(await pageHtml(R, '/p'), '<p>v1</p>')
    // R's subscriber hears nothing more (a stalled link: R does not notice), its data
    // connection answers as usual.
    proxy.hold = true
    proxy.all = true
    proxy.releaseData()
    await W().set('/p', appPage('v2'), APP_PAGE_CTX)
    assert.equal(await pageHtml(W, '/p'), '<p>v2</p>', 'the rewrite has resolved')
    // Lost alone again: the sequence reads as it did at R's last pull.
    assert.equal(await redis.command('DEL', meta), 1)
    const resolved = performance.now()
    await sleep(1300)
    assert.ok(performance.now() - resolved >= 1000)
    assert.equal(
      await pageHtml(R, '/p'),
      '<p>v2</p>',
      'R served the value the rewrite replaced, 1.3 s after it resolved',
    )
    proxy.release()
  },
)
