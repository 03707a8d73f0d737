// A copy that left the tier (docs/failures.md, "The copy an outage serves"): the tier's copy never goes
// back in the order this process sent its commands, but the rule only compares a reply with a
// copy that is held. Once this process's own copy of a key is evicted (another key's copy
// needs the room), a read whose GET went out before the process's write of the key, judged
// after that write ended, fills the empty place with the value the write replaced. For
// `'use cache'` that copy serves while Redis answers, so the process serves a value older than
// its own write that landed (outage-copy-order.test.mjs's failure, reached through an eviction).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import {
  APP_PAGE_CTX,
  appPage,
  startHoldingProxy,
  startTestRedis,
  text,
  useCacheEntry,
} from './helpers.mjs'

let redis
let proxy

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-outage-evict-'))
  redis = await startTestRedis({ logDir })
  proxy = await startHoldingProxy(new URL(redis.url))
})

after(async () => {
  proxy?.close()
  await close()
  await redis?.stop()
})

// Far above any round trip here: no step waits a budget out (replies are held only until the
// write goes out, and the outage is a refused connection, which fails at once), and on a
// loaded machine a 300 ms budget can run out while a reply is held or before the first
// connection is up.
const timeouts = { readTimeoutMs: 10_000, writeTimeoutMs: 10_000, connectTimeoutMs: 10_000 }
const filler = 'x'.repeat(4000)

for (const evict of [false, true]) {
  test(`a 'use cache' read sent before this process's write of the key, judged after the write ended, does not refill the tier with the replaced value (${evict ? "the writer's copy evicted meanwhile" : 'no eviction'})`, async (t) => {
    if (redis.cluster) {
      t.skip('one proxy in front of one Redis')
      return
    }
    proxy.uncut()
    const prefix = `oe-${String(evict)}`
    const base = { prefix, deploymentId: 'd1', leases: false, ...timeouts }
    // Another instance stores v1 compressed: this process's read of it inflates it off the
    // event loop, so it is judged after the write below has ended (its reply follows the
    // GET's in the same chunk).
    const other = createUseCacheHandler({
      ...base,
      redisUrl: redis.url,
      compressMinBytes: 1,
      connectTimeoutMs: timeouts.connectTimeoutMs + 1,
    })
    const entry = (v) => useCacheEntry(v, { tags: [], revalidate: 600 })
    await other.set('k', Promise.resolve(entry(`v1${filler}`)))
    // A tier with room for `k`'s copy or `big`'s, not both.
    const h = createUseCacheHandler({
      ...base,
      redisUrl: proxy.url,
      compressMinBytes: 0,
      memoryBytes: 12000,
    })
    const got = async () => {
      const e = await h.get('k', [])
      return e === undefined ? undefined : (await text(e.value)).slice(0, 2)
    }
    proxy.hold = true
    const gotGet = proxy.sentGet()
    const reading = got()
    await gotGet
    let gotWrite = proxy.sentWrite()
    const writing = h.set('k', Promise.resolve(entry(`v2${filler}`)))
    await gotWrite
    let writingBig = Promise.resolve()
    if (evict) {
      // Its copy is kept before it is sent, and pushes `k`'s out.
      gotWrite = proxy.sentWrite()
      writingBig = h.set('big', Promise.resolve(entry('b'.repeat(9000))))
      await gotWrite
    }
    proxy.release()
    assert.equal(await reading, 'v1', 'the GET ran before the write')
    await writing
    await writingBig
    // Redis holds v2, this process's own write, which landed. A fresh tier copy serves
    // without asking Redis.
    assert.equal(await got(), 'v2', "the tier serves the value this process's write replaced")
  })
}

test("a page read sent before this process's write of the page, judged after the write ended, does not refill the tier for the next outage once the writer's copy was evicted", async (t) => {
  if (redis.cluster) {
    t.skip('one proxy in front of one Redis')
    return
  }
  proxy.uncut()
  const kind = 'APP_PAGE'
  const value = (v, pad = filler) => appPage(v, pad)
  const ctx = APP_PAGE_CTX
  const base = { prefix: 'oe-page', deploymentId: 'd1', tagSync: 'pull', ...timeouts }
  // Another instance stores v1 compressed (inflated off the event loop when read here).
  const Other = createIncrementalCacheHandler({
    ...base,
    redisUrl: redis.url,
    compressMinBytes: 1,
    connectTimeoutMs: timeouts.connectTimeoutMs + 1,
  })
  await new Other({}).set('/o', value('v1'), ctx)
  const H = createIncrementalCacheHandler({
    ...base,
    redisUrl: proxy.url,
    compressMinBytes: 0,
    memoryBytes: 12000,
  })
  const h = () => new H({})
  const html = async (key = '/o') => (await h().get(key, { kind }))?.value.html.slice(0, 9)
  proxy.hold = true
  const gotGet = proxy.sentGet()
  const reading = html()
  await gotGet
  let gotWrite = proxy.sentWrite()
  const writing = h().set('/o', value('v2'), ctx)
  await gotWrite
  // Its copy is kept before it is sent, and pushes the copy of /o out.
  gotWrite = proxy.sentWrite()
  const writingBig = h().set('/big', value('big', 'b'.repeat(9000)), ctx)
  await gotWrite
  proxy.release()
  assert.equal(await reading, '<p>v1</p>', 'the GET ran before the write')
  await writing
  await writingBig
  // An outage: whatever the tier holds of /o serves.
  proxy.cut()
  assert.notEqual(
    await html(),
    '<p>v1</p>',
    "the outage serves the page this process's own write replaced in Redis",
  )
})
