// The engine's regeneration tables (crates/fleetcache-core/src/regen.rs, `Recent`)
// are bounded in keys (MAX_REGENERATIONS, 10,000) but hold each cache key in full, twice (the
// map and the insertion-order queue, which keeps up to twice the map in leftovers). A page's
// cache key is its path, as long as the request line Node accepts (16 KiB of headers by
// default), so distinct long URLs of one dynamic route fill the wasm memory, which never
// shrinks. The read memos next to them remember no key longer than 512 bytes
// (KeyHashes::MAX_KEY_BYTES, KEY_MEMO_MAX_LENGTH in read-driver.ts).
// Against a real redis-server (helpers.mjs, startTestRedis).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { close, createIncrementalCacheHandler } from '../esm/index.mjs'
import { startTestRedis, requestInstances } from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-regenmem-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

const instance = () => requestInstances(createIncrementalCacheHandler, redis, 'regenmem')

const CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
const page = {
  kind: 'APP_PAGE',
  html: '<p>item</p>',
  rscData: Buffer.from('rsc'),
  headers: {},
  postponed: undefined,
  status: 200,
  segmentData: undefined,
}
const KEYS = 2_000
/** A path a little under Node's default 16 KiB header limit. */
const PAD = 'x'.repeat(15_000)
const key = (i) => `/items/${i}-${PAD}`
/** Room for KEYS records of a fixed size and whatever else the reads allocate. */
const ALLOWED_MIB = 16
const wasmMiB = () => wasm.wasmMemory().buffer.byteLength / 2 ** 20

describe('the regeneration tables hold what a key costs, not the key', () => {
  test('reads of distinct long page paths that miss (regeneration starts)', async () => {
    const h = instance()
    await h().get('/warm', CTX)
    const before = wasmMiB()
    for (let i = 0; i < KEYS; i++) assert.equal(await h().get(key(i), CTX), null)
    const grown = wasmMiB() - before
    assert.ok(
      grown < ALLOWED_MIB,
      `${KEYS} starts grew the wasm memory by ${grown.toFixed(1)} MiB (10,000 would be ~290)`,
    )
  })

  test('fresh hits of distinct long page paths (the fresh-answer record)', async () => {
    const h = instance()
    const cacheControl = { revalidate: 60, expire: 3600 }
    for (let i = 0; i < KEYS; i++) await h().set(`/fresh${key(i)}`, page, { ...CTX, cacheControl })
    const before = wasmMiB()
    for (let i = 0; i < KEYS; i++) assert.ok(await h().get(`/fresh${key(i)}`, CTX))
    const grown = wasmMiB() - before
    assert.ok(
      grown < ALLOWED_MIB,
      `${KEYS} fresh answers grew the wasm memory by ${grown.toFixed(1)} MiB (10,000 would be ~290)`,
    )
  })
})
