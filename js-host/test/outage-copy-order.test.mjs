// The tier's copy of a key and this process's own write of it (docs/failures.md, "Outages";
// fixed in ddffaa9): a read whose `GET` went out before this process's write of the
// key brings the value the write replaces, and is answered after the write kept its own copy.
// That reply serves the read, but must not replace the writer's copy: for a page it is kept
// for outages only, so the next outage would serve a page older than the process's own write
// that landed; a `'use cache'` copy would even serve while Redis answers.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import {
  APP_PAGE_CTX,
  appPage,
  pageHtml,
  startHoldingProxy,
  startTestRedis,
  text,
  useCacheEntry,
} from './helpers.mjs'

let redis
let proxy

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-outage-copy-'))
  redis = await startTestRedis({ logDir })
  proxy = await startHoldingProxy(new URL(redis.url))
})

after(async () => {
  proxy?.close()
  await close()
  await redis?.stop()
})

// Far above any round trip here: no step waits a budget out (the outage below is a refused
// connection, which fails at once), and on a loaded machine a 300 ms budget ran out before the
// first connection was up, which failed the writes and opened the breaker.
const timeouts = { readTimeoutMs: 10_000, writeTimeoutMs: 10_000, connectTimeoutMs: 10_000 }

/**
 * Reads page `key` through `h` until a read sends the proxy no `GET` and no page read: served
 * from the tier, so the push process is caught up, knows Redis is not cluster-enabled (it reads
 * pages with page_read.lua from then on), and Redis has run page_read.lua once, so the script
 * is in its cache. Bounded: fails after 20 s.
 */
async function caughtUp(h, key, want) {
  const end = performance.now() + 20_000
  while (performance.now() < end) {
    const sent = proxy.gets
    if ((await pageHtml(h, key)) === want && proxy.gets === sent) return
    await new Promise((resolve) => setImmediate(resolve))
  }
  assert.fail(`${key} was never served from the tier: the push process never caught up`)
}

for (const tagSync of ['pull', 'push']) {
  test(`a page read sent before this process's write of the page, answered after it, leaves the writer's copy for the next outage (tagSync ${tagSync})`, async (t) => {
    if (redis.cluster) {
      t.skip('one proxy in front of one Redis')
      return
    }
    proxy.uncut()
    const H = createIncrementalCacheHandler({
      prefix: `oc-${tagSync}`,
      deploymentId: 'd1',
      redisUrl: proxy.url,
      tagSync,
      ...timeouts,
    })
    const h = () => new H({})
    const html = () => pageHtml(h, '/o')
    // The push process's page reads are page_read.lua once it is caught up, and not before:
    // which one the read below sends depends on how far its start-up got, unless it is caught
    // up first.
    if (tagSync === 'push') {
      await h().set('/warm', appPage('w'), APP_PAGE_CTX)
      await caughtUp(h, '/warm', '<p>w</p>')
    }
    // Not read back: a read now could keep v1 to serve (push, caught up), and the read below
    // would then send Redis nothing. The writer's own copy is kept for outages only.
    await h().set('/o', appPage('v1'), APP_PAGE_CTX)
    // The read goes out, then the write (EVALSHA when it announces itself, else SET): Redis
    // runs them in that order on the one connection, and their replies are held.
    proxy.hold = true
    const reading = html()
    // Until Redis has run the read: its reply, held, carries v1.
    await proxy.replied(Buffer.from('<p>v1</p>'))
    const gotWrite = proxy.sentWrite()
    const writing = h().set('/o', appPage('v2'), APP_PAGE_CTX)
    await gotWrite
    proxy.release()
    assert.equal(await reading, '<p>v1</p>', 'the read ran before the write')
    await writing
    // No read since: a read from Redis now would bring v2 and keep it anyway. An outage: the
    // tier's copy serves.
    proxy.cut()
    assert.equal(await html(), '<p>v2</p>', "the outage copy is older than this process's write")
  })
}

test("a 'use cache' read sent before this process's write of the key, answered after it, does not replace the writer's copy", async (t) => {
  if (redis.cluster) {
    t.skip('one proxy in front of one Redis')
    return
  }
  proxy.uncut()
  const base = { prefix: 'oc-uc', deploymentId: 'd1', leases: false, ...timeouts }
  // Another instance (its own runtime: another setting) wrote v1, so this process's read
  // finds no copy of its own and asks Redis.
  const other = createUseCacheHandler({
    ...base,
    redisUrl: redis.url,
    connectTimeoutMs: timeouts.connectTimeoutMs + 1,
  })
  const entry = (v) => useCacheEntry(v, { tags: [], revalidate: 600 })
  await other.set('k', Promise.resolve(entry('v1')))
  const h = createUseCacheHandler({ ...base, redisUrl: proxy.url })
  const got = async () => {
    const e = await h.get('k', [])
    return e === undefined ? undefined : text(e.value)
  }
  proxy.hold = true
  const gotGet = proxy.sentGet()
  const reading = got()
  await gotGet
  const gotWrite = proxy.sentWrite()
  const writing = h.set('k', Promise.resolve(entry('v2')))
  await gotWrite
  proxy.release()
  assert.equal(await reading, 'v1', 'the GET ran before the write')
  await writing
  // Redis answers and holds v2; the tier's copy, fresh, serves without asking it.
  assert.equal(await got(), 'v2', "the tier serves a value older than this process's write")
})
