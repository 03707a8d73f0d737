// The read driver alone (src/read-driver.ts): a scripted machine, a fake transport and a fake
// clock, no Redis and no wasm. What the driver itself guarantees: rule R1 (no bytes reach the
// machine before the refresh it asked for), errors mapped to failures by their code, NeedMore,
// tier actions, the answer's bytes by source, shared polls, the step bound, renewal, and that
// every machine and renewal step it was handed is freed (a read machine's steps are its
// fields area and string methods).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { readEntry, failureOf, leaseToken, ReadMachines, renew } = require('../dist/read-driver.js')

// Numbers of its own, different from the binding's, so nothing here depends on their values.
const binding = {
  ReadStepKind: {
    Refresh: 10,
    OwnWrite: 11,
    PeekTier: 12,
    PeekFallback: 13,
    Get: 14,
    NeedMore: 15,
    Acquire: 16,
    Wait: 17,
    Poll: 18,
    Answer: 19,
  },
  TierAction: { None: 30, Keep: 31, Drop: 32 },
  Failure: { Timeout: 40, ReplyError: 41, NoConnection: 42, CircuitOpen: 43, HeldBack: 44 },
  Source: { None: 50, OwnWrite: 51, Tier: 52, Redis: 53, Poll: 54, Kept: 55 },
  Served: { Fresh: 60, Stale: 61, AsFresh: 62, Miss: 63 },
  RenewStepKind: { Wait: 70, Send: 71, Done: 72 },
  // Slots in an order of their own too.
  ReadField: Object.fromEntries(
    [
      'Tier',
      'BudgetMs',
      'Need',
      'DelayMs',
      'KeepUntil',
      'OutageOnly',
      'Source',
      'Served',
      'Regenerates',
      'HoldsLease',
      'PayloadOffset',
      'Timestamp',
      'Revalidate',
      'Expire',
      'Stale',
      'LastModified',
      'HasCacheControl',
      'CacheRevalidate',
      'CacheExpire',
      'ValueKind',
      'ValueFlags',
      'Segments',
      'HasLog',
      'HasError',
      'TookTier',
      'TagsAt',
      'TagsLen',
      'PartsAt',
      'PartsLen',
      'PageGen',
      'Order',
      'AsksTier',
      'HeaderKept',
    ].map((name, i) => [name, i]),
  ),
  wasmMemory: () => memory,
}
/** The fake module memory the scripted machines write their fields areas into. */
const memory = { buffer: new ArrayBuffer(1 << 17) }
/** Slots per fake fields area; each machine gets the next area. */
const AREA = 40
/** Where the fake machines' tag buffers begin (bytes), 256 each. */
const TAGS_AT = 1 << 15
let nextArea = 1
const K = binding.ReadStepKind

function deferred() {
  let resolve
  let reject
  const promise = new Promise((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Lets every promise already settled run its reactions (nothing here waits on a timer). */
const settle = () => new Promise((resolve) => setImmediate(resolve))

/** A read step with the binding's defaults for the fields that do not apply. */
function readStep(fields) {
  return {
    log: '',
    error: '',
    argv: '',
    tags: [],
    parts: new Uint32Array(0),
    budgetMs: 0,
    need: 0,
    delayMs: 0,
    tier: binding.TierAction.None,
    keepUntil: 0,
    outageOnly: false,
    source: binding.Source.None,
    served: binding.Served.Miss,
    holdsLease: false,
    payloadOffset: 0,
    ...fields,
  }
}

/**
 * A machine that answers each input with the next function of `script` (called with the
 * input's name and arguments); it records the inputs it got.
 */
function scripted(script, renewal, { asksTier = false } = {}) {
  const inputs = []
  let i = 0
  const base = AREA * nextArea
  // As the binding's constructors: whether the start asks for the tier, said beforehand.
  new Float64Array(memory.buffer)[base + binding.ReadField.AsksTier] = asksTier ? 1 : 0
  // Each machine's tags buffer: past every fields area.
  const tagsAt = TAGS_AT + 256 * nextArea++
  const m = { inputs, freed: false, entryKey: 'k', last: undefined }
  m.fields = () => base * 8
  const input =
    (name) =>
    (_engine, ...args) => {
      assert.ok(!m.freed, `${name} after free`)
      inputs.push([name, ...args])
      const f = script[i++]
      assert.ok(f !== undefined, `no step scripted after input ${name}`)
      const s = readStep(f(...args))
      m.last = s
      // As the binding: every slot of the area written by every step.
      const v = new Float64Array(memory.buffer)
      const F = binding.ReadField
      const num = (x) => (typeof x === 'boolean' ? (x ? 1 : 0) : x)
      for (const [name, slot] of Object.entries(F)) {
        const field = name[0].toLowerCase() + name.slice(1)
        v[base + slot] = num(s[field] ?? 0)
      }
      v[base + F.HasLog] = s.log === '' ? 0 : 1
      v[base + F.HasError] = s.error === '' ? 0 : 1
      // As the binding: the answer's tags, NUL-joined UTF-8, in the machine's own buffer.
      const tags = new TextEncoder().encode(s.tags.join('\0'))
      new Uint8Array(memory.buffer, tagsAt, tags.byteLength).set(tags)
      v[base + F.TagsAt] = tags.byteLength === 0 ? 0 : tagsAt
      v[base + F.TagsLen] = tags.byteLength
      // And the part lengths, as u32s after the tags.
      const partsAt = tagsAt + 128
      new Uint32Array(memory.buffer, partsAt, s.parts.length).set(s.parts)
      v[base + F.PartsAt] = partsAt
      v[base + F.PartsLen] = s.parts.length
      return s.kind
    }
  m.argv = () => m.last.argv
  m.log = () => m.last.log
  m.error = () => m.last.error
  for (const name of [
    'start',
    'startWithTier',
    'startWithHeld',
    'refreshed',
    'ownWrite',
    'tier',
    'fallback',
    'reply',
    'polled',
    'leaseReply',
    'failed',
    'timer',
    'undecodable',
  ]) {
    m[name] = input(name)
  }
  m.renewal = () => renewal
  m.free = () => {
    assert.ok(!m.freed, 'machine freed twice')
    m.freed = true
  }
  return m
}

/** A fake host: a virtual clock that `sleep` advances, a map for Redis, a tier, a log. */
function fakeIo(over = {}) {
  const io = {
    binding,
    t: 1_000,
    calls: [],
    redis: new Map(),
    tier: new Map(),
    lines: [],
    now: () => io.t,
    sleep: (ms) => {
      io.calls.push(['sleep', ms])
      io.t += ms
      return Promise.resolve()
    },
    refresh: () => {
      io.calls.push(['refresh'])
      return Promise.resolve()
    },
    tierBytes: (key) => io.tier.get(key) ?? null,
    remember: (key, bytes, until, outageOnly) => {
      io.calls.push(['remember', key, bytes.byteLength, until, outageOnly])
    },
    forget: (key) => {
      io.calls.push(['forget', key])
    },
    get: (key, budgetMs) => {
      io.calls.push(['get', key, budgetMs])
      return Promise.resolve(io.redis.get(key) ?? null)
    },
    script: (argv, budgetMs) => {
      io.calls.push(['script', argv.join(' '), budgetMs])
      return Promise.resolve(null)
    },
    debug: (line) => io.lines.push(line),
    ...over,
  }
  return io
}

const engine = {}
const bytesOf = (n, fill = 7) => new Uint8Array(n).fill(fill)
const answer = (fields) => ({ kind: K.Answer, ...fields })

test('R1: bytes reach the machine only once the refresh it asked for has finished', async () => {
  const refresh = deferred()
  const io = fakeIo({
    refresh: () => refresh.promise,
  })
  io.redis.set('k', bytesOf(10))
  const m = scripted([
    () => ({ kind: K.Refresh }),
    () => ({ kind: K.Get, key: 'k', budgetMs: 250 }),
    () => answer({ source: binding.Source.Redis, served: binding.Served.Fresh, payloadOffset: 4 }),
  ])
  const reading = readEntry(engine, m, io)
  await settle()
  // The GET went out beside the refresh, but its reply waits for it.
  assert.deepEqual(io.calls, [['get', 'k', 250]])
  assert.deepEqual(
    m.inputs.map(([name]) => name),
    ['start', 'refreshed'],
  )
  io.t = 1_500
  refresh.resolve()
  const r = await reading
  assert.equal(r.bytes, io.redis.get('k'))
  const [, prefix, total, joined, , t] = m.inputs[2]
  assert.equal(prefix.byteLength, 10)
  assert.equal(total, 10)
  assert.equal(joined, false, 'no GET of another read was joined')
  assert.equal(t, 1_500, 'stamped after the refresh')
  r.answer.free()
  assert.ok(m.freed)
})

test('io errors become failures by their code', async () => {
  const cases = [
    ['ERR_REDIS_TIMEOUT', binding.Failure.Timeout],
    ['ERR_REDIS_REPLY', binding.Failure.ReplyError],
    ['ERR_REDIS_CIRCUIT_OPEN', binding.Failure.CircuitOpen],
    ['ECONNREFUSED', binding.Failure.NoConnection],
    [undefined, binding.Failure.NoConnection],
  ]
  for (const [code, failure] of cases) {
    const err = Object.assign(new Error('x'), code === undefined ? {} : { code })
    assert.equal(failureOf(binding, err), failure)
    const io = fakeIo({ get: () => Promise.reject(err) })
    const m = scripted([
      () => ({ kind: K.Get, key: 'k' }),
      () => answer({ served: binding.Served.Miss }),
    ])
    const r = await readEntry(engine, m, io)
    assert.deepEqual(m.inputs[1], ['failed', failure, io.t])
    assert.equal(r.bytes, null)
    // The caller logs why, except for the open breaker (logged once, when it opened).
    assert.equal(r.readError, code === 'ERR_REDIS_CIRCUIT_OPEN' ? undefined : err)
    r.answer.free()
  }
  // A transport that throws instead of rejecting is a failure too, not a rejected read.
  const io = fakeIo({
    get: () => {
      throw Object.assign(new Error('sync'), { code: 'ERR_REDIS_TIMEOUT' })
    },
  })
  const m = scripted([() => ({ kind: K.Get, key: 'k' }), () => answer({})])
  const r = await readEntry(engine, m, io)
  assert.deepEqual(m.inputs[1], ['failed', binding.Failure.Timeout, io.t])
  r.answer.free()
})

test('NeedMore gives the same bytes again, with the prefix asked for', async () => {
  const io = fakeIo()
  io.redis.set('k', bytesOf(10_000))
  const m = scripted([
    () => ({ kind: K.Get, key: 'k' }),
    () => ({ kind: K.NeedMore, need: 6_000 }),
    () => answer({ source: binding.Source.Redis, served: binding.Served.Stale }),
  ])
  const r = await readEntry(engine, m, io)
  assert.equal(m.inputs[1][0], 'reply')
  assert.equal(m.inputs[1][1].byteLength, 4096, 'a header window first, not the payload')
  assert.equal(m.inputs[1][2], 10_000)
  assert.equal(m.inputs[2][0], 'reply')
  assert.equal(m.inputs[2][1].byteLength, 6_000)
  r.answer.free()
})

test('tier actions apply to the bytes just given; a kept copy is served from them', async () => {
  const io = fakeIo()
  const held = bytesOf(20, 1)
  io.tier.set('k', held)
  io.redis.set('k', bytesOf(30, 2))
  const m = scripted([
    () => ({ kind: K.PeekTier }),
    // Not servable now, kept for a failing read.
    () => ({ kind: K.Get, key: 'k' }),
    () => ({
      kind: K.Answer,
      tier: binding.TierAction.Keep,
      keepUntil: 9_000,
      outageOnly: true,
      source: binding.Source.Redis,
      served: binding.Served.Fresh,
    }),
  ])
  const r = await readEntry(engine, m, io)
  assert.equal(m.inputs[1][0], 'tier')
  assert.equal(m.inputs[1][1].byteLength, 20)
  assert.deepEqual(
    io.calls.filter(([c]) => c === 'remember'),
    [['remember', 'k', 30, 9_000, true]],
  )
  assert.equal(r.bytes, io.redis.get('k'))
  r.answer.free()

  const io2 = fakeIo({ get: () => Promise.reject(new Error('down')) })
  io2.tier.set('k', held)
  const m2 = scripted([
    () => ({ kind: K.PeekTier }),
    () => ({ kind: K.Get, key: 'k', tier: binding.TierAction.None }),
    () => ({ kind: K.PeekFallback }),
    () => answer({ source: binding.Source.Kept, served: binding.Served.Stale }),
  ])
  const r2 = await readEntry(engine, m2, io2)
  assert.deepEqual(
    m2.inputs.map(([name]) => name),
    ['start', 'tier', 'failed', 'fallback'],
  )
  assert.equal(r2.bytes, held, 'the kept copy')
  r2.answer.free()

  const io3 = fakeIo()
  io3.tier.set('k', held)
  const m3 = scripted([
    () => ({ kind: K.PeekTier }),
    () => ({ kind: K.Get, key: 'k', tier: binding.TierAction.Drop }),
    () => answer({ served: binding.Served.Miss }),
  ])
  const r3 = await readEntry(engine, m3, io3)
  assert.deepEqual(io3.calls[0], ['forget', 'k'], 'dropped before the GET')
  assert.equal(r3.bytes, null)
  r3.answer.free()
})

/** A machine that asks for the tier first and takes the bytes offered as a fresh hit. */
function tierHitMachine() {
  return scripted(
    [
      () => ({
        kind: K.Answer,
        tookTier: true,
        source: binding.Source.Tier,
        served: binding.Served.Fresh,
      }),
    ],
    undefined,
    { asksTier: true },
  )
}

test("an envelope's bytes are offered up to its header_len, so no payload byte crosses", async () => {
  /** 9,000 bytes that start like an envelope whose header_len (u32 LE at 8) is `headerLen`. */
  const envelope = (headerLen) => {
    const b = bytesOf(9_000, 7)
    b.set([0x46, 0x4c, 0x43, 0x45], 0)
    new DataView(b.buffer, b.byteOffset).setUint32(8, headerLen, true)
    return b
  }
  // [header_len, bytes offered]: the header; a length below the fixed header or past the window
  // (a value that lies, or a long header) gets the window, as any bytes.
  for (const [headerLen, offered] of [
    [120, 120],
    [48, 48],
    [20, 4096],
    [4096, 4096],
    [8_000, 4096],
  ]) {
    const io = fakeIo()
    io.tier.set('k', envelope(headerLen))
    const m = tierHitMachine()
    const r = await readEntry(engine, m, io)
    assert.deepEqual(
      m.inputs.map(([name, prefix, total]) => [name, prefix?.byteLength, total]),
      [['startWithTier', offered, 9_000]],
      `header_len ${String(headerLen)}`,
    )
    r.answer.free()
  }
})

test('bytes whose header the index keeps, as a step said, are offered again without their prefix', async () => {
  const held = bytesOf(9_000, 1)
  const io = fakeIo()
  io.tier.set('k', held)
  const hit = (over) =>
    scripted(
      [
        () => ({
          kind: K.Answer,
          tookTier: true,
          source: binding.Source.Tier,
          served: binding.Served.Fresh,
          ...over,
        }),
      ],
      undefined,
      { asksTier: true },
    )
  const offered = (m) => m.inputs.map(([name, prefix, total]) => [name, prefix?.byteLength, total])
  // Not said kept yet: the header window.
  const m1 = hit({ headerKept: true })
  const r1 = await readEntry(engine, m1, io)
  assert.deepEqual(offered(m1), [['startWithTier', 4096, 9_000]])
  r1.answer.free()
  // The same bytes again: no prefix, their length only.
  const m2 = hit({ headerKept: true })
  const r2 = await readEntry(engine, m2, io)
  assert.deepEqual(offered(m2), [['startWithTier', undefined, 9_000]])
  assert.equal(r2.bytes, held)
  r2.answer.free()
  // Other bytes under the key (a new copy): the window again.
  io.tier.set('k', bytesOf(9_000, 2))
  const m3 = hit({})
  const r3 = await readEntry(engine, m3, io)
  assert.deepEqual(offered(m3), [['startWithTier', 4096, 9_000]])
  r3.answer.free()
  // Asked for after the start (`PeekTier`), the same way.
  const peek = (over) =>
    scripted([
      () => ({ kind: K.PeekTier }),
      () => ({
        kind: K.Answer,
        source: binding.Source.Tier,
        served: binding.Served.Fresh,
        ...over,
      }),
    ])
  const m4 = peek({ headerKept: true })
  const r4 = await readEntry(engine, m4, io)
  assert.deepEqual(offered(m4), [
    ['start', undefined, undefined],
    ['tier', 4096, 9_000],
  ])
  r4.answer.free()
  const m5 = peek({})
  const r5 = await readEntry(engine, m5, io)
  assert.deepEqual(offered(m5)[1], ['tier', undefined, 9_000])
  r5.answer.free()
})

test('tier bytes offered with the first call when the machine asks for the tier first: taken, void before a refresh, acted on', async () => {
  const held = bytesOf(9_000, 1)
  // Taken: a tier hit in one call; the prefix offered is the header window.
  const io = fakeIo()
  io.tier.set('k', held)
  const m = tierHitMachine()
  const r = await readEntry(engine, m, io)
  assert.deepEqual(
    m.inputs.map(([name, prefix, total]) => [name, prefix?.byteLength, total]),
    [['startWithTier', 4096, 9_000]],
  )
  assert.equal(r.bytes, held)
  r.answer.free()
  // Taken and dropped: the step's tier action is about the bytes offered.
  const io2 = fakeIo()
  io2.tier.set('k', held)
  const m2 = scripted(
    [
      () => ({ kind: K.Get, tookTier: true, tier: binding.TierAction.Drop }),
      () => answer({ served: binding.Served.Miss }),
    ],
    undefined,
    { asksTier: true },
  )
  const r2 = await readEntry(engine, m2, io2)
  assert.deepEqual(io2.calls[0], ['forget', 'k'], 'dropped before the GET')
  r2.answer.free()
  // None held: offered as none.
  const io3 = fakeIo()
  const m3 = scripted(
    [() => ({ kind: K.Get, tookTier: true }), () => answer({ served: binding.Served.Miss })],
    undefined,
    { asksTier: true },
  )
  ;(await readEntry(engine, m3, io3)).answer.free()
  assert.deepEqual(m3.inputs[0].slice(0, 3), ['startWithTier', undefined, 0])
  // A refresh first: the offer is void, the bytes go in after the refresh (rule R1).
  const refresh = deferred()
  const io4 = fakeIo({ refresh: () => refresh.promise })
  io4.tier.set('k', held)
  const m4 = scripted(
    [
      () => ({ kind: K.Refresh }),
      () => ({ kind: K.PeekTier }),
      () => answer({ source: binding.Source.Tier, served: binding.Served.Fresh }),
    ],
    undefined,
    { asksTier: true },
  )
  const reading = readEntry(engine, m4, io4)
  await settle()
  assert.deepEqual(
    m4.inputs.map(([name]) => name),
    ['startWithTier', 'refreshed'],
  )
  refresh.resolve()
  const r4 = await reading
  assert.deepEqual(
    m4.inputs.map(([name]) => name),
    ['startWithTier', 'refreshed', 'tier'],
  )
  assert.equal(r4.bytes, held)
  r4.answer.free()
})

test('no tier bytes looked up or offered when the machine says its start does not ask for them', async () => {
  // Pulling the tag state (a Redis Cluster's, say): the singular handler's read refreshes
  // first, so the machine's AsksTier is 0 and the read starts with a plain start.
  const held = bytesOf(9_000, 1)
  let looked = 0
  const io = fakeIo({ refresh: () => Promise.resolve() })
  io.tier.set('k', held)
  const tierBytes = io.tierBytes
  io.tierBytes = (key) => {
    looked++
    return tierBytes(key)
  }
  const m = scripted([
    () => ({ kind: K.Refresh }),
    () => ({ kind: K.PeekTier }),
    () => answer({ source: binding.Source.Tier, served: binding.Served.Fresh }),
  ])
  const r = await readEntry(engine, m, io)
  assert.deepEqual(
    m.inputs.map(([name]) => name),
    ['start', 'refreshed', 'tier'],
  )
  assert.equal(looked, 1, 'looked up once, when the tier is asked for')
  assert.equal(r.bytes, held)
  r.answer.free()
})

test("an answer's ASCII tags, empty ones included, are the tags the machine wrote", async () => {
  const io = fakeIo()
  for (const tags of [['bench'], ['_N_T_/x', '', 'a b'], ['', ''], ['x'.repeat(100)]]) {
    const m = scripted([() => answer({ source: binding.Source.Redis, tags })])
    const r = await readEntry(engine, m, io)
    assert.deepEqual(r.answer.tags(), tags)
    r.answer.free()
  }
})

test("an answer's tags and part lengths are read from the module's memory, where its fields say", async () => {
  const io = fakeIo()
  const m = scripted([
    () =>
      answer({ source: binding.Source.Redis, served: binding.Served.Fresh, tags: ['a', 'ü/b'] }),
  ])
  const r = await readEntry(engine, m, io)
  assert.deepEqual(r.answer.tags(), ['a', 'ü/b'])
  r.answer.free()
  const m2 = scripted([() => answer({ served: binding.Served.Miss })])
  const r2 = await readEntry(engine, m2, io)
  assert.deepEqual(r2.answer.tags(), [])
  r2.answer.free()
  // A singular-handler answer's part lengths, the same way.
  const m3 = scripted([
    () =>
      answer({
        source: binding.Source.Redis,
        served: binding.Served.Fresh,
        parts: Uint32Array.from([7, 0, 3]),
      }),
  ])
  const r3 = await readEntry(engine, m3, io)
  assert.deepEqual([...r3.answer.parts()], [7, 0, 3])
  r3.answer.free()
})

test("this process's write in flight is awaited and given whole", async () => {
  const written = deferred()
  const envelope = bytesOf(9_000)
  const io = fakeIo()
  const m = scripted([
    () => ({ kind: K.OwnWrite }),
    () => answer({ source: binding.Source.OwnWrite, served: binding.Served.Fresh }),
  ])
  const reading = readEntry(engine, m, io, { ownWrite: () => written.promise })
  await settle()
  assert.equal(m.inputs.length, 1)
  written.resolve(envelope)
  const r = await reading
  assert.equal(m.inputs[1][1].byteLength, 9_000)
  assert.equal(r.bytes, envelope)
  r.answer.free()
})

test('a follower waits on the fake clock; polls of one key in one process share one script call', async () => {
  const polled = deferred()
  let scripts = 0
  const entry = bytesOf(50)
  const io = fakeIo({
    shares: true,
    script: (argv) => {
      scripts++
      assert.deepEqual(argv, ['EVALSHA', 'poll', '1', 'k'])
      return polled.promise
    },
  })
  // Each poll step carries the number the engine issued it under (`Order`).
  const follower = (order) =>
    scripted([
      () => ({ kind: K.Wait, delayMs: 40 }),
      () => ({
        kind: K.Poll,
        argv: ['EVALSHA', 'poll', '1', 'k'].join('\0'),
        budgetMs: 100,
        order,
      }),
      () =>
        answer({
          source: binding.Source.Poll,
          served: binding.Served.Fresh,
          tier: binding.TierAction.Keep,
          keepUntil: 5,
        }),
    ])
  const a = follower(7)
  const b = follower(9)
  const reads = Promise.all([readEntry(engine, a, io), readEntry(engine, b, io)])
  await settle()
  polled.resolve([entry, 0])
  const [ra, rb] = await reads
  assert.equal(scripts, 1, 'one poll for both followers')
  for (const [m, r] of [
    [a, ra],
    [b, rb],
  ]) {
    assert.equal(m.inputs[1][0], 'timer')
    const [name, prefix, total, leased, joined, order] = m.inputs[2]
    assert.equal(name, 'polled')
    assert.equal(prefix.byteLength, 50)
    assert.equal(total, 50)
    assert.equal(leased, false)
    // The machine hears which follower joined the other's poll (it keeps no page copy), and
    // the number of the poll it joined: what it keeps is ordered as that poll.
    assert.equal(joined, m === b)
    if (joined) assert.equal(order, 7, "the joiner is given the shared poll's number")
    assert.equal(r.bytes, entry)
    r.answer.free()
  }
  // Both timers ran on the fake clock, and the next poll is a new call.
  assert.deepEqual(
    io.calls.filter(([c]) => c === 'sleep'),
    [
      ['sleep', 40],
      ['sleep', 40],
    ],
  )
  assert.equal(io.t, 1_080)
  const c = follower()
  const again = readEntry(engine, c, { ...io, script: () => Promise.resolve([null, 1]) })
  const rc = await again
  assert.deepEqual(c.inputs[2].slice(1, 4), [undefined, 0, true])
  assert.equal(rc.bytes, null, 'nothing to serve from a poll that found nothing')
  rc.answer.free()
})

test('a page read is sent as a read, not a lease command, and its second item reaches the machine', async () => {
  const entry = bytesOf(30)
  const sent = []
  const io = fakeIo({
    shares: true,
    script: (argv, budgetMs, kind) => {
      sent.push([argv.join(' '), budgetMs, kind])
      return Promise.resolve([entry, 0])
    },
  })
  const m = scripted([
    () => ({
      kind: K.PageRead,
      argv: ['EVALSHA', 'pageread', '2', 'k', 'meta', 'E', '3', 'w3'].join('\0'),
      budgetMs: 250,
      order: 4,
    }),
    () =>
      answer({
        source: binding.Source.Poll,
        served: binding.Served.Fresh,
        tier: binding.TierAction.Keep,
        keepUntil: 5,
        outageOnly: true,
      }),
  ])
  const r = await readEntry(engine, m, io)
  // The read's kind: its budget and the breaker's count are a read's (`readTimeoutMs`).
  assert.deepEqual(sent, [['EVALSHA pageread 2 k meta E 3 w3', 250, 'read']])
  const [name, prefix, total, atWrite] = m.inputs[1]
  assert.equal(name, 'polled')
  assert.equal(prefix.byteLength, 30)
  assert.equal(total, 30)
  assert.equal(atWrite, false, 'the sequence moved: the machine hears it')
  assert.equal(r.bytes, entry)
  r.answer.free()
})

/** A reader of key 'k' that gets it from Redis and serves it. */
const getter = () =>
  scripted([
    () => ({ kind: K.Get, budgetMs: 100 }),
    () => answer({ source: binding.Source.Redis, served: binding.Served.Fresh }),
  ])

test('reads of one key share a GET issued in the same turn or after they began, never one issued in an earlier turn', async () => {
  const replies = []
  const io = fakeIo({
    shares: true,
    get: () => {
      const d = deferred()
      replies.push(d)
      return d.promise
    },
  })
  const v1 = bytesOf(10, 1)
  const v2 = bytesOf(10, 2)
  // Two reads begun in one turn: the GET has not left the process, so they share it.
  const a = readEntry(engine, getter(), io)
  const b = readEntry(engine, getter(), io)
  await settle()
  assert.equal(replies.length, 1, 'one GET for two reads of one turn')
  // A read that begins in a later turn while that GET is in flight: the GET may have been
  // answered before a write that resolved before this read began, so it sends its own.
  const c = readEntry(engine, getter(), io)
  await settle()
  assert.equal(replies.length, 2, 'a read of a later turn sends its own GET')
  replies[0].resolve(v1)
  replies[1].resolve(v2)
  const [ra, rb, rc] = await Promise.all([a, b, c])
  assert.equal(ra.bytes, v1)
  assert.equal(rb.bytes, v1)
  assert.equal(rc.bytes, v2, 'the later read gets what its own GET found')
  for (const r of [ra, rb, rc]) r.answer.free()
  // A read that begins before a GET is issued (it waits on a refresh first) joins it.
  const refresh = deferred()
  const waiting = readEntry(
    engine,
    scripted([
      () => ({ kind: K.Refresh }),
      () => ({ kind: K.OwnWrite }),
      () => ({ kind: K.Get, budgetMs: 100 }),
      () => answer({ source: binding.Source.Redis, served: binding.Served.Fresh }),
    ]),
    {
      ...io,
      refresh: () => refresh.promise,
    },
  )
  await settle()
  const d = readEntry(engine, getter(), io)
  await settle()
  assert.equal(replies.length, 3)
  refresh.resolve()
  await settle()
  assert.equal(replies.length, 3, 'the read begun before that GET was issued joins it')
  replies[2].resolve(v2)
  for (const r of await Promise.all([waiting, d])) {
    assert.equal(r.bytes, v2)
    r.answer.free()
  }
})

test('a host that does not share sends a GET per read', async () => {
  let gets = 0
  const io = fakeIo({
    get: () => {
      gets++
      return Promise.resolve(bytesOf(4))
    },
  })
  const rs = await Promise.all([readEntry(engine, getter(), io), readEntry(engine, getter(), io)])
  assert.equal(gets, 2)
  for (const r of rs) r.answer.free()
})

test("a GET's reply is driven to the answer in the reply's own reaction", async () => {
  // Microtask turns from a settled reply to the read's result: each promise between the two
  // costs a Redis hit a turn (and a promise).
  const turnsToAnswer = async (shares) => {
    const io = fakeIo({ shares, get: () => Promise.resolve(bytesOf(4)) })
    let done
    void readEntry(engine, getter(), io).then((r) => {
      done = r
    })
    let turns = 0
    while (done === undefined && turns < 20) {
      await null
      turns++
    }
    assert.equal(done.answer.source, binding.Source.Redis)
    done.answer.free()
    return turns
  }
  // The reply's reaction runs the machine to its answer; the caller's reaction comes next.
  assert.equal(await turnsToAnswer(false), 2)
  assert.equal(await turnsToAnswer(true), 2)
})

test('a GET that other reads may join costs its read no promise more than one they may not', async () => {
  const { createHook } = await import('node:async_hooks')
  const promisesOf = async (shares) => {
    const io = fakeIo({ shares, get: () => Promise.resolve(bytesOf(4)) })
    let n = 0
    const hook = createHook({
      init: (_id, type) => {
        if (type === 'PROMISE') n += 1
      },
    })
    hook.enable()
    let r
    try {
      r = await readEntry(engine, getter(), io)
    } finally {
      hook.disable()
    }
    r.answer.free()
    return n
  }
  // Each twice, the second counted: a first run also makes what the process makes once.
  await promisesOf(false)
  await promisesOf(true)
  const alone = await promisesOf(false)
  const joinable = await promisesOf(true)
  assert.equal(joinable, alone)
})

test(
  'a GET others may join lets go of its reply once settled, whichever way it settled',
  { skip: globalThis.gc === undefined && 'needs node --expose-gc' },
  async () => {
    for (const fails of [false, true]) {
      let reply
      const io = fakeIo({
        shares: true,
        get: () => {
          const bytes = bytesOf(4)
          reply = new WeakRef(bytes)
          return fails
            ? Promise.reject(Object.assign(new Error('down'), { bytes }))
            : Promise.resolve(bytes)
        },
      })
      const m = scripted([
        () => ({ kind: K.Get, budgetMs: 100 }),
        () => answer({ source: binding.Source.None, served: binding.Served.Miss }),
      ])
      // The result (which holds the bytes or the error) is dropped before the collection.
      await readEntry(engine, m, io).then((r) => {
        r.answer.free()
      })
      m.inputs.length = 0 // the scripted machine's record of its inputs (the reply among them)
      await settle()
      globalThis.gc()
      // Held by the map of GETs in flight, if by anything.
      assert.equal(reply.deref(), undefined, fails ? 'after a failed GET' : 'after a reply')
    }
  },
)

test("a machine that throws on a GET's reply, or on its failure, rejects the read and is freed", async () => {
  for (const fails of [false, true]) {
    const io = fakeIo({
      get: () => (fails ? Promise.reject(new Error('down')) : Promise.resolve(bytesOf(4))),
    })
    const m = scripted([
      () => ({ kind: K.Get, budgetMs: 100 }),
      () => {
        throw Object.assign(new Error('trap'), { code: 'ERR_TRAP' })
      },
    ])
    await assert.rejects(readEntry(engine, m, io), /trap/)
    assert.ok(m.freed, fails ? 'after a failed GET' : 'after a reply')
    assert.equal(m.inputs[1][0], fails ? 'failed' : 'reply')
  }
})

test('a store in this process answers a Get in the same turn: no get, no sharing, no await', async () => {
  const held = bytesOf(12)
  const asked = []
  const io = fakeIo({
    shares: true,
    get: () => assert.fail('get is not called when the store answers now'),
    getNow: (key) => {
      asked.push(key)
      return held
    },
  })
  const m = getter()
  const reading = readEntry(engine, m, io)
  // Before any await: the machine already has the bytes and has answered.
  assert.deepEqual(asked, ['k'])
  assert.deepEqual(
    m.inputs.map(([name]) => name),
    ['start', 'reply'],
  )
  const [, prefix, total, joined] = m.inputs[1]
  assert.equal(prefix.byteLength, 12)
  assert.equal(total, 12)
  assert.equal(joined, false)
  const r = await reading
  assert.equal(r.bytes, held)
  r.answer.free()
})

test('a store in this process: its bytes go with the start as the Get reply when the tier is asked first', async () => {
  const held = bytesOf(12)
  const asked = []
  const io = fakeIo({
    get: () => assert.fail('get is not called when the store answers now'),
    getNow: () => assert.fail('the store is read once, with the start'),
    held: (key) => {
      asked.push(key)
      return held
    },
  })
  const m = scripted(
    [
      () =>
        answer({
          source: binding.Source.Redis,
          served: binding.Served.Fresh,
          payloadOffset: 4,
          tookTier: 2,
          tier: binding.TierAction.Drop,
        }),
    ],
    undefined,
    { asksTier: true },
  )
  const r = await readEntry(engine, m, io)
  assert.deepEqual(asked, ['k'])
  assert.deepEqual(
    m.inputs.map(([name, prefix, total]) => [name, prefix?.byteLength, total]),
    [['startWithHeld', 12, 12]],
  )
  assert.equal(r.bytes, held)
  // The step's tier action is about the bytes given as the reply.
  assert.deepEqual(io.calls, [['forget', 'k']])
  r.answer.free()
  // Not taken (the index no longer holds the entry): the driver reads the store for the Get.
  let gets = 0
  const io2 = fakeIo({
    getNow: () => {
      gets++
      return null
    },
    held: () => held,
  })
  const m2 = scripted(
    [() => ({ kind: K.Get, tookTier: 1 }), () => answer({ served: binding.Served.Miss })],
    undefined,
    { asksTier: true },
  )
  const r2 = await readEntry(engine, m2, io2)
  assert.equal(gets, 1)
  assert.deepEqual(
    m2.inputs.map(([name, prefix]) => [name, prefix?.byteLength]),
    [
      ['startWithHeld', 12],
      ['reply', undefined],
    ],
  )
  assert.equal(r2.bytes, null)
  r2.answer.free()
})

test('a store in this process: its bytes still wait for the refresh the machine asked for (R1)', async () => {
  const refresh = deferred()
  const io = fakeIo({ refresh: () => refresh.promise, getNow: () => bytesOf(10) })
  const m = scripted([
    () => ({ kind: K.Refresh }),
    () => ({ kind: K.Get, key: 'k', budgetMs: 250 }),
    () => answer({ source: binding.Source.Redis, served: binding.Served.Fresh, payloadOffset: 4 }),
  ])
  const reading = readEntry(engine, m, io)
  await settle()
  assert.deepEqual(
    m.inputs.map(([name]) => name),
    ['start', 'refreshed'],
  )
  io.t = 1_500
  refresh.resolve()
  const r = await reading
  assert.equal(m.inputs[2][0], 'reply')
  assert.equal(m.inputs[2][5], 1_500, 'stamped after the refresh')
  r.answer.free()
})

test('a follower that begins after a poll was issued in an earlier turn sends its own poll', async () => {
  const polls = []
  const io = fakeIo({
    shares: true,
    script: () => {
      const d = deferred()
      polls.push(d)
      return d.promise
    },
  })
  const follower = () =>
    scripted([
      () => ({ kind: K.Poll, argv: ['EVALSHA', 'poll', '1', 'k'].join('\0'), budgetMs: 100 }),
      () => answer({ source: binding.Source.Poll, served: binding.Served.Fresh }),
    ])
  const a = readEntry(engine, follower(), io)
  await settle()
  const b = readEntry(engine, follower(), io)
  await settle()
  assert.equal(polls.length, 2)
  const v1 = bytesOf(8, 1)
  const v2 = bytesOf(8, 2)
  polls[0].resolve([v1, 0])
  polls[1].resolve([v2, 0])
  const [ra, rb] = await Promise.all([a, b])
  assert.equal(ra.bytes, v1)
  assert.equal(rb.bytes, v2)
  ra.answer.free()
  rb.answer.free()
})

test('a lease reply is handed back as a number; a failed lease request as a failure', async () => {
  const io = fakeIo({ script: () => Promise.resolve('0') })
  const m = scripted([
    () => ({ kind: K.Acquire, argv: ['EVALSHA', 'lease'].join('\0') }),
    () => answer({ served: binding.Served.Miss }),
  ])
  ;(await readEntry(engine, m, io)).answer.free()
  assert.deepEqual(m.inputs[1], ['leaseReply', 0, io.t])

  const refused = Object.assign(new Error('NOPERM'), { code: 'ERR_REDIS_REPLY' })
  const io2 = fakeIo({ script: () => Promise.reject(refused) })
  const m2 = scripted([
    () => ({ kind: K.Acquire, argv: ['EVALSHA', 'lease'].join('\0') }),
    () => answer({ served: binding.Served.Miss }),
  ])
  ;(await readEntry(engine, m2, io2)).answer.free()
  assert.deepEqual(m2.inputs[1], ['failed', binding.Failure.ReplyError, io2.t])
  // The machine's answer says so; the driver adds no line of its own.
  assert.deepEqual(io2.lines, [])
})

/** A renewal step packed as the binding packs it (`RenewStep`: kind, delayMs, argv, budgetMs, log). */
function packedRenewStep({ kind, delayMs = 0, argv = '', budgetMs = 0, log = '' }) {
  const parts = []
  const num = (v) => {
    const b = new Uint8Array(8)
    new DataView(b.buffer).setFloat64(0, v, true)
    parts.push(b)
  }
  const text = (t) => {
    const b = new TextEncoder().encode(t)
    const len = new Uint8Array(4)
    new DataView(len.buffer).setUint32(0, b.byteLength, true)
    parts.push(len, b)
  }
  num(kind)
  num(delayMs)
  text(argv)
  num(budgetMs)
  text(log)
  return Buffer.concat(parts)
}

test('a renewal step of another layout stops the renewals with a line, the machine freed', async () => {
  const io = fakeIo()
  const whole = packedRenewStep({ kind: binding.RenewStepKind.Wait, delayMs: 1_000 })
  const machine = { start: () => whole.subarray(0, 12), freed: false }
  machine.free = () => (machine.freed = true)
  await renew(engine, machine, io)
  assert.ok(machine.freed)
  assert.equal(io.lines.length, 1)
  assert.match(
    io.lines[0],
    /^lease renewal stopped \(.*packed answer ends before its number.*\): it expires$/,
  )
})

test('the lease holder renews on the fake clock until the renewal machine is done', async () => {
  const renewSteps = [
    () => ({ kind: binding.RenewStepKind.Wait, delayMs: 1_000 }),
    () => ({
      kind: binding.RenewStepKind.Send,
      argv: ['EVALSHA', 'renew'].join('\0'),
      budgetMs: 100,
    }),
    () => ({ kind: binding.RenewStepKind.Wait, delayMs: 1_000 }),
    () => ({
      kind: binding.RenewStepKind.Send,
      argv: ['EVALSHA', 'renew'].join('\0'),
      budgetMs: 100,
    }),
    () => ({ kind: binding.RenewStepKind.Wait, delayMs: 1_000 }),
    () => ({
      kind: binding.RenewStepKind.Send,
      argv: ['EVALSHA', 'renew'].join('\0'),
      budgetMs: 100,
    }),
    () => ({ kind: binding.RenewStepKind.Done, log: 'lease on k no longer held: not renewed' }),
  ]
  const inputs = []
  let i = 0
  const next = (name, ...args) => {
    inputs.push([name, ...args])
    return packedRenewStep(renewSteps[i++]())
  }
  const machine = {
    start: (_e, t) => next('start', t),
    timer: (_e, t) => next('timer', t),
    sent: (_e, reply, t) => next('sent', reply, t),
    failed: (_e, failure, t) => next('failed', failure, t),
    freed: false,
    free() {
      this.freed = true
    },
  }
  // The lease request's reply (won), then the three renewals'.
  const replies = [
    Promise.resolve(1),
    Promise.resolve(1),
    Promise.reject(Object.assign(new Error('t'), { code: 'ERR_REDIS_TIMEOUT' })),
    Promise.resolve(0),
  ]
  replies[2].catch(() => undefined)
  const io = fakeIo({ script: () => replies.shift() })
  const holder = scripted(
    [
      () => ({ kind: K.Acquire, argv: ['EVALSHA', 'lease'].join('\0') }),
      () => answer({ served: binding.Served.Miss, holdsLease: true }),
    ],
    machine,
  )
  const read = await readEntry(engine, holder, io)
  read.answer.free()
  assert.deepEqual(holder.inputs[1], ['leaseReply', 1, 1_000])
  // The renewal runs behind the answer: wait for it to end (its machine is freed).
  while (!machine.freed) await settle()
  assert.deepEqual(io.lines, ['lease on k no longer held: not renewed'])
  assert.deepEqual(inputs, [
    ['start', 1_000],
    ['timer', 2_000],
    ['sent', 1, 2_000],
    ['timer', 3_000],
    ['failed', binding.Failure.Timeout, 3_000],
    ['timer', 4_000],
    ['sent', 0, 4_000],
  ])
})

test('an answer whose value cannot be decoded is reported, and the machine goes on', async () => {
  const io = fakeIo()
  io.redis.set('k', bytesOf(8))
  const m = scripted([
    () => ({ kind: K.Get, key: 'k' }),
    () => answer({ source: binding.Source.Redis, served: binding.Served.Fresh }),
    () => answer({ served: binding.Served.Miss }),
  ])
  const seen = []
  const r = await readEntry(engine, m, io, {
    decode: (a, bytes) => {
      seen.push(bytes.byteLength)
      return undefined
    },
  })
  assert.deepEqual(seen, [8])
  assert.equal(m.inputs[2][0], 'undecodable')
  assert.equal(r.value, undefined)
  assert.equal(r.bytes, null)
  r.answer.free()

  const m2 = scripted([
    () => ({ kind: K.Get, key: 'k' }),
    () => answer({ source: binding.Source.Redis, served: binding.Served.Stale }),
  ])
  const r2 = await readEntry(engine, m2, io, { decode: () => ({ decoded: true }) })
  assert.deepEqual(r2.value, { decoded: true })
  r2.answer.free()
})

test('a value taken back as undecodable is dropped from the tier when the machine says so', async () => {
  const io = fakeIo()
  io.tier.set('k', bytesOf(8))
  const m = scripted([
    () => ({ kind: K.PeekTier }),
    () => answer({ source: binding.Source.Tier, served: binding.Served.Fresh }),
    // The machine forgot the key in its index: the host drops the bytes it holds for it.
    () => ({ kind: K.Get, key: 'k', tier: binding.TierAction.Drop }),
    () => answer({ served: binding.Served.Miss }),
  ])
  const r = await readEntry(engine, m, io, { decode: () => undefined })
  assert.equal(m.inputs[2][0], 'undecodable')
  assert.deepEqual(io.calls.slice(0, 2), [
    ['forget', 'k'],
    ['get', 'k', 0],
  ])
  r.answer.free()
})

test('a machine that never answers is stopped at the step bound, freed, and the read is a miss', async () => {
  const io = fakeIo()
  let steps = 0
  const forever = () => {
    steps++
    return { kind: K.Wait, delayMs: 1 }
  }
  const m = scripted(Array.from({ length: 5_000 }, () => forever))
  const r = await readEntry(engine, m, io)
  assert.equal(r.answer, undefined)
  assert.equal(r.bytes, null)
  assert.ok(steps <= 1_001, `${steps} steps`)
  assert.ok(m.freed)
})

test('a machine that throws rejects the read and is freed', async () => {
  const io = fakeIo()
  const m = scripted([
    () => {
      throw Object.assign(new Error('ill-formed'), { code: 'ERR_KEY_ILL_FORMED' })
    },
  ])
  await assert.rejects(readEntry(engine, m, io), /ill-formed/)
  assert.ok(m.freed)
})

test('lease tokens are distinct per read and shaped as the lease scripts expect', () => {
  const tokens = new Set(Array.from({ length: 1000 }, () => leaseToken()))
  assert.equal(tokens.size, 1000)
  for (const t of tokens) assert.match(t, /^[0-9a-f]{32}$/)
})

// A stand-in for the binding's machine: what the pool reads of it (entryKey, free) and how
// often the key was read out of it.
function pooledMachine(name) {
  return {
    name,
    keyReads: 0,
    freed: false,
    get entryKey() {
      this.keyReads++
      return `entry:${name}`
    },
    free() {
      this.freed = true
    },
  }
}

test('released machines are reused up to 64 at once, the rest freed', () => {
  const pool = new ReadMachines()
  const made = Array.from({ length: 70 }, (_, i) => pooledMachine(i))
  for (const m of made) pool.release(m)
  assert.equal(made.filter((m) => m.freed).length, 6)
  assert.ok(made.slice(64).every((m) => m.freed))
  const reused = []
  for (let i = 0; i < 64; i++) {
    reused.push(
      pool.open(
        'k',
        () => assert.fail('a released machine was there'),
        (m) => m,
      ),
    )
  }
  assert.deepEqual(new Set(reused), new Set(made.slice(0, 64)))
  let fresh = 0
  const m = pool.open(
    'k',
    () => {
      fresh++
      return pooledMachine('new')
    },
    () => assert.fail('no released machine left'),
  )
  assert.equal(m.name, 'new')
  assert.equal(fresh, 1)
})

test('a machine whose reuse is refused stays in the pool for the next read', () => {
  const pool = new ReadMachines()
  const m = pooledMachine('a')
  pool.release(m)
  const refused = Object.assign(new Error('ill-formed'), { code: 'ERR_KEY_ILL_FORMED' })
  assert.throws(
    () =>
      pool.open(
        'bad',
        () => assert.fail('not made new'),
        () => {
          throw refused
        },
      ),
    refused,
  )
  assert.equal(m.freed, false)
  assert.equal(
    pool.open(
      'good',
      () => pooledMachine('new'),
      () => undefined,
    ),
    m,
  )
})

test("a short cache key's entry key is read from a machine once, then given to reused ones", () => {
  const pool = new ReadMachines()
  const first = pooledMachine('a')
  const given = []
  const reuse = (_, entryKey) => {
    given.push(entryKey)
  }
  const m = pool.open('k', () => first, reuse)
  assert.equal(pool.entryKey('k', m), 'entry:a')
  pool.release(m)
  const again = pool.open('k', () => assert.fail('reused'), reuse)
  assert.equal(pool.entryKey('k', again), 'entry:a')
  assert.equal(first.keyReads, 1)
  assert.deepEqual(given, ['entry:a'])
  // A long key is not held: every read takes it from its machine.
  const long = 'x'.repeat(513)
  pool.release(again)
  const l = pool.open(long, () => assert.fail('reused'), reuse)
  assert.equal(pool.entryKey(long, l), 'entry:a')
  assert.equal(pool.entryKey(long, l), 'entry:a')
  assert.equal(first.keyReads, 3)
  assert.deepEqual(given, ['entry:a', undefined])
})
