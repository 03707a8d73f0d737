// Pooled read machines (ReadMachines in js-host/src/read-driver.ts, MACHINE_POOL 64)
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
import { text, useCacheEntry } from './helpers.mjs'

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

// A machine's buffers are recycled only when it is reused, and it keeps its last read (the
// binding's last step with the entry's header: the key again, every tag; the answer's tags joined)
// until then. After a burst of 64 reads of a long key, or of an entry with thousands of tags, the
// machines at the bottom of the LIFO pool kept all of it for the life of the process. The pool
// parks such a machine as it takes it back (`HoldsBack` in the fields area, `park`), and pools an
// ordinary read's machine as it is.

/** The pool of `h`'s reads (private to the handler) and a machine's fields area. */
function pooled(h) {
  const { binding } = h.io
  const f = () => new Float64Array(binding.wasmMemory().buffer)
  const slot = (m, name) => f()[m.fields() / 8 + binding.ReadField[name]]
  return { spare: h.machines.spare, slot }
}

const LONG_KEY_BYTES = 200 * 1024
const MANY_TAGS = 3000

test('the pool parks a machine that read a long key or many tags, and keeps ordinary ones as they are', async () => {
  const h = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'readpark',
    deploymentId: 'd1',
    leases: false,
  })
  await h.refreshTags()
  const { spare, slot } = pooled(h)
  const parked = () => spare.filter((m) => m.entryKey === '').length
  // Misses of distinct keys go to Redis, so each round has 64 reads in flight at once: the
  // pool at its full size. Ordinary reads: every machine pooled as it is (its last read's
  // entry key kept, nothing to park, no call made for it).
  for (let r = 0; r < 3; r++) {
    await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => h.get(`short-${i}`, [])))
  }
  assert.equal(spare.length, CONCURRENT)
  assert.equal(parked(), 0)
  assert.ok(spare.every((m) => slot(m, 'HoldsBack') === 0))

  // 64 long keys in flight at once: every machine parked as it comes back.
  await Promise.all(
    Array.from({ length: CONCURRENT }, (_, i) =>
      h.get(`long-${i}-`.padEnd(LONG_KEY_BYTES, 'x'), []),
    ),
  )
  assert.equal(spare.length, CONCURRENT)
  assert.equal(parked(), CONCURRENT, `${parked()} of ${CONCURRENT} pooled machines parked`)
  assert.ok(spare.every((m) => slot(m, 'HoldsBack') === 0))

  // An entry with thousands of tags, read from Redis, then from the tier's copy (through a
  // machine lent for the hit): the machine that answered is parked, its tags not pinned.
  const tags = Array.from({ length: MANY_TAGS }, (_, i) => `a-tag-of-the-entry-${i}`)
  await h.set('tagged', Promise.resolve(useCacheEntry('tagged value', { tags })))
  for (let i = 0; i < 3; i++) {
    const e = await h.get('tagged', [])
    assert.equal(e.tags.length, MANY_TAGS)
    assert.equal(await text(e.value), 'tagged value')
    const top = spare.at(-1)
    assert.equal(slot(top, 'TagsLen'), 0, `read ${i}: the answer's tags pinned in the pool`)
    assert.equal(top.entryKey, '', `read ${i}: the machine that answered was not parked`)
  }

  // Parked machines read as any other: a long key and an ordinary one, again and again.
  const long = 'long-value-'.padEnd(LONG_KEY_BYTES, 'y')
  await h.set(long, Promise.resolve(useCacheEntry('long value')))
  await h.set('short', Promise.resolve(useCacheEntry('short value')))
  for (let i = 0; i < 3; i++) {
    assert.equal(await text((await h.get(long, [])).value), 'long value')
    assert.equal(await text((await h.get('short', [])).value), 'short value')
  }
})
