// Two writes of one page in flight in one process, the first large enough to be compressed
// (its Compress step runs before its Store), the second not: Redis must keep the one `set` was
// called with last. Without ordering (write-driver.ts, `takeTurn`) the second's Store reached
// Redis first and the first's overwrote it.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, test } from 'node:test'

import { close, createIncrementalCacheHandler } from '../esm/index.mjs'
import { commandCalls, startTestRedis } from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-write-order-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

test('of two page writes of one key issued in order by one process, the later one is what Redis keeps', async () => {
  const kind = 'APP_PAGE'
  const value = (html) => ({
    kind,
    html,
    rscData: Buffer.from('rsc'),
    headers: {},
    status: 200,
    postponed: undefined,
    segmentData: undefined,
  })
  const ctx = { kind, cacheControl: { revalidate: false, expire: undefined } }
  const base = { prefix: 'r3e', deploymentId: 'd1', redisUrl: redis.url, ...redis.options }
  const W = createIncrementalCacheHandler({ ...base, compressMinBytes: 4096, compressLevel: 9 })
  // Another runtime (another process): page reads go to Redis.
  const Reader = createIncrementalCacheHandler({ ...base, connectTimeoutMs: 4003 })
  // Compressible but not trivially: zlib level 9 takes a while on a few MB.
  const words = []
  for (let i = 0; i < 400_000; i++) words.push(`w${String((i * 7919) % 10007)}`)
  const older = `<p>older ${words.join(' ')}</p>`
  const newer = '<p>newer</p>'
  const first = new W({}).set('/r', value(older), ctx)
  const second = new W({}).set('/r', value(newer), ctx)
  await Promise.all([first, second])
  // A write resolves after its wait budget even while it goes on: read until Redis has seen
  // both Stores (two SET-like calls since), bounded.
  const writes = () => commandCalls(redis, 'set', 'evalsha', 'eval')
  for (let i = 0; i < 300 && (await writes()) < 2; i++) await sleep(10)
  const got = (await new Reader({}).get('/r', { kind }))?.value.html
  assert.equal(got?.slice(0, 16), newer.slice(0, 16), 'Redis keeps the write that was issued last')
})
