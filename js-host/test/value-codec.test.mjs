// value-codec: Next's singular-handler values cut into parts and rebuilt, without Redis (the
// round trip through Redis and the engine: test/incremental.test.mjs).
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { decodeValue, encodeValue } = require('../dist/value-codec.js')

const roundTrip = (value) => {
  const enc = encodeValue(value)
  return decodeValue(enc.kind, enc.flags, enc.segments, enc.parts)
}

test('fields present but undefined, and non-finite numbers, come back as they were', () => {
  const values = [
    {
      kind: 'APP_PAGE',
      html: '<p>é ✓</p>',
      rscData: undefined,
      headers: undefined,
      postponed: undefined,
      status: undefined,
      segmentData: undefined,
    },
    {
      kind: 'IMAGE',
      etag: 'W/"e"',
      upstreamEtag: '"u"',
      buffer: Buffer.from('img'),
      extension: 'png',
      revalidate: Number.POSITIVE_INFINITY,
      isMiss: undefined,
      isStale: false,
    },
    {
      kind: 'APP_ROUTE',
      body: Buffer.from('body'),
      status: Number.NaN,
      headers: { 'x-next-cache-tags': 'a,b' },
    },
  ]
  for (const value of values) {
    const got = roundTrip(value)
    // Strict: a key that is present but undefined must be present, not missing.
    assert.deepStrictEqual(got, value, `${value.kind} differs after the round trip`)
    assert.deepStrictEqual(Object.keys(got).sort(), Object.keys(value).sort())
  }
})
