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

test('the reads of one turn share one setImmediate, and each gets its own stream', async () => {
  const real = globalThis.setImmediate
  let scheduled = 0
  globalThis.setImmediate = (...args) => {
    scheduled += 1
    return real(...args)
  }
  let earlies
  try {
    earlies = Array.from({ length: 5 }, () => new EarlyStream())
  } finally {
    globalThis.setImmediate = real
  }
  assert.equal(scheduled, 1, 'one setImmediate for the turn')
  earlies[1].discard()
  const quick = earlies[2].fill(bytes('quick'))
  await immediate()
  assert.equal(earlies[1].stream, undefined, 'a discarded stream is not built')
  assert.equal(earlies[2].stream, undefined, 'a stream filled before the turn is not built')
  assert.equal((await streamToBuffer(quick)).toString(), 'quick')
  const built = [0, 3, 4].map((i) => earlies[i].stream)
  for (const s of built) assert.ok(s instanceof ReadableStream, 'built in the shared turn')
  assert.equal(new Set(built).size, 3, 'a stream each')
  for (const i of [0, 3, 4]) {
    const stream = earlies[i].fill(bytes(`v${String(i)}`))
    assert.equal(stream, built[[0, 3, 4].indexOf(i)], 'the stream built during the read')
    assert.equal((await streamToBuffer(stream)).toString(), `v${String(i)}`)
  }
  // A later turn schedules its own.
  const later = new EarlyStream()
  await immediate()
  assert.ok(later.stream instanceof ReadableStream)
})

test('a stream built early costs no more promises than one built when the bytes come', async () => {
  const { createHook } = await import('node:async_hooks')
  // Promises created from the read's start to the consumer's last read, either way.
  const promisesOf = async (read) => {
    let n = 0
    const hook = createHook({
      init: (_id, type) => {
        if (type === 'PROMISE') n += 1
      },
    })
    hook.enable()
    try {
      assert.equal((await streamToBuffer(await read())).toString(), 'v')
    } finally {
      hook.disable()
    }
    return n
  }
  const plainRead = async () => {
    await immediate() // the read's round trip
    return bufferToStream(bytes('v'))
  }
  const earlyRead = async () => {
    const e = new EarlyStream()
    await immediate()
    assert.ok(e.stream instanceof ReadableStream, 'built while the read was in flight')
    return e.fill(bytes('v'))
  }
  // Each twice, the second counted: a first run also makes what the process makes once.
  await promisesOf(plainRead)
  await promisesOf(earlyRead)
  const plain = await promisesOf(plainRead)
  const early = await promisesOf(earlyRead)
  // An empty stream started with the default high-water mark pulls its source once: a call
  // and two promises on every hit, for a source that has nothing to give.
  assert.ok(early <= plain, `early ${String(early)} promises, plain ${String(plain)}`)
})
