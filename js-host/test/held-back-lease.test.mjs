// A write held back by the connection's 64 MiB bound (d16dd62, HeldBackError) is
// taken by the write machine as the breaker's refusal (write-driver.ts failureOf:
// ERR_REDIS_HELD_BACK -> Failure::CircuitOpen), and a Store step that fails so ends the write
// without releasing the lease (write_machine.rs, State::Storing + Failed(CircuitOpen)): the
// token was taken from the lease table when the write was planned (LeaseTable::plan_write), so
// nothing ever releases it. Redis is healthy and the command was certainly not sent, so the
// other instances waiting on the key (polling a Redis that answers) wait for their whole
// leaseWaitMs, or the lease's TTL, instead of being let go at once.
// Against a real redis-server that is never paused.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { waitFor } from '../../tests/support/util.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { capture, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')

const MiB = 1024 * 1024
const PREFIX = 'heldback-lease'

let redis
let seq = 0

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-heldback-lease-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

function useCache(extra = {}) {
  seq += 1
  // A distinct setting per "instance" gives it its own runtime (and connection).
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix: PREFIX,
    deploymentId: 'd1',
    memoryBytes: 0,
    compressMinBytes: false,
    connectTimeoutMs: 4000 + seq,
    ...extra,
  })
}

const engine = new wasm.Engine({ prefix: PREFIX, deployment: 'd1' })
const entryKey = (key) => engine.entryKey(wasm.Interface.useCache('default'), key)
const leaseKey = (key) => entryKey(key).replace(/:e$/, ':l')
const exists = async (key) => (await redis.command('EXISTS', key)) === 1

test('a lease write held back by the 64 MiB bound releases the lease for the waiting instances', async () => {
  const key = 'held-back-holder'
  const A = useCache()
  // B's budget is longer than the test's wait for the release: a follower left waiting shows.
  const B = useCache({ leaseWaitMs: 15_000 })
  await A.refreshTags()
  await B.refreshTags()
  assert.equal(await A.get(key, []), undefined, 'A holds the lease')
  assert.ok(await exists(leaseKey(key)), 'the lease is in Redis')
  const waits = stats()?.leases.waited ?? 0
  const follower = B.get(key, [])
  await waitFor(() => (stats()?.leases.waited ?? 0) >= waits + 1, {
    timeoutMs: 5_000,
    intervalMs: 10,
    what: 'B to wait on the lease',
  })
  const lines = await capture(async () => {
    // A burst of large writes on A's connection, its lease write last in the same turn: past
    // 64 MiB of values waiting for a reply, the lease write is held back (not sent).
    const burst = Array.from({ length: 100 }, (_, i) =>
      A.set(`big-${String(i)}`, Promise.resolve(useCacheEntry(Buffer.alloc(MiB, 97 + (i % 20))))),
    )
    // As large as the others, so that it takes their path to the connection, after them.
    burst.push(A.set(key, Promise.resolve(useCacheEntry(Buffer.alloc(MiB, 122)))))
    await Promise.all(burst)
  })
  // Precondition: the lease write was held back, not sent (else this test proves nothing).
  assert.ok(
    lines.some((l) => /held back/.test(l)),
    `no write was held back:\n${lines.join('\n')}`,
  )
  assert.equal(await exists(entryKey(key)), false, 'the lease write was held back, not stored')
  const ended = Date.now()
  // Redis answers; the holder is done with the key: the lease goes at once (a release without
  // a value is never held back), as after a refused or failed render.
  await waitFor(async () => !(await exists(leaseKey(key))), {
    timeoutMs: 3_000,
    intervalMs: 20,
    what: 'the held-back holder to release its lease',
  })
  assert.equal(await follower, undefined, 'B regenerates itself')
  assert.ok(Date.now() - ended < 3_000, 'B was let go promptly, not after its budget')
})
