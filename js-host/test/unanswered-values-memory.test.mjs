// Writes this process gave up on at their deadline stay in node-redis's queue, with
// their values, until Redis answers or the socket closes. While Redis hangs (here: the
// redis-server this file started, paused by PID) a burst of large writes held every value
// (200 writes of 1 MiB: 210 MB) for as long as the hang lasted. The transport now holds at
// most MAX_UNANSWERED_VALUE_BYTES (64 MiB) of values in unanswered commands per connection;
// past it a write fails at once, not stored.
//
// Needs `node --expose-gc` (the Makefile's test-js runs this file with it).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { capture, memoryAfterGc, resumeAndStop, settled, useCacheEntry } from './helpers.mjs'

const MiB = 1024 * 1024

let redis

before(async () => {
  assert.equal(typeof globalThis.gc, 'function', 'run this file with node --expose-gc')
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-unanswered-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await resumeAndStop(redis)
})

/** ArrayBuffer memory of the process after full collections. */
async function retained() {
  return (await memoryAfterGc()).arrayBuffers
}

/** The handler under test: budgets of `budgetMs`, short by default (the pause exhausts them). */
function handler(budgetMs = 300) {
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'unanswered',
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    compressMinBytes: false,
    readTimeoutMs: budgetMs,
    writeTimeoutMs: budgetMs,
    // The burst goes out before any write times out; the breaker is not what bounds it.
    breakerFailures: 1000,
  })
}

test('writes given up on while Redis hangs hold at most 64 MiB of values', async () => {
  // Warmed first with long budgets (the tag pull's script loaded, a 1 MiB write and read run),
  // then closed: the set-up below runs what is warm already, and retries what timed out.
  const w = handler(10_000)
  await w.refreshTags()
  await w.set('warm-big', Promise.resolve(useCacheEntry(Buffer.alloc(MiB, 97))))
  assert.ok(await w.get('warm-big', []), 'the warm-up write is stored')
  await close()
  const h = handler()
  await settled(stats, 'refreshTags', () => h.refreshTags())
  await settled(stats, 'a read', () => h.get('warm', []))
  const before = await retained()
  process.kill(redis.pid, 'SIGSTOP')
  let held
  try {
    await capture(async () => {
      await Promise.all(
        Array.from({ length: 120 }, (_, i) =>
          h.set(
            `big-${String(i)}`,
            Promise.resolve(useCacheEntry(Buffer.alloc(MiB, 97 + (i % 20)))),
          ),
        ),
      )
    })
    // Every set has returned; a write that timed out lets its value go once its own task
    // ends, but node-redis holds what it sent until Redis answers, which it does not here: the
    // memory is polled for up to 3 s (ten times the write budget), while Redis still hangs.
    const until = performance.now() + 3000
    do {
      held = (await retained()) - before
    } while (held >= 80 * MiB && performance.now() < until)
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  assert.ok(held < 80 * MiB, `${(held / MiB).toFixed(1)} MiB held while Redis hung`)
  // Once Redis answers, writes go through again.
  let stored = false
  for (let i = 0; i < 50 && !stored; i++) {
    await capture(() => h.set('after', Promise.resolve(useCacheEntry('back'))))
    stored = (await h.get('after', [])) !== undefined
    if (!stored) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.ok(stored, 'a write after Redis answered again is stored')
})
