// Next's work-unit and work storages are looked up once per process: where Next cannot be
// resolved (a caller outside Next, as this test runs), the failed lookup is kept too, or every
// read and every tag refresh would search the disk for the module again.
import assert from 'node:assert/strict'
import Module, { createRequire } from 'node:module'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { consumerWillServerCache, currentRender } = require('../dist/consumer.js')

test('a failed lookup of Next storage is not repeated on every call', () => {
  const resolve = Module._resolveFilename
  let searches = 0
  Module._resolveFilename = function counted(request, ...rest) {
    if (String(request).startsWith('next/')) searches++
    return resolve.call(this, request, ...rest)
  }
  try {
    assert.equal(currentRender(), undefined)
    assert.equal(consumerWillServerCache(), true)
    const first = searches
    assert.ok(first > 0, 'looked up once')
    for (let i = 0; i < 100; i++) {
      assert.equal(currentRender(), undefined)
      assert.equal(consumerWillServerCache(), true)
    }
    assert.equal(searches, first, 'no search after the first')
  } finally {
    Module._resolveFilename = resolve
  }
})
