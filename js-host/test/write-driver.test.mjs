// The write driver with the real engine, a fake store and a fake clock: no Redis, no timers.
// It sends what the write machine asks for, reports how it went, and logs the machine's lines.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')
// `describeEnvelope` is in the tools module (docs/decisions/0028-wasm-size-budget.md, eighth
// pass); it takes bytes, so no engine object crosses between the two modules.
const { describeEnvelope } = require('../wasm/tools/node/fleetcache_wasm.js')
const { writeEntry, failureOf } = require('../dist/write-driver.js')

const T0 = 1_800_000_000_000
const iface = wasm.Interface.useCache('default')

/** Makes `e` the holder of `key`'s lease under `token`: a read that misses and wins it. */
function winLease(e, key, token) {
  const m = wasm.ReadMachine.useCache(e, iface, key, '', false, wasm.Consumer.Serves, token, T0)
  const K = wasm.ReadStepKind
  try {
    let kind = m.start(e, T0)
    for (let i = 0; i < 16 && kind !== K.Answer; i++) {
      if (kind === K.Refresh) kind = m.refreshed(e, T0)
      else if (kind === K.OwnWrite) kind = m.ownWrite(e, undefined, T0)
      else if (kind === K.PeekTier) kind = m.tier(e, undefined, 0, T0)
      else if (kind === K.Get) kind = m.reply(e, undefined, 0, false, 0, T0)
      else if (kind === K.Acquire) kind = m.leaseReply(e, 1, T0)
      else throw new Error(`unexpected read step ${kind}`)
    }
    assert.equal(kind, K.Answer)
  } finally {
    m.free()
  }
}

/** An engine of a host that prints debug lines: the machine writes its lines only then. */
function engine() {
  return new wasm.Engine({ prefix: 'fc', deployment: 'd1', debug: true })
}

const fail = (code, message = code) => Object.assign(new Error(message), { code })

/**
 * A fake host: `answer(op)` decides how each store or script ends (undefined: it succeeds, an
 * Error: it rejects, a Promise: it ends with it). Records everything the driver did.
 */
function fakeIo(answer = () => undefined, extra = {}) {
  const io = {
    calls: [],
    lines: { debug: [], warn: [], error: [] },
    enums: wasm,
    now: () => T0,
    async store(key, value, ttlMs, argv, until, budgetMs) {
      io.calls.push({ op: 'store', key, value, ttlMs, argv, until, budgetMs })
      const r = answer('store')
      if (r instanceof Error) throw r
      await r
    },
    async script(argv, budgetMs) {
      io.calls.push({ op: 'script', argv, budgetMs })
      const r = answer('script')
      if (r instanceof Error) throw r
      await r
    },
    remember(key, value, until, outageOnly) {
      io.calls.push({ op: 'remember', key, value, until, outageOnly })
    },
    markLocal(key) {
      io.calls.push({ op: 'markLocal', key })
    },
    describe: (err) => `${err.code}: ${err.message}`,
    log: {
      debug: (l) => io.lines.debug.push(l),
      warn: (l) => io.lines.warn.push(l),
      error: (l) => io.lines.error.push(l),
    },
    ...extra,
  }
  return io
}

function useCache(e, { revalidate = 60, expire = 3600, tags = 'a', payload = 10 } = {}) {
  return wasm.WriteMachine.useCache(e, iface, 'k', tags, T0, revalidate, expire, 30, payload, T0)
}

const ops = (io) => io.calls.map((c) => c.op)

describe('write driver, fake store and clock', () => {
  test('a step buffer of another layout ends the write with a typed error, nothing sent', async () => {
    const e = engine()
    const io = fakeIo()
    // A real first step, cut short inside its key.
    const real = useCache(e)
    const packed = real.start(e, T0)
    real.free()
    const machine = { start: () => packed.subarray(0, 14), freed: false }
    machine.free = () => (machine.freed = true)
    await writeEntry(e, machine, new Uint8Array(4), io)
    assert.deepEqual(io.calls, [])
    assert.equal(io.lines.error.length, 1)
    assert.match(io.lines.error[0], /^write not planned, entry not stored: ERR_WASM_PACKED: /)
    assert.ok(machine.freed)
  })

  test('a cacheable entry: kept in the tier, then SET with header and payload', async () => {
    const e = engine()
    const io = fakeIo()
    const payload = new Uint8Array(10).fill(7)
    await writeEntry(e, useCache(e), payload, io)
    assert.deepEqual(ops(io), ['remember', 'store'])
    const [remember, store] = io.calls
    assert.equal(store.key, e.entryKey(iface, 'k'))
    assert.deepEqual(store.argv, [], 'no lease held: a plain SET')
    assert.equal(store.ttlMs, 3_600_000)
    assert.equal(store.until, T0 + 3_600_000)
    assert.deepEqual([...store.value.subarray(store.value.byteLength - 10)], [...payload])
    assert.equal(remember.value, store.value)
    assert.equal(remember.outageOnly, false)
    const described = describeEnvelope(store.value, store.value.byteLength)
    assert.deepEqual(described.tags, ['a'])
    assert.equal(io.lines.error.length, 0)
    assert.match(io.lines.debug[0], / B ttl 3600 s$/)
  })

  test('payload parts are appended in order', async () => {
    const e = engine()
    const io = fakeIo()
    const parts = [new Uint8Array([1, 2]), new Uint8Array([3]), new Uint8Array([4, 5, 6])]
    const m = wasm.WriteMachine.incremental(
      e,
      '/p',
      4,
      8,
      0,
      '',
      60,
      Number.NaN,
      Uint32Array.from([2, 4]),
      Number.NaN,
      Number.NaN,
      Number.NaN,
      Number.NaN,
      Number.NaN,
      T0,
    )
    await writeEntry(e, m, [parts[0], new Uint8Array([3, 4, 5, 6])], io)
    const store = io.calls.find((c) => c.op === 'store')
    assert.deepEqual([...store.value.subarray(store.value.byteLength - 6)], [1, 2, 3, 4, 5, 6])
  })

  test('a failed write marks the copy local and logs the error with its description', async () => {
    const e = engine()
    const io = fakeIo(() => fail('ERR_REDIS_REPLY', 'OOM command not allowed'))
    await writeEntry(e, useCache(e), new Uint8Array(10), io)
    assert.deepEqual(ops(io), ['remember', 'store', 'markLocal'])
    assert.equal(io.calls[2].key, e.entryKey(iface, 'k'))
    assert.deepEqual(io.lines.error, [
      'set failed, entry not stored: ERR_REDIS_REPLY: OOM command not allowed',
    ])
  })

  test('a write the breaker holds back marks the copy local without an error line', async () => {
    const e = engine()
    const io = fakeIo(() => fail('ERR_REDIS_CIRCUIT_OPEN'))
    await writeEntry(e, useCache(e), new Uint8Array(10), io)
    assert.deepEqual(ops(io), ['remember', 'store', 'markLocal'])
    assert.deepEqual(io.lines.error, [])
  })

  test('not cacheable: nothing sent, a debug line', async () => {
    const e = engine()
    const io = fakeIo()
    await writeEntry(e, useCache(e, { revalidate: 0 }), new Uint8Array(10), io)
    assert.deepEqual(ops(io), [])
    assert.match(io.lines.debug[0], /skipped \(not cacheable\)$/)
  })

  test('the lease holder writes with the release script; not cacheable, it releases', async () => {
    const e = engine()
    winLease(e, 'k', 'tok')
    let io = fakeIo()
    await writeEntry(e, useCache(e), new Uint8Array(10), io)
    const store = io.calls.find((c) => c.op === 'store')
    assert.equal(store.argv[0], 'EVALSHA')
    assert.equal(store.argv.at(-1), 'tok')
    winLease(e, 'k', 'tok2')
    io = fakeIo()
    await writeEntry(e, useCache(e, { revalidate: 0 }), new Uint8Array(10), io)
    assert.deepEqual(ops(io), ['script'])
    assert.equal(io.calls[0].argv.at(-1), 'tok2')
    // Nothing left to release.
    io = fakeIo()
    await writeEntry(e, wasm.WriteMachine.abandoned(e, iface, 'k', T0), [], io)
    assert.deepEqual(ops(io), [])
  })

  test('an abandoned set releases a held lease; a failed release is a debug line', async () => {
    const e = engine()
    winLease(e, 'k', 'tok')
    const io = fakeIo(() => fail('ERR_REDIS_TIMEOUT'))
    await writeEntry(e, wasm.WriteMachine.abandoned(e, iface, 'k', T0), [], io)
    assert.deepEqual(ops(io), ['script'])
    assert.deepEqual(io.lines.error, [])
    assert.ok(io.lines.debug.some((l) => l.includes('lease release failed')))
  })

  test('with a timer, the caller waits at most waitMs; the write goes on and lands', async () => {
    const e = engine()
    let land
    const pending = new Promise((resolve) => {
      land = resolve
    })
    const slept = []
    const built = []
    const io = fakeIo((op) => (op === 'store' ? pending : undefined), {
      sleep: (ms) => {
        slept.push(ms)
        return Promise.resolve()
      },
      built: (value, landed) => built.push({ value, landed }),
    })
    await writeEntry(e, useCache(e), new Uint8Array(10), io)
    // Resolved by the timer: the store has not landed yet.
    assert.deepEqual(slept, [wasm.defaults().readTimeoutMs])
    assert.equal(built.length, 1)
    assert.equal(io.lines.debug.length, 0, 'not done yet')
    land()
    await built[0].landed
    assert.match(io.lines.debug[0], / B ttl 3600 s$/)
  })

  test('with a timer, a write that lands first ends the timer', async () => {
    const e = engine()
    const signals = []
    const io = fakeIo(undefined, {
      sleep: (_ms, signal) => {
        signals.push(signal)
        return new Promise(() => undefined)
      },
    })
    await writeEntry(e, useCache(e), new Uint8Array(10), io)
    assert.equal(signals.length, 1)
    assert.ok(signals[0].aborted, 'the wait is given up once the write landed')
  })

  test('with a timer, a refused write resolves at once; its release goes on, a failure logged', async () => {
    const e = engine()
    winLease(e, 'k', 'tok')
    let answer
    const released = new Promise((resolve) => {
      answer = resolve
    })
    const io = fakeIo((op) => (op === 'script' ? released : undefined), {
      sleep: () => new Promise(() => undefined),
    })
    // Not cacheable: only the release is left, and the caller does not wait for it (it
    // resolves before a macrotask turn, while the release is still unanswered).
    const writing = writeEntry(e, useCache(e, { revalidate: 0 }), new Uint8Array(10), io)
    const turn = new Promise((resolve) => setImmediate(() => resolve('still waiting')))
    assert.equal(await Promise.race([writing.then(() => 'resolved'), turn]), 'resolved')
    assert.deepEqual(ops(io), ['script'])
    assert.equal(io.calls[0].argv.at(-1), 'tok')
    assert.equal(io.lines.debug.length, 0, 'the release has not landed')
    answer(Promise.reject(fail('ERR_REDIS_TIMEOUT')))
    await released.catch(() => undefined)
    await new Promise((resolve) => setImmediate(resolve))
    assert.ok(io.lines.debug.some((l) => l.includes('lease release failed')))
    assert.deepEqual(io.lines.error, [])
  })

  test('over-long tags: one warning line', async () => {
    const e = engine()
    const io = fakeIo()
    await writeEntry(
      e,
      useCache(e, { tags: `a\0${'x'.repeat(17 * 1024)}` }),
      new Uint8Array(10),
      io,
    )
    assert.equal(io.lines.warn.length, 1)
    assert.match(io.lines.warn[0], /dropped 1 tag/)
  })

  test('errors map to failures by their code', () => {
    assert.equal(failureOf(fail('ERR_REDIS_TIMEOUT'), wasm), wasm.Failure.Timeout)
    assert.equal(failureOf(fail('ERR_REDIS_REPLY'), wasm), wasm.Failure.ReplyError)
    assert.equal(failureOf(fail('ERR_REDIS_CIRCUIT_OPEN'), wasm), wasm.Failure.CircuitOpen)
    assert.equal(failureOf(new Error('ECONNRESET'), wasm), wasm.Failure.NoConnection)
    assert.equal(failureOf('nope', wasm), wasm.Failure.NoConnection)
  })
})
