// A revalidation still in the outbox when the process shuts down (`close()`, as a
// SIGTERM handler calls it during a rolling deploy) against a real redis-server. Redis hung for
// a moment, the breaker opened, a revalidation was queued; Redis answers again and the process
// is stopped before its retry timer fires. close() neither sends the queue nor says that it
// drops it: the revalidation is lost for the whole fleet (the process that issued it is gone
// with its mirror), and the entry it invalidated is served fresh by every other instance.
// The test pauses and resumes only the redis-server it started, by PID.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import {
  capture,
  now,
  pausedRedisInstance,
  resumeAndStop,
  settled,
  useCacheEntry,
} from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-outbox-close-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await resumeAndStop(redis)
})

/** One instance of the fleet (`pausedRedisInstance`). */
function instance(n, budgetMs = 200) {
  return createUseCacheHandler(pausedRedisInstance(redis.url, 'obxclose', n, budgetMs))
}

/**
 * Set-up that no budget of the instance under test can fail: another instance, with long
 * budgets, runs every script the test sends first (Redis loads it) and `prepare(w)`; then it
 * is closed, so that the test's close() has only the instance under test to close.
 */
async function warmed(n, prepare = async () => {}) {
  const w = instance(n, 10_000)
  await w.refreshTags()
  await w.updateTags([`obx-warm-${String(n)}`])
  await prepare(w)
  await close()
}

test('a revalidation queued when the process closes reaches Redis', async () => {
  await warmed(11, async (w) => {
    await w.set(
      'page-data',
      Promise.resolve(useCacheEntry('old', { tags: ['obx-t'], timestamp: now() - 5 })),
    )
    assert.ok(await w.get('page-data', []), 'stored before the outage')
  })
  const a = instance(1)
  await settled(stats, 'refreshTags', () => a.refreshTags())

  process.kill(redis.pid, 'SIGSTOP')
  let lines
  try {
    lines = await capture(async () => {
      // Two reads time out: the breaker opens, so the revalidation is not sent at all.
      assert.equal(await a.get('other-1', []), undefined)
      assert.equal(await a.get('other-2', []), undefined)
      await a.updateTags(['obx-t'])
    })
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  assert.ok(
    lines.some((l) => /obx-t/.test(l) && /queued/.test(l)),
    `queued while the breaker was open: ${lines.join('\n')}`,
  )
  assert.equal(await a.get('page-data', []), undefined, 'in force on its own instance')

  // Redis answers again; the process is told to stop (a rolling deploy's SIGTERM handler).
  const atClose = await capture(async () => {
    await close()
  })

  // Another instance of the fleet (or the same one restarted).
  const b = instance(2)
  await b.refreshTags()
  assert.equal(
    await b.get('page-data', []),
    undefined,
    'close() sends the queued revalidation of obx-t, the breaker open or not: another instance ' +
      `no longer serves the entry it invalidated; close() logged: ${JSON.stringify(atClose)}`,
  )
  assert.ok(!atClose.some((l) => /closing with/.test(l)), 'nothing reported lost')
  await close()
})

test('a revalidation close() cannot send is reported lost within its budget', async () => {
  await warmed(13)
  const a = instance(3)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  process.kill(redis.pid, 'SIGSTOP')
  try {
    const queued = await capture(async () => {
      assert.equal(await a.get('other-3', []), undefined)
      assert.equal(await a.get('other-4', []), undefined)
      await a.updateTags(['obx-lost'])
    })
    assert.ok(
      queued.some((l) => /obx-lost/.test(l) && /queued/.test(l)),
      `the queued line names the tags: ${JSON.stringify(queued)}`,
    )
    // Redis still does not answer when the process closes: one attempt under the write
    // budget (200 ms, plus the connection's), then the line.
    const t0 = performance.now()
    const atClose = await capture(async () => {
      await close()
    })
    const ms = performance.now() - t0
    assert.ok(
      atClose.some((l) => /closing with 1 queued revalidation\(s\) not sent to Redis/.test(l)),
      `close() says how many it could not send: ${JSON.stringify(atClose)}`,
    )
    assert.ok(ms < 4_000, `close() took ${ms.toFixed(0)} ms`)
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
})
