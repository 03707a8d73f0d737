// close() with tag sync by push while Redis hangs (the test's own redis-server,
// paused by PID before the handler connects, as a Redis stuck in a long fork or on a saturated
// host). The transport's connection closes within its one-second grace; the announcement
// subscriber's `client.close()` (tag-channel.ts) waits for node-redis's pending commands (its
// SSUBSCRIBE) with no deadline, so close() never resolves while Redis hangs, and a shutdown
// hook that awaits it holds the process until it is killed.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { capture, resumeAndStop } from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-push-close-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await resumeAndStop(redis)
})

test('close() in push mode returns while Redis hangs', async () => {
  process.kill(redis.pid, 'SIGSTOP')
  let outcome
  try {
    const h = createUseCacheHandler({
      redisUrl: redis.url,
      prefix: 'push-close',
      deploymentId: 'd1',
      leases: false,
      tagSync: 'push',
    })
    await capture(async () => {
      // Starts the runtime (and its subscriber) against the hung Redis: a miss.
      assert.equal(await h.get('k', []), undefined)
      // The bound: the connection's grace (1 s) and a connect budget (1 s), with room to spare.
      const bound = delay(8_000, 'still closing after 8 s', { ref: false })
      outcome = await Promise.race([close().then(() => 'closed'), bound])
    })
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  assert.equal(outcome, 'closed')
})
