// The 64 MiB bound on values in unanswered commands (606da55) refuses a write as a
// failed command, and the breaker counts it: a burst of large writes to a healthy Redis that
// answers every one of them in milliseconds (the test's own redis-server, never paused) gets
// the writes past 64 MiB refused at once, in a row, before any reply is read, and five refusals
// in a row open the breaker: reads and writes of every key stop for the open time, and the log
// says Redis failed. Local back-pressure is not a Redis failure.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { capture, useCacheEntry } from './helpers.mjs'

const MiB = 1024 * 1024

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-unanswered-breaker-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

test('a burst of large writes to a healthy Redis does not open the breaker', async () => {
  // Default breaker thresholds (5 failures in a row).
  const h = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'unanswered-breaker',
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    compressMinBytes: false,
    // The read after the burst queues behind up to 64 MiB of writes on a shared machine: it
    // may take longer than the default 300 ms, which is not what this test is about.
    readTimeoutMs: 10_000,
  })
  await h.refreshTags()
  await h.set('small', Promise.resolve(useCacheEntry('kept')))
  assert.ok((await h.get('small', [])) !== undefined, 'a small entry is stored first')
  const lines = await capture(async () => {
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        h.set(`big-${String(i)}`, Promise.resolve(useCacheEntry(Buffer.alloc(MiB, 97 + (i % 20))))),
      ),
    )
  })
  const opened = lines.filter((l) => /circuit open/i.test(l))
  assert.deepEqual(opened, [], `the breaker opened on a healthy Redis:\n${lines.join('\n')}`)
  // Redis answered everything: a read right after the burst is served from it.
  assert.ok((await h.get('small', [])) !== undefined, 'a read after the burst is a hit')
})
