// The decoder of the engine's packed answers (src/packed.ts): what it reads back in order, and
// that a buffer of another layout is refused with a typed error instead of read as garbage.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { Unpacker, PackedError } = require('../dist/packed.js')

/** Packs as the binding's `Packer` does (crates/fleetcache-wasm/src/pack.rs). */
function pack(items) {
  const parts = []
  for (const [type, v] of items) {
    if (type === 'num') {
      const b = new Uint8Array(8)
      new DataView(b.buffer).setFloat64(0, v, true)
      parts.push(b)
    } else {
      const body = type === 'text' ? new TextEncoder().encode(v) : v
      const len = new Uint8Array(4)
      new DataView(len.buffer).setUint32(0, body.byteLength, true)
      parts.push(len, body)
    }
  }
  return Buffer.concat(parts)
}

const refused = (fn) =>
  assert.throws(fn, (err) => err instanceof PackedError && err.code === 'ERR_WASM_PACKED')

test('reads numbers, flags, bytes and text back in the order they were packed', () => {
  const u = new Unpacker(
    pack([
      ['num', 1.5],
      ['num', 1],
      ['bytes', Uint8Array.of(1, 2, 3)],
      ['text', 'é\0x'],
      ['text', ''],
      ['num', Number.NaN],
    ]),
  )
  assert.equal(u.num(), 1.5)
  assert.equal(u.flag(), true)
  assert.deepEqual([...u.bytes()], [1, 2, 3])
  assert.equal(u.text(), 'é\0x')
  assert.equal(u.text(), '')
  assert.ok(Number.isNaN(u.num()))
  u.end()
})

test('a buffer of another layout is refused, not read past its end', () => {
  const packed = pack([
    ['num', 7],
    ['text', 'key'],
  ])
  // Cut short inside the number, inside the length, inside the text.
  for (const len of [3, 10, packed.byteLength - 1]) {
    const u = new Unpacker(packed.subarray(0, len))
    refused(() => {
      u.num()
      u.text()
    })
  }
  // A length cut short, and a length that runs past the end.
  refused(() => new Unpacker(pack([['num', 0]]).subarray(0, 3)).bytes())
  const long = pack([['bytes', Uint8Array.of(1)]])
  long[0] = 200
  refused(() => new Unpacker(long).bytes())
  // Bytes left over: the reader expected another layout.
  const extra = new Unpacker(
    pack([
      ['num', 1],
      ['num', 2],
    ]),
  )
  extra.num()
  refused(() => extra.end())
  // Text that is not UTF-8.
  refused(() => new Unpacker(pack([['bytes', Uint8Array.of(0xff, 0xfe)]])).text())
})

/** A `'use cache'` write machine of `e` for key `k`, tag `a`, 4 bytes, made at `t`. */
function writeMachine(wasm, e, t) {
  return wasm.WriteMachine.useCache(
    e,
    wasm.Interface.useCache('default'),
    'k',
    'a',
    t,
    60,
    3600,
    30,
    4,
    t,
  )
}

test('a write machine step of the real binding decodes whole', () => {
  const wasm = require('../wasm/node/fleetcache_wasm.js')
  const e = new wasm.Engine({ prefix: 'pk', deployment: 'd' })
  const m = writeMachine(wasm, e, 1e12)
  const u = new Unpacker(m.start(e, 1e12))
  assert.equal(u.num(), wasm.WriteStepKind.Store)
  assert.equal(u.text(), e.entryKey(wasm.Interface.useCache('default'), 'k'))
  assert.ok(u.bytes().byteLength > 0, 'a header')
  m.free()
  e.free()
})

test('a machine input given a number that is no Failure throws and leaves both usable', () => {
  // The machines read a Failure themselves (one copy of wasm-bindgen's glue for several
  // inputs, docs/decisions/0028-wasm-size-budget.md): refused with the glue's text, and with
  // the machine and the engine released, as the glue released them.
  const wasm = require('../wasm/node/fleetcache_wasm.js')
  const e = new wasm.Engine({ prefix: 'pk', deployment: 'd' })
  const t = 1e12
  const w = writeMachine(wasm, e, t)
  w.start(e, t)
  assert.throws(() => w.failed(e, 9, t), /invalid enum value passed/)
  const u = new Unpacker(w.failed(e, wasm.Failure.Timeout, t))
  assert.equal(u.num(), wasm.WriteStepKind.Done)
  const r = wasm.ReadMachine.useCache(
    e,
    wasm.Interface.useCache('default'),
    'k',
    '',
    false,
    wasm.Consumer.Serves,
    'tok',
    t,
  )
  assert.equal(r.start(e, t), wasm.ReadStepKind.Refresh)
  assert.throws(() => r.failed(e, 0.5, t), /invalid enum value passed/)
  assert.equal(typeof r.refreshed(e, t), 'number')
  w.free()
  r.free()
  e.free()
})

test('planned entries, inspections and revalidations of the real binding decode whole', () => {
  const { plannedEntry, inspection, revalidated } = require('../dist/packed.js')
  // `planUseCacheEntry` and `inspectEntry` are in the tools module only.
  const wasm = require('../wasm/tools/node/fleetcache_wasm.js')
  const e = new wasm.Engine({ prefix: 'pk', deployment: 'd' })
  e.markStandalone()
  const uc = wasm.Interface.useCache('default')
  const t = 1e12
  const packedPlan = e.planUseCacheEntry(uc, 'k', 'a', t, 60, 3600, 30, 4, t)
  const plan = plannedEntry(packedPlan)
  assert.equal(plan.stored, true)
  assert.equal(plan.ttlMs, 3_600_000)
  assert.equal(plan.droppedTags, '')
  const value = Buffer.concat([plan.header, Buffer.from('body')])
  const seen = inspection(e.inspectEntry(uc, 'k', value, value.byteLength, '', t))
  assert.deepEqual(seen, {
    outcome: wasm.Outcome.Fresh,
    need: 0,
    payloadOffset: plan.header.byteLength,
    lookup: 'hit',
    error: '',
  })
  const r = revalidated(
    e.revalidate('a', wasm.RevalidationMode.Expire, Number.NaN, t + 1, Number.NaN, false),
  )
  assert.deepEqual(r, { droppedTags: '', evicted: '' })
  // Each refuses a buffer cut short, and one with bytes left over.
  for (const [decode, packed] of [
    [plannedEntry, packedPlan],
    [inspection, e.inspectEntry(uc, 'k', value, value.byteLength, '', t)],
  ]) {
    refused(() => decode(packed.subarray(0, packed.byteLength - 1)))
    refused(() => decode(Buffer.concat([packed, Uint8Array.of(0)])))
  }
  refused(() => revalidated(Uint8Array.of(0, 0, 0)))
  e.free()
})

test('the server module leaves the CLI and test exports to the tools module', () => {
  // docs/decisions/0028-wasm-size-budget.md, eighth pass: what no server path calls.
  const server = require('../wasm/node/fleetcache_wasm.js')
  const tools = require('../wasm/tools/node/fleetcache_wasm.js')
  const engineOnly = [
    'inspectEntry',
    'planUseCacheEntry',
    'planIncrementalEntry',
    'planSeedWrite',
    'seedTimestamp',
    'tagFreshness',
    'planTagUpdate',
    'probeInMs',
  ]
  const free = ['describeEnvelope', 'randomToken']
  for (const name of engineOnly) {
    assert.equal(name in server.Engine.prototype, false, `server Engine.${name}`)
    assert.equal(typeof tools.Engine.prototype[name], 'function', `tools Engine.${name}`)
  }
  for (const name of free) {
    assert.equal(name in server, false, `server ${name}`)
    assert.equal(typeof tools[name], 'function', `tools ${name}`)
  }
  // Ninth pass: getters only the benchmarks read, or nothing.
  const getters = [
    ['Engine', 'tagCount'],
    ['Engine', 'breakerRejected'],
    ['Engine', 'outboxRefused'],
    ['Interface', 'isIncremental'],
  ]
  for (const [cls, name] of getters) {
    assert.equal(name in server[cls].prototype, false, `server ${cls}.${name}`)
    const getter = Object.getOwnPropertyDescriptor(tools[cls].prototype, name)?.get
    assert.equal(typeof getter, 'function', `tools ${cls}.${name}`)
  }
  // Everything else the server module has, the tools module has too.
  for (const name of Object.keys(server)) assert.ok(name in tools, `tools ${name}`)
  for (const name of Object.getOwnPropertyNames(server.Engine.prototype)) {
    assert.ok(name in tools.Engine.prototype, `tools Engine.${name}`)
  }
})
