// A cluster-enabled Redis behind a single URL (one node holding every slot, as some managed
// "cluster mode" offers are): without `cluster: true` the handler takes it for a plain Redis.
// The page write script spans the entry's slot and the tag state's, so Redis answers CROSSSLOT:
// the write must still land (the plain write, unannounced from then on), and a process that
// follows the tag state by push must never serve a page copy from its tier there, since no
// page write is announced (decision 0031).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { APP_PAGE_CTX, appPage, commandCalls, onDemand, pageHtml } from './helpers.mjs'
import { close, createIncrementalCacheHandler } from '../esm/index.mjs'
import { startClusterEnabledServer } from '../../tests/support/redis-cluster.mjs'

let node

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cluster-one-node-'))
  node = await startClusterEnabledServer({ logDir })
})

after(async () => {
  await close()
  await node?.stop()
})

test('on one cluster-enabled node, page writes land and push serves no page copy from the tier', async () => {
  const base = { prefix: 'c1n', deploymentId: 'd1', redisUrl: node.url }
  // Two runtimes, as two processes would have (different connect timeouts).
  const OnDemand = createIncrementalCacheHandler({ ...base, connectTimeoutMs: 4001 })
  const W = onDemand(OnDemand)
  const RH = createIncrementalCacheHandler({
    ...base,
    tagSync: 'push',
    connectTimeoutMs: 4002,
  })
  const R = () => new RH({})
  const gets = () => commandCalls(node, 'get')
  const evals = () => commandCalls(node, 'evalsha', 'eval')
  await W().set('/p', appPage('v1'), APP_PAGE_CTX)
  assert.equal(await pageHtml(R, '/p'), '<p>v1</p>', 'the first page write landed')
  // Every read of R goes to Redis: one GET each, however long R has been caught up.
  for (let i = 0; i < 20; i++) {
    const g = await gets()
    assert.equal(await pageHtml(R, '/p'), '<p>v1</p>')
    assert.equal(await gets(), g + 1, `read ${String(i)} was served without a GET`)
    await new Promise((r) => setImmediate(r))
  }
  // Later writes are plain SETs (no script refused first), and each is read at once.
  const e = await evals()
  await W().set('/p', appPage('v2'), APP_PAGE_CTX)
  assert.equal(await evals(), e, 'the writer no longer sends the announcing script')
  assert.equal(await pageHtml(R, '/p'), '<p>v2</p>')
  assert.equal(await pageHtml(W, '/p'), '<p>v2</p>')
})
