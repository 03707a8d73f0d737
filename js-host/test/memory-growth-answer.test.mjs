// The read driver builds a step's answer from the f64 view it read the step's tier action
// from (read-driver.ts, `Read.run`), after acting on that action: keeping a Redis reply in the
// tier calls into wasm (`memoryInsert`), which may grow the module's memory and detach the
// view. An answer read through a detached view reads every field as 0: served Fresh, source
// None, so no bytes are taken and the hit reads as a miss (review 7).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { createUseCacheHandler, close } from '../esm/index.mjs'
import { startTestRedis, text, useCacheEntry } from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-js-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

describe('memory growth while a reply is kept in the tier', () => {
  test('a Redis hit whose reply is kept as the memory grows is served', async () => {
    const options = { redisUrl: redis.url, prefix: 'jsgrow', deploymentId: 'd1', ...redis.options }
    // Two runtimes (one per configuration): the reader's tier does not hold the writer's copy.
    const writer = createUseCacheHandler({ ...options, connectTimeoutMs: 2001 })
    const reader = createUseCacheHandler({ ...options, connectTimeoutMs: 2002 })
    await writer.set('k', Promise.resolve(useCacheEntry('value', { tags: ['t'] })))
    const memory = reader.io.binding.wasmMemory()
    const store = reader.rt.store
    const remember = store.remember.bind(store)
    let grew = false
    // What memoryInsert does when its allocation needs a new page.
    store.remember = (...args) => {
      const before = memory.buffer.byteLength
      memory.grow(1)
      grew = memory.buffer.byteLength > before
      remember(...args)
    }
    const got = await reader.get('k', [])
    assert.ok(grew, 'the reply was kept and the memory grew meanwhile')
    assert.ok(got, 'a hit')
    assert.equal(await text(got.value), 'value')
  })
})
