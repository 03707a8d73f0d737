// Review 18: pooled read machines (ReadMachines in js-host/src/read-driver.ts, MACHINE_POOL 64)
// keep their buffers' capacity across reuses (`refill` in crates/fleetcache-core/src/
// read_machine.rs): a machine that once read a long cache key keeps room for it for the life of
// the process. A `'use cache'` cache key holds the function's serialized arguments, so its
// length is the application's (reads accept any length; only stores stop at 256 KiB). Reads at
// full concurrency with never more than one long key in flight at a time spread long keys over
// every pooled machine, and the wasm memory (which never shrinks) grows by the pool size times
// the key, where one read of it needs the key once.
// Against a real redis-server.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-readpool-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

const KEY_BYTES = 512 * 1024
const CONCURRENT = 64
const ROUNDS = 200
/** What one long key in flight may cost, with room for whatever else the reads allocate. */
const ALLOWED = 8 * KEY_BYTES

test('reads with one long cache key in flight at a time keep no room for it per pooled machine', async (t) => {
  const h = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'readpool',
    deploymentId: 'd1',
    leases: false,
  })
  await h.refreshTags()
  // The pool at its full size, with short keys.
  for (let r = 0; r < 5; r++) {
    await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => h.get(`short-${i}`, [])))
  }
  const before = wasm.wasmMemory().buffer.byteLength
  let seed = 7
  const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32
  for (let r = 0; r < ROUNDS; r++) {
    const at = Math.floor(next() * CONCURRENT)
    await Promise.all(
      Array.from({ length: CONCURRENT }, (_, i) =>
        h.get(i === at ? `long-${r}-`.padEnd(KEY_BYTES, 'x') : `short-${i}`, []),
      ),
    )
  }
  const grew = wasm.wasmMemory().buffer.byteLength - before
  t.diagnostic(`wasm memory grew ${grew} B, ${(grew / KEY_BYTES).toFixed(1)}x the long key`)
  assert.ok(
    grew <= ALLOWED,
    `wasm memory grew ${(grew / 2 ** 20).toFixed(1)} MiB for ${KEY_BYTES / 1024} KiB keys read one ` +
      `at a time (${(grew / KEY_BYTES).toFixed(0)}x the key)`,
  )
})
