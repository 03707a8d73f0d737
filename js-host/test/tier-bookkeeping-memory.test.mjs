// The in-process tier's budget (`memoryBytes`) against all the memory the tier
// makes the process retain, with small entries, against a real redis-server. tier-memory.test.mjs
// measures only ArrayBuffer memory (the values); each item also costs bookkeeping the budget
// does not count: in the JS heap (the Map entry, its key string, the Buffer object) and in the
// wasm memory (the index's slot and map entry, the key twice). With entries of tens of bytes,
// that is several times the values themselves.
//
// Needs `node --expose-gc`.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { memoryAfterGc, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')

const BUDGET = 4 * 1024 * 1024
/** Generous: per-item costs that the budget charged would keep it well inside. */
const SLACK = 1.5
const READ_TIMEOUT_MS = 500

let redis

before(async () => {
  assert.equal(typeof globalThis.gc, 'function', 'run this file with node --expose-gc')
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-tier-books-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

/** JS heap, ArrayBuffer and wasm memory after full collections. */
async function retained() {
  const m = await memoryAfterGc()
  return m.heapUsed + m.arrayBuffers + wasm.wasmMemory().buffer.byteLength
}

test('tiny entries: the tier retains at most about its budget, bookkeeping included', async (t) => {
  const h = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'tierbooks',
    deploymentId: 'd1',
    memoryBytes: BUDGET,
    leases: false,
    readTimeoutMs: READ_TIMEOUT_MS,
    writeTimeoutMs: 5_000,
  })
  await h.refreshTags()
  await h.get('warm', [])
  const before = await retained()
  // A 'use cache' function returning a few bytes (a count, a flag): each write keeps its copy.
  const N = 60_000
  for (let i = 0; i < N; i += 64) {
    await Promise.all(
      Array.from({ length: Math.min(64, N - i) }, (_, j) =>
        h.set(`k-${i + j}`, Promise.resolve(useCacheEntry(Buffer.alloc(16, 97), { tags: ['t'] }))),
      ),
    )
  }
  // A set's caller-side wait (the read budget) holds a timer past the write's end: let it pass.
  await sleep(READ_TIMEOUT_MS * 3)
  const held = (await retained()) - before
  const tier = stats().memory
  t.diagnostic(
    `tier counts ${tier.bytes} B in ${tier.entries} entries; process retains ${held} B more, ` +
      `${(held / BUDGET).toFixed(2)}x the budget`,
  )
  // Full (its count, bookkeeping included, near the budget) of entries whose bookkeeping is
  // most of what they cost: several thousand. Not 10,000: at the ~600 B each really costs
  // besides its value (before 0821f1b the process retained 7.7x the budget with 46,603 entries),
  // 10,000 cannot fit 1.5x the budget.
  assert.ok(tier.bytes > BUDGET * 0.9, 'the tier is full')
  assert.ok(tier.entries > 4_000, 'of small entries')
  assert.ok(
    held <= BUDGET * SLACK,
    `retained ${(held / 2 ** 20).toFixed(1)} MiB for a ${BUDGET / 2 ** 20} MiB budget ` +
      `(${(held / BUDGET).toFixed(1)}x) with ${tier.entries} entries of ~${Math.round(tier.bytes / tier.entries)} B`,
  )
})
