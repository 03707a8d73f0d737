// The shared test vectors (crates/fleetcache-core/tests/vectors/vectors.json) through the wasm
// binding, as the handlers call it: entry keys, envelope headers and TTLs, verdicts and
// compressed envelopes must be what the core's own test (crates/fleetcache-core/tests/vectors.rs)
// finds, and the host's codecs must inflate what the vectors store. No Redis.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

const require = createRequire(import.meta.url)
// The tools module: the vectors are planned, inspected and described with the CLI's exports
// (docs/decisions/0028-wasm-size-budget.md, eighth pass).
const wasm = require('../wasm/tools/node/fleetcache_wasm.js')
const { inspection, plannedEntry } = require('../dist/packed.js')
const { inflateStored, streamCodecs } = require('../dist/compression.js')
const { nodeCodecs } = require('../dist/node-codecs.js')

const vectors = JSON.parse(
  fs.readFileSync(
    new URL('../../crates/fleetcache-core/tests/vectors/vectors.json', import.meta.url),
    'utf8',
  ),
)

const VERDICTS = {
  [wasm.Outcome.Fresh]: 'fresh',
  [wasm.Outcome.Stale]: 'stale',
  [wasm.Outcome.Expired]: 'expired',
  [wasm.Outcome.KeyMismatch]: 'key-mismatch',
  [wasm.Outcome.Corrupt]: 'corrupt',
  [wasm.Outcome.NeedMore]: 'need-more',
}

const hex = (bytes) => Buffer.from(bytes).toString('hex')

/** The envelope of case `c`: its header as the binding plans it, and the TTL it gives. */
function plan(engine, c) {
  const payload = Buffer.from(c.payload, 'utf8')
  const { header, stored, ttlMs } = plannedEntry(
    engine.planUseCacheEntry(
      wasm.Interface.parse(c.interface),
      c.cacheKey,
      c.tags.join('\0'),
      c.timestamp,
      c.revalidate,
      c.expire,
      c.stale,
      payload.byteLength,
      c.now,
    ),
  )
  return { header, ttlMs: stored ? ttlMs : null, value: Buffer.concat([header, payload]) }
}

describe('shared vectors through the binding', () => {
  test('entry keys', () => {
    for (const c of vectors.keys) {
      const engine = new wasm.Engine({ prefix: c.prefix, deployment: c.deployment })
      assert.equal(engine.entryKey(wasm.Interface.parse(c.interface), c.cacheKey), c.entryKey)
      engine.free()
    }
  })

  const { prefix, deployment, cases } = vectors.envelopes
  const stored = new Map()

  test('envelope headers and TTLs', () => {
    for (const c of cases) {
      const engine = new wasm.Engine({ prefix, deployment })
      const { header, ttlMs, value } = plan(engine, c)
      assert.equal(hex(header), c.header, c.name)
      assert.equal(ttlMs, c.ttlMs, c.name)
      stored.set(c.name, value)
      engine.free()
    }
  })

  test('verdicts', () => {
    assert.equal(stored.size, cases.length, 'the envelopes test ran first')
    for (const c of vectors.verdicts) {
      const engine = new wasm.Engine({ prefix, deployment })
      engine.markStandalone()
      for (const r of c.revalidations) {
        const mode =
          r.mode === 'expire' ? wasm.RevalidationMode.Expire : wasm.RevalidationMode.Stale
        engine.planTagUpdate(r.tags.join('\0'), mode, r.expireSeconds ?? Number.NaN, r.at)
      }
      const value = c.envelope === undefined ? Buffer.from(c.value, 'hex') : stored.get(c.envelope)
      const { outcome } = inspection(
        engine.inspectEntry(
          wasm.Interface.useCache('default'),
          c.cacheKey,
          value,
          value.byteLength,
          c.softTags.join('\0'),
          c.now,
        ),
      )
      assert.equal(VERDICTS[outcome], c.verdict, c.name)
      engine.free()
    }
  })

  test('compressed envelopes: the header, and the plain value a reader makes of it', async () => {
    for (const c of vectors.compressed.cases) {
      const engine = new wasm.Engine({ prefix, deployment })
      const { header } = plan(engine, c)
      assert.equal(hex(header), c.plainHeader, c.name)
      const value = Buffer.concat([Buffer.from(c.header, 'hex'), Buffer.from(c.deflated, 'hex')])
      const described = wasm.describeEnvelope(value, value.byteLength)
      assert.equal(described.payloadLen, c.deflated.length / 2, 'the stored bytes')
      const parts = described.parts.reduce((a, b) => a + b, 0)
      assert.equal(parts, c.rawLen, 'the parts: what it inflates to')
      // Four u32 (need, codec, payloadOffset, rawLen), then the plain header.
      const inflation = Buffer.from(engine.planInflation(value, value.byteLength))
      assert.deepEqual(
        [0, 4, 8, 12].map((at) => inflation.readUInt32LE(at)),
        [0, wasm.Codec.Deflate, c.header.length / 2, c.rawLen],
      )
      assert.equal(hex(inflation.subarray(16)), c.plainHeader)
      const plain = Buffer.concat([header, Buffer.from(c.payload, 'utf8')])
      for (const codecs of [nodeCodecs, streamCodecs(wasm.Codec)]) {
        const got = await inflateStored(engine, Buffer.from(value), codecs)
        assert.ok(Buffer.from(got).equals(plain), c.name)
      }
      engine.free()
    }
  })
})
