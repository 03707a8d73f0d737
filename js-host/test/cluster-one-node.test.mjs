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
  const kind = 'APP_PAGE'
  const value = (v) => ({
    kind,
    html: `<p>${v}</p>`,
    rscData: Buffer.from(v),
    headers: {},
    status: 200,
    postponed: undefined,
    segmentData: undefined,
  })
  const ctx = { kind, cacheControl: { revalidate: false, expire: undefined } }
  const base = { prefix: 'c1n', deploymentId: 'd1', redisUrl: node.url }
  // Two runtimes, as two processes would have (different connect timeouts).
  const OnDemand = createIncrementalCacheHandler({ ...base, connectTimeoutMs: 4001 })
  const W = () => new OnDemand({ _requestHeaders: { 'x-prerender-revalidate': 'id' } })
  const RH = createIncrementalCacheHandler({
    ...base,
    tagSync: 'push',
    connectTimeoutMs: 4002,
  })
  const R = () => new RH({})
  const html = async (h, key) => (await h().get(key, { kind }))?.value.html
  const gets = async () =>
    Number(
      /cmdstat_get:calls=(\d+)/.exec(String(await node.command('INFO', 'commandstats')))?.[1] ?? 0,
    )
  const evals = async () => {
    const stats = String(await node.command('INFO', 'commandstats'))
    return ['evalsha', 'eval'].reduce(
      (n, c) => n + Number(new RegExp(`cmdstat_${c}:calls=(\\d+)`).exec(stats)?.[1] ?? 0),
      0,
    )
  }
  await W().set('/p', value('v1'), ctx)
  assert.equal(await html(R, '/p'), '<p>v1</p>', 'the first page write landed')
  // Every read of R goes to Redis: one GET each, however long R has been caught up.
  for (let i = 0; i < 20; i++) {
    const g = await gets()
    assert.equal(await html(R, '/p'), '<p>v1</p>')
    assert.equal(await gets(), g + 1, `read ${String(i)} was served without a GET`)
    await new Promise((r) => setImmediate(r))
  }
  // Later writes are plain SETs (no script refused first), and each is read at once.
  const e = await evals()
  await W().set('/p', value('v2'), ctx)
  assert.equal(await evals(), e, 'the writer no longer sends the announcing script')
  assert.equal(await html(R, '/p'), '<p>v2</p>')
  assert.equal(await html(W, '/p'), '<p>v2</p>')
})
