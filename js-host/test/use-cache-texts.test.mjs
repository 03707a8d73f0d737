// A reused 'use cache' read machine takes its strings through its texts area (read-driver.ts
// `writeTexts`): a byte view of wasm memory kept between reads. When the memory grows between two
// reads, the old view is detached and a write through it is silently dropped, so the machine would
// read the previous read's key of the same length. The driver re-makes the view; this pins it on a
// real module and a real redis-server.
//
// The same holds for the f64 view a step's answer is read from (read-driver.ts, `Read.run`):
// keeping a Redis reply in the tier calls into wasm (`memoryInsert`), which may grow the memory and
// detach the view the tier action was read from. An answer read through it reads every field as 0:
// served Fresh, source None, so no bytes are taken and the hit reads as a miss (fixed in 5115e88).
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

describe('texts area across a memory growth', () => {
  test('a warm machine reads the key written after the memory grew, not the last one', async () => {
    const handler = createUseCacheHandler({
      redisUrl: redis.url,
      prefix: 'jstexts',
      deploymentId: 'd1',
      ...redis.options,
    })
    // Same length: a dropped write would leave the old key's bytes whole in the area.
    await handler.set('key-A', Promise.resolve(useCacheEntry('value A', { tags: ['t'] })))
    await handler.set('key-B', Promise.resolve(useCacheEntry('value B', { tags: ['t'] })))
    // Twice: the second read reuses the first's machine and makes the byte view.
    for (let i = 0; i < 2; i++) {
      const a = await handler.get('key-A', ['soft-a'])
      assert.ok(a)
      assert.equal(await text(a.value), 'value A')
    }
    const memory = handler.io.binding.wasmMemory()
    const before = memory.buffer.byteLength
    // Grows the module's memory: the glue copies this string in (the name is then refused).
    assert.throws(() => handler.io.binding.Interface.useCache('x'.repeat(before + (1 << 20))))
    assert.ok(memory.buffer.byteLength > before, 'the memory grew')
    const b = await handler.get('key-B', ['soft-b'])
    assert.ok(b, 'a hit for key-B')
    assert.equal(await text(b.value), 'value B')
  })
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
