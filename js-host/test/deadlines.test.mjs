// The deadline queue (src/deadlines.ts) on a fake clock and fake timers, then twice on Node's
// own in a child process (does its timer keep the process alive exactly while a deadline is
// pending?).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

const require = createRequire(import.meta.url)
const { DeadlineQueue } = require('../dist/deadlines.js')

/**
 * A clock and timers under the test's control. `early` makes every timer fire up to that many
 * ms (at most half its delay) before its time: Node's timers count whole milliseconds of the
 * event loop's clock, so one can fire up to a millisecond early by `performance.now()`.
 */
function fakeHost({ early = 0 } = {}) {
  const host = {
    t: 1000,
    timers: [],
    started: 0,
    now: () => host.t,
    start(fire, ms) {
      assert.ok(Number.isInteger(ms) && ms >= 1, `a whole delay of at least 1 ms, not ${ms}`)
      host.started++
      const timer = {
        at: host.t + ms - Math.min(early, ms / 2),
        fire,
        stopped: false,
        refed: true,
        ref() {
          timer.refed = true
        },
        unref() {
          timer.refed = false
        },
      }
      host.timers.push(timer)
      return timer
    },
    stop(timer) {
      timer.stopped = true
    },
    /** The timers armed and not yet fired or stopped. */
    armed: () => host.timers.filter((x) => !x.stopped && !x.fired),
    /** Moves the clock to `to`, firing each timer due on the way at its own time. */
    advance(to) {
      for (;;) {
        const due = host.armed().filter((x) => x.at <= to)
        if (due.length === 0) break
        const next = due.reduce((a, b) => (b.at < a.at ? b : a))
        host.t = Math.max(host.t, next.at)
        next.fired = true
        next.fire()
      }
      host.t = to
    },
  }
  return host
}

describe('deadline queue', () => {
  test('calls each back at its deadline, never before, in deadline order across budgets', () => {
    const host = fakeHost()
    const q = new DeadlineQueue(host)
    const calls = []
    const at = (name) => () => calls.push([name, host.t])
    q.add(300, at('w1')) // 1300
    q.add(100, at('r1')) // 1100: earlier than the armed timer, re-armed
    host.t = 1010
    q.add(100, at('r2')) // 1110
    q.add(50, at('x')) // 1060
    q.add(300, at('w2')) // 1310
    host.advance(1059.999)
    assert.deepEqual(calls, [])
    host.advance(1400)
    assert.deepEqual(calls, [
      ['x', 1060],
      ['r1', 1100],
      ['r2', 1110],
      ['w1', 1300],
      ['w2', 1310],
    ])
    assert.equal(q.pending, 0)
    assert.equal(q.retained, 0)
  })

  test('a fired timer calls back only after the waiting I/O is read: what settled by then is not called back', () => {
    // The host defers the callbacks as Node's setImmediate does, after the poll phase: a reply
    // read there (after a stall of the event loop) settles its deadline first.
    const host = fakeHost()
    const deferred = []
    host.defer = (fn) => deferred.push(fn)
    const q = new DeadlineQueue(host)
    const calls = []
    const a = q.add(100, () => calls.push('a'))
    q.add(100, () => calls.push('b'))
    host.advance(1500) // the loop was blocked past both deadlines
    assert.deepEqual(calls, [], 'nothing called back in the timer itself')
    assert.equal(deferred.length, 1)
    q.settle(a) // its reply, read in the poll phase
    // A registration meanwhile arms a timer of its own, which the deferred call takes over.
    const c = q.add(100, () => calls.push('c'))
    deferred.shift()()
    assert.deepEqual(calls, ['b'])
    assert.equal(host.armed().length, 1, 'one timer, for c')
    q.settle(c)
    host.advance(1700)
    deferred.shift()()
    assert.deepEqual(calls, ['b'])
    assert.equal(q.pending, 0)
    assert.equal(host.armed().length, 0, 'no timer left armed once none is pending')
  })

  test('a timer that fires early is armed again: no callback before its deadline', () => {
    const host = fakeHost({ early: 3 })
    const q = new DeadlineQueue(host)
    const calls = []
    q.add(100, () => calls.push(host.t))
    q.add(100.5, () => calls.push(host.t))
    host.advance(2000)
    assert.equal(calls.length, 2)
    assert.ok(calls[0] >= 1100 && calls[1] >= 1100.5, `called at ${calls.join(', ')}`)
    assert.ok(host.started > 1, 'armed again after the early firing')
  })

  test('a settled deadline is never called back; settling twice or after firing does nothing', () => {
    const host = fakeHost()
    const q = new DeadlineQueue(host)
    const calls = []
    const a = q.add(100, () => calls.push('a'))
    const b = q.add(100, () => calls.push('b'))
    const c = q.add(100, () => calls.push('c'))
    q.settle(b)
    q.settle(b)
    assert.equal(q.pending, 2)
    host.advance(1100)
    assert.deepEqual(calls, ['a', 'c'])
    q.settle(a)
    q.settle(c)
    assert.equal(q.pending, 0)
    const d = q.add(10, () => calls.push('d'))
    assert.equal(q.pending, 1)
    host.advance(1110)
    assert.deepEqual(calls, ['a', 'c', 'd'])
    q.settle(d)
    assert.equal(q.pending, 0)
  })

  test('many deadlines, settled in any order: each called once, at or just after its deadline', () => {
    const host = fakeHost()
    const q = new DeadlineQueue(host)
    let seed = 7
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const budgets = [50, 200, 200.25, 1000, 3000]
    const entries = []
    for (let i = 0; i < 5000; i++) {
      host.advance(host.t + random() * 2)
      const e = { due: 0, called: [], settled: false }
      e.due = host.t + budgets[Math.floor(random() * budgets.length)]
      e.handle = q.add(e.due - host.t, () => e.called.push(host.t))
      entries.push(e)
      // Settle a random earlier command that is still pending, half of the time.
      const other = entries[Math.floor(random() * entries.length)]
      if (random() < 0.5 && !other.settled && other.called.length === 0) {
        other.settled = true
        q.settle(other.handle)
      }
    }
    host.advance(host.t + 4000)
    for (const e of entries) {
      if (e.settled) assert.deepEqual(e.called, [])
      else {
        assert.equal(e.called.length, 1)
        assert.ok(
          e.called[0] >= e.due && e.called[0] < e.due + 1.001,
          `${e.called[0]} for ${e.due}`,
        )
      }
    }
    assert.equal(q.pending, 0)
    assert.equal(q.retained, 0)
  })

  test('a steady load sets the timer about once per budget, not once per command', () => {
    const host = fakeHost()
    const q = new DeadlineQueue(host)
    // 10 000 commands over 10 s, 4 in flight: each answered 4 ms after it was sent.
    const inFlight = []
    for (let i = 0; i < 10_000; i++) {
      host.advance(host.t + 1)
      inFlight.push(q.add(200, () => assert.fail('no command times out')))
      if (inFlight.length > 4) q.settle(inFlight.shift())
    }
    for (const d of inFlight) q.settle(d)
    assert.ok(host.started <= 10_000 / 200 + 2, `${host.started} timers for 10 000 commands`)
  })

  test('settled entries are dropped: a long run where every command succeeds holds a bounded queue', () => {
    const host = fakeHost()
    const q = new DeadlineQueue(host)
    const inFlight = []
    let most = 0
    for (let i = 0; i < 100_000; i++) {
      host.t += 0.01
      inFlight.push(q.add(i % 3 === 0 ? 500 : 100, () => assert.fail('no timeout')))
      // Answers out of order among the 16 in flight (a cluster: several connections).
      if (inFlight.length >= 16) q.settle(inFlight.splice(i % 16, 1)[0])
      if (i % 1000 === 0) host.advance(host.t)
      most = Math.max(most, q.retained)
    }
    assert.ok(most <= 64, `at most ${most} entries held`)
    for (const d of inFlight) q.settle(d)
    assert.equal(q.retained, 0)
    assert.equal(q.pending, 0)
  })

  test('the timer holds the process alive exactly while a deadline is pending', () => {
    const host = fakeHost()
    const q = new DeadlineQueue(host)
    const a = q.add(100, () => {})
    const timer = host.armed()[0]
    assert.equal(timer.refed, true)
    const b = q.add(100, () => {})
    q.settle(a)
    assert.equal(timer.refed, true, 'one still pending')
    q.settle(b)
    assert.equal(timer.refed, false, 'none pending')
    const c = q.add(150, () => {})
    assert.equal(host.armed().length, 1)
    assert.equal(timer.refed, true, 'pending again, on the same timer')
    host.advance(1100)
    // Fired for nothing (a and b settled), armed again for c.
    const again = host.armed()
    assert.equal(again.length, 1)
    assert.equal(again[0].refed, true)
    q.settle(c)
    assert.equal(again[0].refed, false)
    host.advance(1200)
    assert.equal(host.armed().length, 0, 'nothing pending: not armed again')
  })

  test('`start` counts the budget from a reading the caller took; an older one keeps the order', () => {
    const host = fakeHost()
    const q = new DeadlineQueue(host)
    const calls = []
    host.t = 1005
    q.add(100, () => calls.push(['a', host.t]), 1000)
    // Older than the previous registration's start: not due before the deadline ahead of it.
    q.add(100, () => calls.push(['b', host.t]), 999)
    // Its deadline is the one ahead's: no timer of its own (it would fire for nothing).
    assert.equal(host.started, 1)
    host.advance(1200)
    assert.deepEqual(calls, [
      ['a', 1100],
      ['b', 1100],
    ])
  })

  test('a NaN or negative budget is due at once; a throwing callback does not stop the others', () => {
    const host = fakeHost()
    const q = new DeadlineQueue(host)
    const calls = []
    q.add(Number.NaN, () => {
      calls.push('nan')
      throw new Error('boom')
    })
    q.add(-5, () => calls.push('negative'))
    assert.throws(() => host.advance(1001), /boom/)
    assert.deepEqual(calls.sort(), ['nan', 'negative'])
    assert.equal(q.pending, 0)
  })
})

describe("deadline queue on Node's timers", () => {
  const run = (body) =>
    spawnSync(
      process.execPath,
      [
        '-e',
        `const { deadlines } = require('./dist/deadlines.js'); const t0 = performance.now(); ${body}`,
      ],
      { cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 20_000 },
    )

  test('a settled deadline does not keep the process alive', () => {
    const t0 = Date.now()
    const r = run(
      `const d = deadlines.add(10_000, () => console.log('fired')); deadlines.settle(d)`,
    )
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, '')
    assert.ok(Date.now() - t0 < 5000, `exited after ${Date.now() - t0} ms`)
  })

  test('a pending one does, until it fires, and no earlier than its budget', () => {
    const r = run(
      `deadlines.add(300, () => console.log('fired after', performance.now() - t0)); const d = deadlines.add(100, () => console.log('never')); deadlines.settle(d)`,
    )
    assert.equal(r.status, 0, r.stderr)
    const m = /^fired after ([\d.]+)\n$/.exec(r.stdout)
    assert.ok(m, r.stdout)
    assert.ok(Number(m[1]) >= 300, `fired after ${m[1]} ms`)
  })

  test('never early by performance.now(), where a plain setTimeout can be by up to 1 ms', () => {
    // 100 deadlines of 10 ms one after another; Node's own setTimeout(10) was seen firing after
    // 9.2 ms by the same clock.
    const r = run(
      `let n = 0, least = Infinity; const next = () => { const s = performance.now(); deadlines.add(10, () => { least = Math.min(least, performance.now() - s); if (++n < 100) next(); else console.log(least) }) }; next()`,
    )
    assert.equal(r.status, 0, r.stderr)
    assert.ok(Number(r.stdout) >= 10, `the earliest came after ${r.stdout.trim()} ms`)
  })
})
