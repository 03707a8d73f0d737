// Reads of one key in one process share a GET in flight (read-driver.ts, `share`), but a read
// that begins after an on-demand page rewrite resolved must get the rewrite (decision 0021):
// it may not join a GET that reached Redis before the rewrite. A proxy holds the replies so
// the interleaving is exact: the first GET has been answered, the rewrite resolves, then the
// second read begins while the first reply is still on its way.
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
  onDemand,
  startHoldingProxy,
  startTestRedis,
} from './helpers.mjs'

let redis
let proxy

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-shared-reads-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  proxy?.close()
  await redis?.stop()
})

test(
  'a read that begins after an on-demand page rewrite resolved gets it, though a GET sent before is in flight',
  { skip: REDIS_CLUSTER && 'the proxy fronts one server' },
  async () => {
    proxy = await startHoldingProxy(new URL(redis.url))
    const base = { prefix: 'shr', deploymentId: 'd1', ...redis.options }
    // W rewrites on demand straight to Redis; R reads through the proxy (pull mode, the
    // default). Different connect timeouts: two runtimes, as two processes would have.
    const OnDemand = createIncrementalCacheHandler({
      ...base,
      redisUrl: redis.url,
      connectTimeoutMs: 4001,
    })
    const W = onDemand(OnDemand)
    // A read budget above the proxy's hold: a timed-out GET would serve R's outage copy.
    const RH = createIncrementalCacheHandler({
      ...base,
      redisUrl: proxy.url,
      connectTimeoutMs: 4002,
      readTimeoutMs: 10_000,
    })
    const html = async (key) => (await new RH({}).get(key, { kind: 'APP_PAGE' }))?.value.html
    await W().set('/p', appPage('first-version'), APP_PAGE_CTX)
    assert.equal(await html('/p'), '<p>first-version</p>', 'R reads through the proxy')
    // Read A's GET is answered by Redis (first-version); the reply is held.
    proxy.hold = true
    const gets = proxy.gets
    const a = html('/p')
    await proxy.replied(Buffer.from('first-version'))
    // The rewrite resolves, then read B begins while A's reply is still held.
    await W().set('/p', appPage('second-version'), APP_PAGE_CTX)
    const b = html('/p')
    // B's own GET, had it joined A's none would come: then the read's value below fails it.
    await Promise.race([
      proxy.getsSent(gets + 2),
      // Unref'd: once the GET came, this wait must not hold the process for its 2 s.
      new Promise((resolve) => setTimeout(resolve, 2000).unref()),
    ])
    proxy.release()
    assert.equal(await a, '<p>first-version</p>', 'A read Redis before the rewrite')
    assert.equal(await b, '<p>second-version</p>', 'B, begun after the rewrite resolved, gets it')
  },
)
