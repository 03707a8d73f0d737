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

const timeouts = { readTimeoutMs: 300, writeTimeoutMs: 300, connectTimeoutMs: 300 }

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
    await h().set('/o', appPage('v1'), APP_PAGE_CTX)
    assert.equal(await html(), '<p>v1</p>')
    // The GET goes out, then the write (EVALSHA when it announces itself, else SET): Redis
    // runs them in that order on the one connection, and their replies are held.
    proxy.hold = true
    const gotGet = proxy.sentGet()
    const reading = html()
    await gotGet
    const gotWrite = proxy.sentWrite()
    const writing = h().set('/o', appPage('v2'), APP_PAGE_CTX)
    await gotWrite
    proxy.release()
    assert.equal(await reading, '<p>v1</p>', 'the GET ran before the write')
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
  const other = createUseCacheHandler({ ...base, redisUrl: redis.url, connectTimeoutMs: 301 })
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
