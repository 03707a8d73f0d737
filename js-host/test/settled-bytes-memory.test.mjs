// Reads of one key share a `GET` in flight (`share` in js-host/src/read-driver.ts) and a get sees
// a set of its key in flight (`pending` in js-host/src/use-cache-handler.ts), through maps that
// live as long as the process. An entry removed from such a map stayed reachable for V8's minor
// collections until the next full one, with the bytes it held: every reply (a view into
// node-redis's socket read of up to 64 KiB) and every envelope written was promoted, and full
// collections came several times as often as node-redis alone doing the same I/O. Each loop
// here is measured against node-redis's in the same process, by the full collections the
// runtime reports. When written, 64 KiB entries, Node 20: 30,000 reads ran 7 where node-redis
// alone ran 5 (51 with the entries keeping their bytes); 20,000 writes 8 where node-redis's SETs
// of a new buffer each ran 4 (37 before). Node 24 collects in full on the rate of new memory
// alone, in both loops and whether or not the entries keep their bytes (reads 92 to 102 against
// 64 to 80, writes 46 to 52 against 23 or 24): there these counts tell little, and the bounds
// hold all the same.
//
// Needs `node --expose-gc` (the Makefile's test-js runs this file with it).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { bytes, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { createClient, RESP_TYPES } = require('redis')

// Entries of 64 KiB: a kept reply or envelope weighs as much as a socket read.
const SIZE = 64 * 1024
const KEYS = 32
const IN_FLIGHT = 16

let redis
let raw

before(async () => {
  assert.equal(typeof globalThis.gc, 'function', 'run this file with node --expose-gc')
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-settled-'))
  redis = await startRedis({ logDir })
  raw = createClient({ url: redis.url, commandOptions: { timeout: 0 } }).withTypeMapping({
    [RESP_TYPES.BLOB_STRING]: Buffer,
  })
  await raw.connect()
})

after(async () => {
  await raw?.close()
  await close()
  await redis?.stop()
})

/** Full collections while `op(0..ops-1)` runs from IN_FLIGHT loops. */
async function fullCollections(op, ops) {
  let full = 0
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) full++
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  let next = 0
  const loop = async () => {
    for (let i = next++; i < ops; i = next++) await op(i)
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, loop))
  // The observer's entries come in a later turn.
  await new Promise((resolve) => setImmediate(resolve))
  observer.disconnect()
  return full
}

function handler(prefix) {
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix,
    deploymentId: 'd1',
    // Every read goes to Redis, and only the read and the write are measured.
    memoryBytes: 0,
    leases: false,
    compressMinBytes: false,
  })
}

test('hits read from Redis let go of their replies as node-redis does', async (t) => {
  const h = handler('settled-reads')
  await h.refreshTags()
  const payload = Buffer.alloc(SIZE, 0x61)
  for (let i = 0; i < KEYS; i++) {
    await raw.set(`settled:raw:${i}`, payload)
    await h.set(`k-${i}`, Promise.resolve(useCacheEntry(payload)))
  }
  const ops = 30_000
  const rawFull = await fullCollections(async (i) => {
    assert.equal((await raw.get(`settled:raw:${i % KEYS}`)).length, SIZE)
  }, ops)
  const fcFull = await fullCollections(async (i) => {
    const e = await h.get(`k-${i % KEYS}`, [])
    assert.ok(e, 'a hit')
    assert.equal((await bytes(e.value)).length, SIZE)
  }, ops)
  t.diagnostic(`${ops} reads of ${SIZE} B: ${fcFull} full collections, node-redis alone ${rawFull}`)
  assert.ok(
    fcFull <= 2 * rawFull + 10,
    `${fcFull} full collections in ${ops} reads, node-redis alone ${rawFull}`,
  )
})

test('writes let go of their envelopes once they landed', async (t) => {
  const h = handler('settled-writes')
  await h.refreshTags()
  const payload = Buffer.alloc(SIZE, 0x62)
  const ops = 20_000
  // Each SET of a new buffer, as each write stores a new envelope (header and payload): what
  // the runtime's heuristics do with that much new memory (Node 24 collects in full on the
  // rate alone) falls on both loops alike.
  const header = Buffer.alloc(64)
  const rawFull = await fullCollections(async (i) => {
    await raw.set(`settled:rawset:${i % 64}`, Buffer.concat([header, payload]))
  }, ops)
  const fcFull = await fullCollections(async (i) => {
    await h.set(`w-${i % 64}`, Promise.resolve(useCacheEntry(payload)))
  }, ops)
  t.diagnostic(
    `${ops} writes of ${SIZE} B: ${fcFull} full collections, node-redis alone ${rawFull}`,
  )
  assert.ok(
    fcFull <= 2 * rawFull + 18,
    `${fcFull} full collections in ${ops} writes, node-redis alone ${rawFull}`,
  )
})
