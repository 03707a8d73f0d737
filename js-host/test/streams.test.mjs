// The byte-stream helpers every 'use cache' read and write goes through.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { setImmediate as immediate } from 'node:timers/promises'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { EarlyStream, bufferToStream, streamToBuffer } = require('../dist/streams.js')

const bytes = (s) => new Uint8Array(Buffer.from(s))

test('a stream built during the read carries the bytes it is filled with, once', async () => {
  const early = new EarlyStream()
  await immediate() // the read's round trip: the stream is built meanwhile
  assert.ok(early.stream instanceof ReadableStream, 'built while the read was in flight')
  const stream = early.fill(bytes('first'))
  assert.equal((await streamToBuffer(stream)).toString(), 'first')
  // A second fill never hands out the consumed stream again.
  const again = early.fill(bytes('second'))
  assert.notEqual(again, stream)
  assert.equal((await streamToBuffer(again)).toString(), 'second')
})

test('a reply faster than the build gets a new stream, and the build never runs', async () => {
  const early = new EarlyStream()
  const stream = early.fill(bytes('quick'))
  await immediate()
  assert.equal(early.stream, undefined, 'the build was cancelled')
  assert.equal((await streamToBuffer(stream)).toString(), 'quick')
  assert.equal(early.fill(bytes('x')).locked, false)
})

test('empty values and discarded streams', async () => {
  const early = new EarlyStream()
  await immediate()
  assert.equal((await streamToBuffer(early.fill(new Uint8Array(0)))).byteLength, 0)
  const dropped = new EarlyStream()
  dropped.discard()
  await immediate()
  assert.equal((await streamToBuffer(dropped.fill(bytes('after')))).toString(), 'after')
  assert.equal((await streamToBuffer(bufferToStream(bytes('plain')))).toString(), 'plain')
})
