// A stall of this process's event loop (a long synchronous render, a garbage collection) is no
// Redis failure: replies that came in while the loop was blocked are read before any deadline
// that passed meanwhile is called (js-host/src/deadlines.ts), so the reads hit and the breaker
// counts no timeout.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { startTestRedis, text, useCacheEntry } from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-stall-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

/** Blocks the event loop for `ms`, as a long synchronous render does. */
function block(ms) {
  const end = performance.now() + ms
  while (performance.now() < end) {
    // busy: nothing else of this process runs
  }
}

test('a stall of the event loop longer than the read budget, while replies are on their way, times out no read', async () => {
  const h = createUseCacheHandler({
    prefix: 'stall',
    deploymentId: 'd1',
    redisUrl: redis.url,
    readTimeoutMs: 100,
    leases: false,
    memoryBytes: 0,
  })
  const keys = Array.from({ length: 16 }, (_, i) => `k${String(i)}`)
  for (const key of keys) await h.set(key, Promise.resolve(useCacheEntry(key)))
  // Warm: every command path compiled and the connection up.
  for (const key of keys) await h.get(key, [])
  const before = stats()
  // The reads are sent (node-redis writes them in the next turn), then the loop is blocked
  // for four times their budget while Redis answers them.
  const reads = keys.map((key) => h.get(key, []))
  await new Promise((resolve) => {
    setImmediate(() => {
      block(400)
      resolve()
    })
  })
  const got = await Promise.all(reads)
  const after = stats()
  assert.deepEqual(
    await Promise.all(got.map((e) => (e === undefined ? undefined : text(e.value)))),
    keys,
    'every read hit',
  )
  assert.equal(after.redis.timeouts - before.redis.timeouts, 0, 'no command timed out')
  assert.equal(after.breaker.trips - before.breaker.trips, 0, 'the breaker never opened')
})
