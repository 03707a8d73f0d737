// The tag synchronisation both runtimes share (src/tag-sync.ts), as the worker bundle compiled
// it (no Node API), over the real engine with a fake script runner, a fake clock and a fake
// timer: no Redis, nothing waited on but promises.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

import { LOAD_STEPS, TagSync } from '../worker/tag-sync.js'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')
// `tagFreshness` is in the tools module (the CLI's exports too): docs/decisions/0028-wasm-size-budget.md, eighth pass.
const tools = require('../wasm/tools/node/fleetcache_wasm.js')

const T0 = 1_800_000_000_000

/** Netstring encoding, the tag refresh script's reply format. */
const netstrings = (items) =>
  new TextEncoder().encode(items.map((s) => `${String(s.length)}:${s},`).join(''))
/** A full refresh reply holding the whole (empty) state: the mirror is in sync after it. */
const SYNCED = netstrings(['e1', '1', 'v1', '1', '0', '', '0'])
/** A full refresh reply whose state continues on another page. */
const MORE = netstrings(['e1', '1', 'v1', '1', '0', '', '7'])

const replyError = (message) => Object.assign(new Error(message), { code: 'ERR_REDIS_REPLY' })
const NOPERM = 'NOPERM User fc has no permissions to run the evalsha command'

function fakeClock() {
  const clock = { t: T0, now: () => clock.t }
  return clock
}

/** A timer that fires only when the test says so. */
function fakeTimer() {
  const timer = {
    pending: [],
    set(fn, ms) {
      const h = { fn, ms }
      timer.pending.push(h)
      return h
    },
    clear(h) {
      timer.pending = timer.pending.filter((p) => p !== h)
    },
    fire() {
      const due = timer.pending
      timer.pending = []
      for (const h of due) h.fn()
    },
  }
  return timer
}

function fakeLog() {
  const lines = []
  const at = (level) => (m) => lines.push(`${level} ${m}`)
  return {
    lines,
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    debug: at('debug'),
    debugEnabled: true,
  }
}

/**
 * A script runner that answers from `answer(argv, kind, force)` (a reply, or an Error to reject
 * with); `force`: the last attempt at close, which the breaker does not refuse.
 */
function fakeScript(answer) {
  const calls = []
  const script = async (argv, kind, force) => {
    calls.push({ argv, kind, force })
    const r = await answer(argv, kind, force)
    if (r instanceof Error) throw r
    return r
  }
  script.calls = calls
  return script
}

const mentions = (argv, word) => argv.some((a) => typeof a === 'string' && a.includes(word))
const updates = (script) => script.calls.filter((c) => c.kind === 'write')

function setup(
  answer,
  { timer, config = {}, request, push, wall, module = wasm, closeWaitMs } = {},
) {
  const engine = new module.Engine({ deployment: 'd1', ...config })
  const clock = fakeClock()
  const log = fakeLog()
  const script = fakeScript(answer)
  const sync = new TagSync(engine, {
    enums: module,
    script,
    now: clock.now,
    log,
    timer,
    request,
    push,
    wall: wall?.(clock),
    closeWaitMs,
  })
  return { engine, clock, log, script, sync }
}

/** An announcement channel the test drives: `events` once subscribed. */
function fakeChannel() {
  const ch = {
    events: undefined,
    channel: undefined,
    closed: false,
    subscribe(channel, events) {
      ch.channel = channel
      ch.events = events
      return async () => {
        ch.closed = true
      }
    },
  }
  return ch
}

/** The update script's announcement of version `ver` of epoch e1, expiring `tag` at `t`. */
const announcement = (ver, tag, t) =>
  netstrings([
    'a',
    'e1',
    String(ver),
    `v${String(ver)}`,
    // The id of the version it follows, as the pulls here name versions.
    `v${String(ver - 1)}`,
    tag,
    `${String(t)},${String(t)},0,0,${String(t)}`,
  ])

/** The identified request a call belongs to, as the test sets it (Next's work store in Node). */
function fakeRequests() {
  const r = { current: undefined, get: () => r.current }
  return r
}

/** A promise's state without waiting for it. */
async function isSettled(p) {
  let done = false
  void p.then(() => (done = true))
  await settle()
  return done
}

/** Lets every settled promise's callbacks run (the fakes answer at once). */
const settle = () => new Promise((resolve) => setImmediate(resolve))

/** Ms from `now` until the engine's one timer is due (`pollTimeout`); undefined: none. */
function wakeIn(engine, now) {
  const at = engine.pollTimeout(now)
  return at < 0 ? undefined : at - now
}

/**
 * Following by push (1 s pull interval), caught up after its first pull; `fail` makes every
 * later read of the tag state time out. `reads()` counts those reads.
 */
/**
 * Following by push (1 s bound), its channel not up yet. `answer(f)` gives a pull's reply once
 * the state is loaded (before, the load's); `f.reads()` counts the pulls sent.
 */
async function pushFollower(f, answer) {
  Object.assign(f, { ch: fakeChannel(), timer: fakeTimer() })
  const { engine, clock, log, script, sync } = setup(
    (_, kind) => (kind !== 'read' ? null : engine.tagsSynced ? answer(f) : SYNCED),
    { timer: f.timer, push: { subscribe: f.ch.subscribe, maxPullIntervalMs: 1000 } },
  )
  Object.assign(f, { engine, clock, log, sync })
  f.reads = () => script.calls.filter((c) => c.kind === 'read').length
  return f
}

/** `pushFollower` once its channel is up and the state loaded. */
async function upAndCaughtUp(f) {
  f.ch.events.up()
  for (let i = 0; i < 4; i++) await settle()
  assert.equal(f.engine.tagsCaughtUp(f.clock.t), true)
  return f
}

/** Following by push, caught up; its pulls fail while `f.fail` (or wait while `f.hold`). */
async function caughtUpFailingPulls() {
  const f = await pushFollower({ fail: false }, (f) => {
    if (f.hold !== undefined) return new Promise((_r, reject) => f.hold(reject))
    if (f.fail) return new Error('command timed out')
    return netstrings(['e1', '2', 'v2', '0', '0', ''])
  })
  return upAndCaughtUp(f)
}

// caughtUpFailingPulls, with its periodic pull (at 800 ms) failed: Redis still failing, the
// one timer set for the pull time after the backoff (100 ms), and no retry.
async function periodicPullFailed() {
  const f = await caughtUpFailingPulls()
  f.clock.t = T0 + 800
  f.fail = true
  f.timer.fire()
  for (let i = 0; i < 4; i++) await settle()
  assert.deepEqual(
    f.timer.pending.map((h) => h.ms),
    [100],
    'the pull time only',
  )
  return f
}

describe('TagSync, fake transport and clock', () => {
  test('concurrent refreshes are coalesced: a burst costs two round trips', async () => {
    const gates = []
    const { engine, script, sync } = setup(
      (_, kind) => (kind === 'read' ? new Promise((r) => gates.push(() => r(SYNCED))) : null),
      { timer: fakeTimer() },
    )
    const first = sync.refresh()
    const rest = [sync.refresh(), sync.refresh(), sync.refresh()]
    assert.equal(script.calls.length, 1)
    gates.shift()()
    await first
    await settle()
    assert.equal(script.calls.length, 2, 'the waiters share one refresh that started after them')
    gates.shift()()
    await Promise.all(rest)
    assert.equal(script.calls.length, 2)
    assert.equal(engine.tagsSynced, true)
  })

  test('the calls of one identified request share one refresh: one round trip per request', async () => {
    const req = fakeRequests()
    const { script, sync } = setup((_, kind) => (kind === 'read' ? SYNCED : null), {
      timer: fakeTimer(),
      request: req.get,
    })
    req.current = {}
    // refreshTags, then the singular handler's get, then a second cache kind's refreshTags.
    await sync.refresh()
    await Promise.all([sync.refresh(), sync.refresh()])
    assert.equal(script.calls.length, 1, 'one refresh served the whole request')
    req.current = {}
    await sync.refresh()
    assert.equal(script.calls.length, 2, 'the next request pulls again')
    req.current = undefined
    await sync.refresh()
    await sync.refresh()
    assert.equal(script.calls.length, 4, 'where no request can be identified, every call pulls')
  })

  test('a refresh that started before the request began never serves it', async () => {
    // Redis's state as each reply reports it: the revalidation of `t` resolves while the first
    // refresh (another request's) is in flight, so only a refresh started later may carry it.
    const gates = []
    const req = fakeRequests()
    const { script, sync, engine } = setup(
      (_, kind) => (kind === 'read' ? new Promise((r) => gates.push(r)) : null),
      { timer: fakeTimer(), request: req.get },
    )
    req.current = { name: 'earlier request' }
    const earlier = sync.refresh()
    assert.equal(script.calls.length, 1)
    // The request begins now, after that refresh started.
    req.current = { name: 'this request' }
    const first = sync.refresh()
    const second = sync.refresh()
    gates.shift()(SYNCED)
    await earlier
    assert.equal(await isSettled(first), false, 'the earlier refresh did not serve this request')
    assert.equal(await isSettled(second), false, 'nor its later calls')
    assert.equal(script.calls.length, 2, 'one refresh started after the request began')
    const t = T0 + 10
    gates.shift()(
      netstrings([
        'e1',
        '2',
        'v2',
        '0',
        '0',
        '',
        't',
        `${String(t)},${String(t)},0,0,${String(t)}`,
      ]),
    )
    await Promise.all([first, second])
    assert.equal(script.calls.length, 2)
    assert.equal(
      engine.getExpiration('t', T0 + 20),
      t,
      'this request sees the revalidation that resolved before it began',
    )
  })

  test('a request recorded as begun is served by any pull that starts afterwards: one per request', async () => {
    const req = fakeRequests()
    const { script, sync } = setup((_, kind) => (kind === 'read' ? SYNCED : null), {
      timer: fakeTimer(),
      request: req.get,
    })
    const request = {}
    sync.requestBegan(request)
    // The page read before the render: no request can be told there, so it pulls.
    await sync.refresh()
    assert.equal(script.calls.length, 1)
    // The render: that pull started after the request began.
    req.current = request
    await sync.refresh()
    await Promise.all([sync.refresh(), sync.refresh()])
    assert.equal(script.calls.length, 1, 'one pull for the whole request')
    sync.requestBegan(request)
    await sync.refresh()
    assert.equal(script.calls.length, 1, 'recording it again keeps when it began')
    // The next request began after that pull: it pulls.
    const next = {}
    sync.requestBegan(next)
    req.current = next
    await sync.refresh()
    await sync.refresh()
    assert.equal(script.calls.length, 2, 'a pull of an earlier request does not serve a later one')
  })

  test('a pull in flight when a request began never serves it, nor a pull queued before', async () => {
    const gates = []
    const req = fakeRequests()
    const { script, sync, engine } = setup(
      (_, kind) => (kind === 'read' ? new Promise((r) => gates.push(r)) : null),
      { timer: fakeTimer(), request: req.get },
    )
    // Another request's pull is in flight.
    const earlier = sync.refresh()
    assert.equal(script.calls.length, 1)
    const request = {}
    sync.requestBegan(request)
    req.current = request
    const first = sync.refresh()
    gates.shift()(SYNCED)
    await earlier
    assert.equal(await isSettled(first), false, 'the pull that started before it did not serve it')
    assert.equal(script.calls.length, 2, 'one pull started after the request began')
    const t = T0 + 10
    gates.shift()(
      netstrings([
        'e1',
        '2',
        'v2',
        '0',
        '0',
        '',
        't',
        `${String(t)},${String(t)},0,0,${String(t)}`,
      ]),
    )
    await first
    await sync.refresh()
    assert.equal(script.calls.length, 2, 'and serves the rest of the request')
    assert.equal(engine.getExpiration('t', T0 + 20), t, 'the request sees what that pull brought')
  })

  test('a failed refresh does not serve the rest of its request', async () => {
    let fail = true
    const req = fakeRequests()
    const { script, sync } = setup(
      (_, kind) => (kind === 'read' ? (fail ? new Error('lost') : SYNCED) : null),
      { timer: fakeTimer(), request: req.get },
    )
    req.current = {}
    await sync.refresh()
    fail = false
    await sync.refresh()
    await sync.refresh()
    assert.equal(script.calls.length, 2, 'the second call pulled again, the third shared it')
  })

  test("the retry's probe is never served by the request that set the timer", async () => {
    // Timers run in the async context of whoever set them: in Node that is a request's.
    const timer = fakeTimer()
    const req = fakeRequests()
    let sendFails = true
    let readFails = false
    const { clock, script, sync } = setup(
      (_, kind) =>
        kind === 'read'
          ? readFails
            ? new Error('lost')
            : SYNCED
          : sendFails
            ? new Error('lost')
            : SYNCED,
      { timer, request: req.get },
    )
    const request = {}
    req.current = request
    await sync.refresh()
    await sync.update(['t'], undefined, T0)
    assert.equal(timer.pending.length, 1, 'the failed send armed the retry')
    // A pull outside the request fails: the retry has a pull to do as well as the send.
    req.current = undefined
    readFails = true
    await sync.refresh()
    assert.equal(timer.pending.length, 1, 'one timer')
    req.current = request
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    const before = reads()
    sendFails = false
    readFails = false
    // The retry's time (the engine's): a timer that fires before it does nothing.
    clock.t += timer.pending[0].ms
    timer.fire()
    await settle()
    await settle()
    assert.equal(reads(), before + 1, 'the probe pulled')
  })

  test('following by push, a caught-up request makes no round trip; a gap, a drop and the bound pull', async () => {
    const ch = fakeChannel()
    const timer = fakeTimer()
    let version = 1
    const { engine, clock, script, sync } = setup(
      (_, kind) =>
        kind === 'read'
          ? version === 1 && engine.tagsSynced
            ? netstrings(['e1', '1', 'v1', '0', '0', ''])
            : version === 1
              ? SYNCED
              : netstrings(['e1', String(version), `v${String(version)}`, '0', '0', ''])
          : null,
      { timer, push: { subscribe: ch.subscribe, maxPullIntervalMs: 1000 } },
    )
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    assert.match(ch.channel, /:announce$/)
    await sync.refresh()
    assert.equal(reads(), 1, 'not subscribed yet: the request pulls')
    ch.events.up()
    await settle()
    assert.equal(reads(), 2, 'the confirmation starts a pull')
    await sync.refresh()
    await sync.refresh()
    assert.equal(reads(), 2, 'caught up: no round trip')
    // The next version, announced: applied at once, no request waits for a pull; one pull
    // follows in the background, so what is regenerated from then on is judged with a pull
    // started after it (docs/failures.md, "Regenerations"), and no other until the next.
    version = 2
    ch.events.message(announcement(2, 't', T0 - 5))
    assert.equal(engine.getExpiration('t', clock.t), T0 - 5)
    await sync.refresh()
    await settle()
    assert.equal(reads(), 3, 'one pull after the announcement')
    await sync.refresh()
    await settle()
    assert.equal(reads(), 3)
    // Version 4 without 3: a gap, pulled at once, and requests pull until a pull after it.
    ch.events.message(announcement(4, 'u', T0 - 4))
    version = 4
    await settle()
    assert.equal(reads(), 4)
    await sync.refresh()
    assert.equal(reads(), 4, 'the pull after the gap caught up')
    // This process's own revalidation: one pull follows too, just after the time it is
    // recorded at (PushFollow::learned).
    await sync.update(['w'], undefined, clock.t)
    await settle()
    assert.equal(reads(), 4)
    const own = wakeIn(engine, clock.t)
    assert.ok(own !== undefined && own > 0 && own <= 1, String(own))
    clock.t += 1.5
    timer.fire()
    await settle()
    assert.equal(reads(), 5, 'one pull after its own revalidation')
    // The channel goes down: every request pulls.
    ch.events.down()
    await sync.refresh()
    assert.equal(reads(), 6)
    ch.events.up()
    await settle()
    const after = reads()
    await sync.refresh()
    assert.equal(reads(), after, 'caught up again')
    // The bound: past it without a pull, a request pulls.
    clock.t += 1000
    await sync.refresh()
    assert.equal(reads(), after + 1)
    await sync.stop()
    assert.equal(ch.closed, true)
  })

  test('following by push, a storm of announcements costs one pull in flight and one after, and no request waits', async () => {
    // Each announcement applied makes the next pull due at once (PushFollow::learned): a
    // fleet that revalidates many times a round trip must not have every process pull per
    // announcement, nor requests wait for those pulls.
    const ch = fakeChannel()
    const timer = fakeTimer()
    let version = 1
    let held = []
    const { engine, clock, script, sync } = setup(
      (_, kind) => {
        if (kind !== 'read') return null
        const reply = () =>
          version === 1 && !engine.tagsSynced
            ? SYNCED
            : netstrings(['e1', String(version), `v${String(version)}`, '0', '0', ''])
        if (!engine.tagsCaughtUp(clock.t) || held === undefined) return reply()
        return new Promise((resolve) => held.push(() => resolve(reply())))
      },
      { timer, push: { subscribe: ch.subscribe, maxPullIntervalMs: 1000 } },
    )
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    ch.events.up()
    await settle()
    await settle()
    assert.equal(engine.tagsCaughtUp(clock.t), true)
    const before = reads()
    for (let v = 2; v <= 101; v++) {
      version = v
      ch.events.message(announcement(v, `t${String(v)}`, clock.t - 1))
      clock.t += 1
      // A request meanwhile makes no round trip and waits for none.
      assert.equal(engine.tagsCaughtUp(clock.t), true, `caught up at announcement ${String(v)}`)
      assert.equal(await isSettled(sync.refresh()), true)
    }
    assert.equal(reads(), before + 1, 'one pull in flight, one queued behind it')
    // Released: the queued one runs, and nothing after it.
    const release = () => {
      const h = held
      held = []
      for (const f of h) f()
    }
    release()
    await settle()
    await settle()
    assert.equal(reads(), before + 2)
    release()
    await settle()
    await settle()
    assert.equal(reads(), before + 2, 'nothing learned since the second pull was planned')
    assert.equal(engine.tagsCaughtUp(clock.t), true)
    held = undefined
    await sync.stop()
  })

  test('following by push, an own revalidation is followed by a pull planned past the ms it is recorded at', async () => {
    // Recorded at its ms rounded up: a pull planned in that ms vouches for nothing
    // regenerated against it (PushFollow::learned), and one that was (a request's, or one in
    // flight) leaves the next due.
    const ch = fakeChannel()
    const timer = fakeTimer()
    let hold
    const { engine, clock, script, sync } = setup(
      async (_, kind) => {
        if (kind !== 'read') return null
        const reply = engine.tagsSynced ? netstrings(['e1', '1', 'v1', '0', '0', '']) : SYNCED
        if (hold !== undefined) await hold
        return reply
      },
      { timer, push: { subscribe: ch.subscribe, maxPullIntervalMs: 1000 } },
    )
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    ch.events.up()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(engine.tagsCaughtUp(clock.t), true)
    // The periodic pull in flight, planned at 800.1; the revalidation at 800.3 (recorded at
    // 801).
    let release
    hold = new Promise((resolve) => (release = resolve))
    assert.deepEqual(
      timer.pending.map((h) => h.ms),
      [800],
    )
    clock.t = T0 + 800.1
    timer.fire()
    await settle()
    const before = reads()
    assert.equal(wakeIn(engine, clock.t), undefined, 'the pull is out')
    clock.t = T0 + 800.3
    await sync.update(['w'], undefined, clock.t)
    hold = undefined
    clock.t = T0 + 800.5
    release()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before, 'not again in the same ms')
    // Set when the reply was applied, for when the engine says the pull is due: past 801.
    const soon = timer.pending.map((h) => clock.t + h.ms - T0)
    assert.ok(
      soon.length === 1 && soon[0] > 801 && soon[0] < 801.01,
      `one timer, past 801: ${soon.join(', ')}`,
    )
    clock.t = T0 + 802
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 1)
    assert.ok(wakeIn(engine, clock.t) > 700, 'the periodic pull next')
    assert.ok(timer.pending.every((h) => h.ms > 500))
    // Not put off by what learns nothing (an announcement already known, as every page
    // write's is): the periodic pull stays where it was, before the bound.
    const periodic = timer.pending[0]
    clock.t = T0 + 1300
    ch.events.message(announcement(1, 'old', T0 - 100))
    assert.deepEqual(timer.pending, [periodic])
    clock.t = T0 + 1320.3
    await sync.update(['w'], undefined, clock.t)
    await settle()
    assert.equal(reads(), before + 1, 'not in the same ms')
    const due = timer.pending.map((h) => h.ms)
    assert.ok(
      due.length === 1 && due[0] > 0.7 && due[0] < 0.71,
      `one timer, due past 1321: ${due.join(', ')}`,
    )
    clock.t = T0 + 1322
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 2)
    await sync.stop()
  })

  test('following by push, a failed pull on a revalidation learned is retried after its backoff, not a second later', async () => {
    // The pull an announcement makes due fails: what it was to answer stays due (the
    // engine's PushFollow::pull_failed), and the timer comes after the backoff from
    // that pull's start (100 ms, then 200 ms), not at the 1 s it waits when nothing is learned.
    const f = await caughtUpFailingPulls()
    const { ch, timer, engine, clock, sync, reads } = f
    const before = reads()
    const retries = () => timer.pending.map((h) => h.ms).filter((ms) => ms < 700)
    assert.deepEqual(retries(), [], 'only the periodic pull pending')
    clock.t = T0 + 100
    f.fail = true
    ch.events.message(announcement(2, 'x', T0 + 90))
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 1, 'the pull it makes due, at once')
    assert.deepEqual(retries(), [100], 'retried 100 ms after the pull failed')
    assert.equal(wakeIn(engine, clock.t), 100, 'not due at once: no loop on a failing Redis')
    // The retry fails too: twice the wait.
    clock.t = T0 + 200
    timer.pending = timer.pending.filter((h) => h.ms === 100)
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 2)
    assert.deepEqual(retries(), [200])
    // Redis answers: the pull is applied and the periodic one is next.
    clock.t = T0 + 400
    f.fail = false
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 3)
    assert.ok(wakeIn(engine, clock.t) > 700, String(wakeIn(engine, clock.t)))
    await sync.stop()
  })

  test('following by push, a pull time and a retry that come in the same ms after a backoff cost one wake and one pull', async () => {
    // A failed pull gives back its revalidation: its pull time comes after the backoff. The
    // retry, armed by another failure (a revalidation's send), waits for the same backoff
    // (the engine's retry_in_ms). One timer for both (the engine's pollTimeout: the retry's on
    // a tie, which pulls); its wake, and a late duplicate of it, must not pull twice.
    const f = await caughtUpFailingPulls()
    const { ch, timer, engine, clock, sync, reads } = f
    clock.t = T0 + 100
    f.fail = true
    ch.events.message(announcement(2, 'x', T0 + 90))
    for (let i = 0; i < 4; i++) await settle()
    assert.deepEqual(
      timer.pending.map((h) => h.ms),
      [100],
      'the pull time, 100 ms after the failure',
    )
    const [pull] = timer.pending
    sync.watch()
    assert.equal(engine.pollTimeout(clock.t), T0 + 200, 'the retry, for the same ms')
    assert.deepEqual(timer.pending, [pull], 'one timer for both')
    // A known announcement meanwhile sets nothing again.
    clock.t = T0 + 150
    ch.events.message(announcement(2, 'x', T0 + 90))
    assert.deepEqual(timer.pending, [pull])
    clock.t = T0 + 200
    f.fail = false
    const before = reads()
    timer.pending = []
    pull.fn()
    pull.fn()
    for (let i = 0; i < 8; i++) await settle()
    assert.equal(reads(), before + 1, 'one pull')
    assert.ok(wakeIn(engine, clock.t) > 700, String(wakeIn(engine, clock.t)))
    await sync.stop()
  })

  // A pull that times out has taken the whole read budget: counted from its start, the
  // backoff would be over when it fails, and the next announcement would pull at once.
  test('following by push, a pull that fails late is retried after the backoff from its failure', async () => {
    const f = await caughtUpFailingPulls()
    const { ch, timer, engine, clock, sync, reads } = f
    const gate = []
    // Pulls stay out until the test fails them.
    f.hold = (reject) => gate.push(reject)
    const before = reads()
    clock.t = T0 + 100
    ch.events.message(announcement(2, 'x', T0 + 90))
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 1, 'the pull it makes due, at once')
    assert.equal(gate.length, 1, 'the pull is out')
    // It times out 300 ms after it began.
    clock.t = T0 + 400
    gate[0](Object.assign(new Error('timed out'), { code: 'ERR_REDIS_TIMEOUT' }))
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(wakeIn(engine, clock.t), 100, '100 ms after the failure, not at once')
    assert.deepEqual(
      timer.pending.map((h) => h.ms).filter((ms) => ms < 700),
      [100],
      'the timer comes then',
    )
    // Redis answers again: the pull stop() makes is not held.
    f.hold = undefined
    await sync.stop()
  })

  test('following by push, a failed periodic pull is retried at the pull time after its backoff, and by the retry past the bound', async () => {
    // The backoff after a failure holds back every pull time, periodic
    // or learned (no loop on a failing Redis); one that would come at or past the bound is the
    // retry's (the mirror is not caught up then, and requests pull).
    const f = await caughtUpFailingPulls()
    const { ch, timer, engine, clock, sync, reads } = f
    const before = reads()
    assert.deepEqual(
      timer.pending.map((h) => h.ms),
      [800],
    )
    clock.t = T0 + 800
    f.fail = true
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 1, 'the periodic pull, failed')
    assert.deepEqual(
      timer.pending.map((h) => h.ms),
      [100],
      'the pull time, after the backoff; no retry',
    )
    // A revalidation learned meanwhile waits for the same backoff.
    clock.t = T0 + 850
    ch.events.message(announcement(2, 'x', T0 + 840))
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 1, 'not at once')
    assert.equal(wakeIn(engine, clock.t), 50)
    clock.t = T0 + 900
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 2, 'the retry, failed')
    // 200 ms from 900 is past the bound at 1000: the retry's, not a pull time.
    const retry = wakeIn(engine, clock.t)
    assert.ok(retry >= 200, String(retry))
    assert.deepEqual(
      timer.pending.map((h) => h.ms),
      [retry],
    )
    assert.equal(engine.handleTimeout(clock.t + retry), wasm.Wake.Retry)
    await sync.stop()
  })

  test('following by push, a failed pull left to the pull time is retried by the retry once the mirror is no longer caught up', async () => {
    // The failed pull is left to the pull time, no retry armed. The channel goes down before
    // the timer fires (as it does when Redis goes away): the engine then has no pull time, and
    // nothing else would probe Redis until a request came or the channel was up again.
    const f = await periodicPullFailed()
    const { ch, timer, clock, sync, reads } = f
    ch.events.down()
    clock.t = T0 + 900
    const before = reads()
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before, 'the timer pulls nothing once not caught up')
    assert.equal(timer.pending.length, 1, 'the timer is set for the retry')
    f.fail = false
    clock.t = T0 + 900 + timer.pending[0].ms
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 1, "the retry's probe")
    await sync.stop()
  })

  test('following by push, a failed pull left to the pull time is retried by the retry when the timer fires late past the bound', async () => {
    // A loaded event loop: the timer for 900 ms runs at the bound. Not caught up, the engine
    // has no pull time; the failed pull's retry goes to the retry.
    const f = await periodicPullFailed()
    const { timer, engine, clock, sync, reads } = f
    clock.t = T0 + 1000
    assert.equal(engine.tagsCaughtUp(clock.t), false)
    const before = reads()
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before)
    assert.equal(timer.pending.length, 1, 'the timer is set for the retry')
    await sync.stop()
  })

  test('following by push, a message of a kind this build does not know takes the channel down', async () => {
    // A later release may announce something new: an older process must not go on as if
    // caught up (decision 0031), only slower until its subscription is confirmed again.
    const ch = fakeChannel()
    const timer = fakeTimer()
    const { engine, clock, log, script, sync } = setup(
      (_, kind) =>
        kind === 'read'
          ? engine.tagsSynced
            ? netstrings(['e1', '1', 'v1', '0', '0', ''])
            : SYNCED
          : null,
      { timer, push: { subscribe: ch.subscribe, maxPullIntervalMs: 1000 } },
    )
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    ch.events.up()
    await settle()
    assert.equal(engine.tagsCaughtUp(clock.t), true)
    ch.events.message(netstrings(['q', 'e1', '2', 'v2', 'whatever']))
    assert.equal(engine.tagsCaughtUp(clock.t), false, 'not caught up after an unknown kind')
    assert.ok(log.lines.some((l) => l.startsWith('error unexpected tag announcement')))
    const before = reads()
    await sync.refresh()
    await sync.refresh()
    assert.equal(reads(), before + 2, 'the channel is down: every request pulls')
    await sync.stop()
  })

  /** A follower by push, caught up, with its periodic pull scheduled on a fake timer. */
  async function caughtUpFollower() {
    const ch = fakeChannel()
    const timer = fakeTimer()
    const parts = setup(
      (_, kind) =>
        kind === 'read'
          ? parts.engine.tagsSynced
            ? netstrings(['e1', '1', 'v1', '0', '0', ''])
            : SYNCED
          : null,
      { timer, push: { subscribe: ch.subscribe, maxPullIntervalMs: 1000 } },
    )
    ch.events.up()
    await settle()
    const periodic = timer.pending.find((h) => h.ms > 0 && h.ms < 1000)
    assert.ok(periodic, 'a pull is scheduled within the bound')
    return { ch, timer, periodic, ...parts }
  }

  /**
   * Following by push (1 s bound), caught up; the pulls answer version `f.version` of e1, each
   * once `f.gate` (a promise, when the test sets one) has resolved.
   */
  async function timedFollower() {
    const reply = (f) =>
      netstrings(['e1', String(f.version), `v${String(f.version)}`, '0', '0', ''])
    const f = await pushFollower({ version: 1, gate: undefined }, (f) =>
      f.gate !== undefined ? f.gate.then(() => reply(f)) : reply(f),
    )
    // Each handle records when it is due on the process's clock.
    const set = f.timer.set
    f.timer.set = (fn, ms) => Object.assign(set(fn, ms), { due: f.clock.t + ms })
    return upAndCaughtUp(f)
  }

  test('following by push, an own revalidation sets the one timer for its pull while its send is still out', async () => {
    // The pull it makes due (just after the ms it is recorded at) must not wait for the send,
    // which may take the whole write budget: the host asks for the timer as it records it.
    const ch = fakeChannel()
    const timer = fakeTimer()
    // Sends never answer.
    const f = setup(
      (_, kind) =>
        kind !== 'read'
          ? new Promise(() => {})
          : f.engine.tagsSynced
            ? netstrings(['e1', '1', 'v1', '0', '0', ''])
            : SYNCED,
      { timer, push: { subscribe: ch.subscribe, maxPullIntervalMs: 1000 } },
    )
    Object.assign(f, { ch, timer })
    await upAndCaughtUp(f)
    const periodic = f.timer.pending.map((h) => h.ms)
    assert.ok(periodic.length === 1 && periodic[0] > 700, periodic.join(', '))
    f.clock.t = T0 + 100.3
    void f.sync.update(['w'], undefined, f.clock.t)
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(f.engine.outboxLength, 1, 'the send is out')
    const next = f.timer.pending.map((h) => h.ms)
    assert.ok(
      next.length === 1 && next[0] > 0 && next[0] <= 1,
      `one timer, for the pull after the revalidation: ${next.join(', ')}`,
    )
  })

  test('following by push, a timer that fires before an own revalidation is answerable pulls nothing', async () => {
    // Node runs a timer when the event loop's cached clock says so, and that clock lags
    // `performance.now()` by the length of the turn that set it: a timer of a ms or two can
    // run in the very ms it was set. A pull planned then vouches for nothing against the
    // revalidation (PushFollow::learned) and the next stays due: on a loaded machine, one or
    // two pulls in a row went for nothing after each revalidation of this process's own.
    const f = await timedFollower()
    f.clock.t = T0 + 10.3
    await f.sync.update(['w'], undefined, f.clock.t)
    for (let i = 0; i < 4; i++) await settle()
    const before = f.reads()
    f.timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(f.reads(), before, 'no pull in the ms the revalidation is recorded at')
    const due = f.timer.pending.map((h) => h.due - T0)
    assert.ok(
      due.length === 1 && due[0] > 11 && due[0] <= 12,
      `one timer, past 11: ${due.join(', ')}`,
    )
    f.clock.t = T0 + due[0]
    f.timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(f.reads(), before + 1, 'one pull once it can answer the revalidation')
    assert.ok(wakeIn(f.engine, f.clock.t) > 700, 'it did')
    await f.sync.stop()
  })

  test('following by push, the timer set for the periodic pull pulls nothing when it fires after another pull moved the bound', async () => {
    const f = await timedFollower()
    const periodic = f.timer.pending.map((h) => h.due - T0)
    assert.ok(periodic.length === 1 && periodic[0] > 700, periodic.join(', '))
    // The next version, announced at 500: pulled at once, which moves the bound to 1500.
    f.clock.t = T0 + 500
    f.version = 2
    f.ch.events.message(announcement(2, 'a2', T0 + 400))
    for (let i = 0; i < 4; i++) await settle()
    const before = f.reads()
    assert.ok(wakeIn(f.engine, f.clock.t) > 700, 'the announcement was pulled after')
    // The timer set after the first pull comes; a pull now would be 500 ms early.
    f.clock.t = T0 + periodic[0]
    f.timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(f.reads(), before, 'no pull: the bound moved')
    const next = f.timer.pending.map((h) => h.due - T0)
    assert.ok(
      next.length === 1 && next[0] > 1200 && next[0] < 1500,
      `one timer, before the bound at 1500: ${next.join(', ')}`,
    )
    f.clock.t = T0 + next[0]
    f.timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(f.reads(), before + 1, 'the periodic pull, before the bound')
    await f.sync.stop()
  })

  /** One timer pending, due in the 400 ms before `bound` (ms after T0). */
  function oneTimerBeforeTheBound(f, bound) {
    const next = f.timer.pending.map((h) => h.due - T0)
    assert.ok(
      next.length === 1 && next[0] > bound - 400 && next[0] < bound,
      `one timer, before the bound at ${String(bound)}: ${next.join(', ')}`,
    )
  }

  /**
   * A timed follower whose periodic pull is out (its reply held until `release()`): no timer
   * pending meanwhile, even after a known announcement (which learns nothing). `periodic`: the
   * timer that started it, whose wake may come again (a late or duplicate timer).
   */
  async function periodicPullOut() {
    const f = await timedFollower()
    let release
    f.gate = new Promise((resolve) => (release = resolve))
    const [periodic] = f.timer.pending
    assert.ok(periodic !== undefined && periodic.due - T0 > 700, String(periodic?.due))
    f.clock.t = periodic.due
    f.timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(f.timer.pending.length, 0, 'the periodic pull is out')
    // Version 1 again: known, learns nothing.
    f.clock.t += 1
    f.ch.events.message(announcement(1, 'a1', T0 - 100))
    assert.equal(f.timer.pending.length, 0, 'no timer while the pull is out')
    return { f, release, periodic }
  }

  test('following by push, the timer set once a pull moved the bound is for the moved bound', async () => {
    // A timer set from the bound a pull in flight is about to move fired for nothing: none is
    // set while it is out, and its reply sets the one for the bound it moved.
    const { f, release, periodic } = await periodicPullOut()
    f.clock.t += 4
    release()
    for (let i = 0; i < 4; i++) await settle()
    const before = f.reads()
    assert.ok(wakeIn(f.engine, f.clock.t) > 700, 'the pull moved the bound')
    oneTimerBeforeTheBound(f, periodic.due - T0 + 1000)
    // A late wake of the timer that started it pulls nothing either.
    f.clock.t = T0 + 960
    periodic.fn()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(f.reads(), before, 'no pull: the bound moved')
    oneTimerBeforeTheBound(f, periodic.due - T0 + 1000)
    await f.sync.stop()
  })

  test('following by push, a wake while a pull is in flight does not queue a pull behind it', async () => {
    // Redis slow enough that a wake (a late or duplicate timer) comes while the pull is still
    // out: a pull queued behind it would start as soon as the reply moved the bound.
    const { f, release, periodic } = await periodicPullOut()
    const before = f.reads()
    f.clock.t = T0 + 960
    periodic.fn()
    release()
    for (let i = 0; i < 8; i++) await settle()
    assert.equal(f.reads(), before, 'no pull behind the one in flight')
    assert.ok(wakeIn(f.engine, f.clock.t) > 600, 'the pull in flight moved the bound')
    oneTimerBeforeTheBound(f, periodic.due - T0 + 1000)
    await f.sync.stop()
  })

  test('following by push, the periodic pull runs on the timer, not on a request', async () => {
    const { timer, script, sync, periodic, clock } = await caughtUpFollower()
    clock.t += periodic.ms
    const before = script.calls.length
    timer.pending = timer.pending.filter((h) => h !== periodic)
    periodic.fn()
    await settle()
    assert.equal(script.calls.length, before + 1)
    await sync.stop()
  })

  // After a wasm trap every call into the engine throws (docs/failures.md, "A trap in the
  // engine"). The timers and the channel's events run outside any caller: a throw or a rejection
  // there would end the process (fixed in 2c50eda).
  test('an engine that throws ends no timer or channel event in a throw or an unhandled rejection', async () => {
    const { ch, timer, engine, sync, log, periodic, clock } = await caughtUpFollower()
    clock.t += periodic.ms
    const trapped = () => {
      throw new Error('recursive use of an object detected')
    }
    for (const name of ['planTagPull', 'applyRefresh', 'tagChannelUp', 'tagChannelDown'])
      engine[name] = trapped
    engine.applyAnnouncement = trapped
    Object.defineProperty(engine, 'outboxLength', { get: trapped })
    const unhandled = []
    const onUnhandled = (err) => unhandled.push(err)
    process.on('unhandledRejection', onUnhandled)
    try {
      timer.pending = timer.pending.filter((h) => h !== periodic)
      periodic.fn()
      ch.events.message(new Uint8Array([1, 2, 3]))
      ch.events.down()
      ch.events.up()
      for (let i = 0; i < 5; i++) await settle()
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
    assert.deepEqual(unhandled, [])
    assert.ok(
      log.lines.some((l) => /^error tag refresh failed in the engine: .*recursive use/.test(l)),
      log.lines.join('\n'),
    )
    assert.ok(log.lines.some((l) => /^error tag announcements: channel down not applied/.test(l)))
    await sync.stop()
  })

  // A trap while a pull is out (a request's, on another path) leaves every engine call
  // throwing, `tagPullFailed` first in the failed pull's catch: the pull's own failure must
  // still be logged, and nothing there may go on to call into the engine (the retry
  // asks it for its delay).
  test('a pull that fails after the engine trapped logs its failure and the trap, and sets no retry', async () => {
    const gate = []
    let failing = false
    const ch = fakeChannel()
    const timer = fakeTimer()
    const parts = setup(
      (_, kind) => {
        if (kind !== 'read') return null
        if (failing) return new Promise((_r, reject) => gate.push(reject))
        return parts.engine.tagsSynced ? netstrings(['e1', '1', 'v1', '0', '0', '']) : SYNCED
      },
      { timer, push: { subscribe: ch.subscribe, maxPullIntervalMs: 1000 } },
    )
    const { engine, sync, log, clock } = parts
    ch.events.up()
    await settle()
    const periodic = timer.pending.find((h) => h.ms > 0 && h.ms < 1000)
    assert.ok(periodic, 'a pull is scheduled within the bound')
    clock.t += periodic.ms
    failing = true
    timer.pending = timer.pending.filter((h) => h !== periodic)
    periodic.fn()
    await settle()
    assert.equal(gate.length, 1, 'the pull is out')
    const trap = () => {
      throw new WebAssembly.RuntimeError('unreachable')
    }
    for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(engine))) {
      if (name === 'constructor') continue
      Object.defineProperty(engine, name, { get: trap })
    }
    const pendingBefore = timer.pending.length
    const unhandled = []
    const onUnhandled = (err) => unhandled.push(err)
    process.on('unhandledRejection', onUnhandled)
    try {
      gate[0](Object.assign(new Error('connection reset'), { code: 'ECONNRESET' }))
      for (let i = 0; i < 5; i++) await settle()
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
    assert.deepEqual(unhandled, [])
    assert.ok(
      log.lines.some((l) =>
        /^error tag refresh failed, using the last known tag state: .*connection reset/.test(l),
      ),
      log.lines.join('\n'),
    )
    assert.ok(
      log.lines.some((l) => /^error tag refresh failed in the engine: .*unreachable/.test(l)),
      log.lines.join('\n'),
    )
    assert.equal(timer.pending.length, pendingBefore, 'no retry for an engine that stays trapped')
    await sync.stop()
  })

  test('an engine that traps as the one timer fires is logged once, and the timer is not set again', async () => {
    const f = await pushFollower({}, () => netstrings(['e1', '1', 'v1', '0', '0', '']))
    await upAndCaughtUp(f)
    const { engine, sync, clock, timer } = f
    assert.equal(timer.pending.length, 1, 'the periodic pull')
    const reads = f.reads()
    for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(engine))) {
      if (name === 'constructor') continue
      Object.defineProperty(engine, name, {
        get: () => {
          throw new WebAssembly.RuntimeError('unreachable')
        },
      })
    }
    const unhandled = []
    const onUnhandled = (err) => unhandled.push(err)
    process.on('unhandledRejection', onUnhandled)
    try {
      clock.t += timer.pending[0].ms
      timer.fire()
      for (let i = 0; i < 5; i++) await settle()
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
    assert.deepEqual(unhandled, [])
    const trapLines = f.log.lines.filter((l) =>
      /^error tag sync timer failed in the engine: .*unreachable/.test(l),
    )
    assert.equal(trapLines.length, 1, f.log.lines.join('\n'))
    assert.equal(timer.pending.length, 0, 'no timer set again, at 0 ms or any other')
    assert.equal(f.reads(), reads, 'nothing sent')
    await assert.rejects(sync.update(['t'], undefined, clock.t), { code: 'ERR_ENGINE_FAILED' })
    await sync.stop()
  })

  test('without a timer (the workers entry), push is not followed: every request pulls', async () => {
    const ch = fakeChannel()
    const { script, sync } = setup(() => SYNCED, {
      push: { subscribe: ch.subscribe, maxPullIntervalMs: 1000 },
    })
    assert.equal(ch.events, undefined)
    await sync.refresh()
    await sync.refresh()
    assert.equal(script.calls.length, 2)
  })

  test('without a timer, one refresh loads the whole state up to LOAD_STEPS pages', async () => {
    const { engine, script, sync } = setup(() => MORE)
    await sync.refresh()
    assert.equal(script.calls.length, LOAD_STEPS)
    assert.equal(engine.tagsSynced, false, 'nothing tagged is judged fresh until loaded')
  })

  /**
   * A revalidation of `tag` whose send is under way when stop() is called and fails after it;
   * close()'s own sends are answered `forced` (none are made when it is undefined).
   */
  async function stopDuringSend(tag, forced) {
    let fail
    const f = setup((_, kind, force) => {
      if (kind !== 'write') return SYNCED
      if (force && forced !== undefined) return forced
      return new Promise((resolve) => {
        fail = () => resolve(new Error('connection reset'))
      })
    })
    await f.sync.refresh()
    const updating = f.sync.update([tag], undefined, T0)
    for (let i = 0; i < 100 && fail === undefined; i++) await settle()
    assert.ok(fail, 'the send is under way')
    const stopping = f.sync.stop()
    fail()
    await updating
    await stopping
    return f
  }

  test('a revalidation whose send is under way when stop() is called is not said to come after it', async () => {
    // A new user saw `... applied on this instance only: fleetcache's connections are closed
    // (close())` for a revalidation made half a second before close(), whose send was still
    // waiting for Redis, and then no line naming it, though the closing line refers to 'the
    // lines that queued them'.
    const { log, script } = await stopDuringSend('made-before-close', new Error('connection reset'))
    assert.ok(updates(script).length >= 1)
    const lines = log.lines.join('\n')
    assert.doesNotMatch(lines, /made-before-close.*connections are closed/, lines)
    assert.match(
      lines,
      /warn revalidation of made-before-close \(expire now\) applied on this instance; .*so it is queued \(1 waiting\); its send was close\(\)'s last attempt/,
      lines,
    )
  })

  test('a tag holding control characters is escaped in the lines that name it', async () => {
    // Tags are the application's strings (a slug in revalidateTag(`post-${slug}`)): printed as
    // they are, a newline forged a log line of its own and ESC drove the terminal.
    const { log, sync } = setup((_, kind) =>
      kind === 'write' ? new Error('connection reset') : SYNCED,
    )
    await sync.refresh()
    await sync.update(['evil\nforged\u001b[2J\u0085'], undefined, T0)
    const lines = log.lines.join('\n')
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(lines.replaceAll('\n', ' '), /[\u0000-\u001f\u007f-\u009f]/, lines)
    assert.match(lines, /revalidation of evil\\nforged\\x1b\[2J\\x85 \(expire now\)/, lines)
  })

  test('a revalidation whose send failed after stop() was called is not promised another attempt', async () => {
    // Its send, under way when stop() was called, failed after it: that was close()'s attempt
    // (the attempt stops at the first command that fails), and nothing more is sent. Before, its
    // line said "close() makes one last attempt to send it" all the same.
    const { log, script } = await stopDuringSend('failed-at-close')
    assert.equal(updates(script).length, 1, 'nothing sent after the send that failed')
    const lines = log.lines.join('\n')
    assert.doesNotMatch(lines, /failed-at-close.*makes one last attempt/, lines)
    // Nor retried: the closing line reports it, and the send's own failure is a debug line.
    assert.doesNotMatch(lines, /retried/, lines)
    assert.match(lines, /debug revalidation not sent to Redis at close: .*connection reset/, lines)
    assert.match(
      lines,
      /warn revalidation of failed-at-close \(expire now\) applied on this instance; .*so it is queued \(1 waiting\); its send was close\(\)'s last attempt/,
      lines,
    )
    assert.match(lines, /closing with 1 queued revalidation\(s\) not sent to Redis/, lines)
  })

  test('stop() waits for a load by time (closeWaitMs), not by a count of pages', async () => {
    // Each page answers at once (on the next turn): before, stop() stopped waiting after
    // LOAD_STEPS pulls, however quickly Redis answered; now it waits until the load is done or
    // its time is over, whichever comes first.
    const timer = fakeTimer()
    const { engine, log, script, sync } = setup(
      () => new Promise((r) => setImmediate(() => r(MORE))),
      { timer, closeWaitMs: 4_800 },
    )
    void sync.refresh()
    let stopped = false
    const stopping = sync.stop().then(() => (stopped = true))
    for (let i = 0; i < 1_000 && script.calls.length < 2 * LOAD_STEPS; i++) await settle()
    assert.ok(script.calls.length >= 2 * LOAD_STEPS, `${String(script.calls.length)} pages read`)
    assert.equal(stopped, false, `still waiting after ${String(script.calls.length)} pages`)
    const deadline = timer.pending.find((h) => h.ms === 4_800)
    assert.ok(deadline, 'its time is set on the timer')
    deadline.fn()
    await stopping
    assert.equal(engine.tagsSynced, false)
    assert.ok(
      log.lines.includes(
        'warn closing before the tag state was loaded (4800 ms of pulls waited for): revalidation ' +
          'records this instance knows that Redis may have lost since its last pull are neither ' +
          'compared nor given back',
      ),
      JSON.stringify(log.lines),
    )
    // No page is asked for once its time is over.
    const asked = script.calls.length
    for (let i = 0; i < 4; i++) await settle()
    assert.ok(
      script.calls.length <= asked + 1,
      `${String(script.calls.length)} after ${String(asked)}`,
    )
  })

  test('with a timer, a refresh waits for one page and loads the rest in the background', async () => {
    const gates = []
    let pages = 0
    const { engine, script, sync } = setup(
      () => {
        pages += 1
        if (pages === 1) return MORE
        // Later pages answer when the test lets them.
        return new Promise((r) => gates.push(() => r(pages < 3 ? MORE : SYNCED)))
      },
      { timer: fakeTimer() },
    )
    await sync.refresh()
    assert.equal(engine.tagsSynced, false, 'the request was held for more than its page')
    while (!engine.tagsSynced) {
      if (gates.length > 0) gates.shift()()
      await settle()
    }
    assert.equal(script.calls.length, 3)
  })

  test('a refresh answered in parts holds its request until the last part', async () => {
    // The state at version 1, then the changes since in two parts: up to version 2 (flag 3:
    // more follow; cut from version 3), then up to version 3.
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    const PART = netstrings(['e1', '2', 'v2', '3', '0', '', '3', 'v3', 'a', rec])
    const LAST = netstrings(['e1', '3', 'v3', '0', '0', '', 'b', rec])
    const gate = []
    const answers = [SYNCED, PART, () => new Promise((r) => gate.push(() => r(LAST)))]
    const { engine, script, sync } = setup(
      () => {
        const next = answers.shift()
        return typeof next === 'function' ? next() : next
      },
      { timer: fakeTimer() },
    )
    await sync.refresh()
    assert.equal(engine.tagsSynced, true)
    const pull = sync.refresh()
    await settle()
    assert.equal(script.calls.length, 3, 'the second part asked for at once')
    assert.deepEqual(
      script.calls[2].argv.slice(-2),
      ['3', 'v3'],
      'it checks the version the part was cut from',
    )
    assert.equal(engine.tagsSynced, false, 'nothing tagged is judged fresh between parts')
    assert.equal(engine.tagsCatchingUp, true)
    assert.equal(await isSettled(pull), false, 'the request waits for the last part')
    gate.shift()()
    await pull
    assert.equal(engine.tagsSynced, true)
    assert.equal(script.calls.length, 3, 'nothing more in the background')
  })

  test('{ expire: 0 } is an immediate expiry: logged and counted as one, like updateTag', async () => {
    const { clock, engine, log, sync } = setup(() => null, { module: tools })
    // What Next 16 passes for revalidateTag(t, { expire: 0 }), updateTag(t) and a profile.
    await sync.update(['zero'], { expire: 0 }, clock.t)
    await sync.update(['now'], undefined, clock.t)
    await sync.update(['later'], { expire: 60 }, clock.t)
    await sync.update(['never'], {}, clock.t)
    const revalidate = log.lines.filter((l) => l.startsWith('debug revalidate '))
    assert.deepEqual(revalidate, [
      'debug revalidate zero (expire now)',
      'debug revalidate now (expire now)',
      'debug revalidate later (stale, expire in 60 s)',
      'debug revalidate never (stale, no expiry)',
    ])
    const { expire, stale } = engine.stats(clock.t).revalidations
    assert.deepEqual({ expire, stale }, { expire: 2, stale: 2 })
    // It behaves as one: an entry from before it is expired, not served stale.
    assert.equal(
      engine.tagFreshness('zero', clock.t - 1, clock.t + 1),
      engine.tagFreshness('now', clock.t - 1, clock.t + 1),
    )
    assert.equal(engine.tagFreshness('zero', clock.t - 1, clock.t + 1), tools.Freshness.Expired)
  })

  test('a revalidation refused with NOPERM is dropped, logged once, and the next one is sent', async () => {
    const { engine, log, script, sync } = setup((argv, kind) =>
      kind === 'write' && mentions(argv, 'refused') ? replyError(NOPERM) : null,
    )
    await sync.update(['refused-1'], undefined, T0)
    await sync.update(['refused-2'], undefined, T0 + 50)
    assert.equal(engine.outboxLength, 0, 'a refused revalidation blocks the outbox')
    const dropped = log.lines.filter((l) => l.startsWith('error revalidation dropped'))
    assert.equal(dropped.length, 1, log.lines.join('\n'))
    assert.match(dropped[0], /NOPERM/)
    await sync.update(['next-tag'], undefined, T0 + 100)
    assert.equal(engine.outboxLength, 0)
    assert.ok(updates(script).some((c) => mentions(c.argv, 'next-tag')))
    assert.ok(engine.getExpiration('refused-1', T0 + 1) > 0, 'still in force in this process')
  })

  test('a revalidation Redis keeps answering with an error no retry fixes is parked', async () => {
    const { clock, engine, log, sync } = setup((argv, kind) =>
      // A tag name no script hash can contain (not hexadecimal).
      kind === 'write' && mentions(argv, 'wrong') ? replyError('WRONGTYPE Operation') : null,
    )
    await sync.update(['wrong'], undefined, clock.t)
    await sync.update(['good'], undefined, clock.t)
    assert.equal(engine.outboxLength, 2, 'kept and retried at first')
    // Bounded: the engine parks it after a few attempts.
    for (let i = 0; i < 20 && engine.outboxLength > 0; i++) {
      clock.t += Math.max(1, engine.outboxRetryInMs(clock.t))
      await sync.drain()
    }
    assert.equal(engine.outboxLength, 0, log.lines.join('\n'))
    assert.equal(engine.outboxParked, 1)
    assert.equal(log.lines.filter((l) => l.startsWith('error revalidation parked')).length, 1)
    // Redis refused that one revalidation, not writes: the line after says neither that it is
    // back nor that it accepts writes again.
    assert.deepEqual(
      log.lines.filter((l) => l.startsWith('info ')),
      [
        'info sent 1 queued revalidation(s), in order, past the one(s) Redis refused (set aside: the lines above); 2 were made while the queue waited',
      ],
      log.lines.join('\n'),
    )
  })

  test('a failed send waits the backoff on the given clock; the timer sends it, in order', async () => {
    let down = true
    const timer = fakeTimer()
    const { clock, engine, log, script, sync } = setup(
      (_, kind) => (down ? new Error('connection reset') : kind === 'read' ? SYNCED : null),
      { timer },
    )
    await sync.update(['a'], undefined, clock.t)
    assert.equal(engine.outboxLength, 1)
    assert.equal(timer.pending.length, 1, 'one timer, for the retry')
    assert.equal(timer.pending[0].ms, engine.pollTimeout(clock.t) - clock.t)
    down = false
    const before = updates(script).length
    await sync.update(['b'], undefined, clock.t)
    assert.equal(updates(script).length, before, 'sent again inside the backoff')
    assert.equal(timer.pending.length, 1, 'still one timer')
    clock.t += engine.outboxRetryInMs(clock.t)
    timer.fire()
    while (engine.outboxLength > 0) await settle()
    const sent = updates(script).slice(before)
    assert.ok(mentions(sent[0].argv, 'a') && mentions(sent[1].argv, 'b'), 'in order')
    assert.ok(
      log.lines.some((l) => l.startsWith('info redis is back: sent 2')),
      log.lines.join('\n'),
    )
  })

  test('writes refused (OOM) and then accepted: the line says so, not that Redis is back', async () => {
    let refusing = true
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const { clock, engine, log, sync } = setup((_, kind) =>
      kind === 'read' ? SYNCED : refusing ? oom : null,
    )
    await sync.refresh()
    await sync.update(['a'], undefined, clock.t)
    await sync.update(['b'], undefined, clock.t)
    refusing = false
    clock.t += engine.outboxRetryInMs(clock.t)
    await sync.drain()
    assert.equal(engine.outboxLength, 0)
    const info = log.lines.filter((l) => l.startsWith('info '))
    // Before: 'info redis is back: sent 2 queued revalidation(s), in order', though Redis
    // never went away.
    assert.deepEqual(
      info,
      [
        'info redis accepts writes again (it had answered them with OOM): sent 2 queued ' +
          'revalidation(s), in order; 2 were made while it refused them',
      ],
      log.lines.join('\n'),
    )
  })

  test('an outage that ended in refused writes is still an outage: redis is back', async () => {
    let failure = Object.assign(new Error('r'), { code: 'ECONNREFUSED' })
    const { clock, engine, log, sync } = setup((_, kind) => (kind === 'read' ? SYNCED : failure))
    await sync.refresh()
    await sync.update(['a'], undefined, clock.t)
    failure = replyError('LOADING Redis is loading the dataset in memory')
    clock.t += engine.outboxRetryInMs(clock.t)
    await sync.drain()
    failure = null
    clock.t += engine.outboxRetryInMs(clock.t)
    await sync.drain()
    assert.equal(engine.outboxLength, 0)
    assert.deepEqual(
      log.lines.filter((l) => l.startsWith('info ')),
      [
        'info redis is back: sent 1 queued revalidation(s), in order; 1 was made while it did not answer',
      ],
      log.lines.join('\n'),
    )
  })

  test('closing during an outage names the queued revalidations logged at debug', async () => {
    const down = Object.assign(new Error('r'), { code: 'ECONNREFUSED' })
    const { clock, log, sync } = setup((_, kind) => (kind === 'read' ? SYNCED : down))
    await sync.refresh()
    for (const tag of ['first', 'second', 'third']) await sync.update([tag], undefined, clock.t)
    // Only the first at warn.
    assert.deepEqual(
      log.lines
        .filter((l) => l.startsWith('warn '))
        .map((l) => /^warn revalidation of (\S+)/.exec(l)?.[1]),
      ['first'],
      log.lines.join('\n'),
    )
    await sync.stop()
    const closing = log.lines.filter((l) => l.startsWith('error closing with'))
    assert.equal(closing.length, 1, log.lines.join('\n'))
    assert.match(
      closing[0],
      /^error closing with 3 queued revalidation\(s\) not sent to Redis .*2 of them logged at debug only while Redis did not answer: second; third\)$/,
    )
  })

  test('a revalidation sent while records to give back fail starts no quiet run: the next outage warns again', async () => {
    // The outbox is sent, then the merge of records Redis lost fails: the drain answers false.
    // Before, the revalidation it had just sent was logged as queued ('0 waiting') and began a
    // quiet run no 'redis is back' line ended (nothing was backlogged), so the first revalidation
    // of the next outage, kept back by the open breaker, was a debug line only, and the line that
    // ended that outage counted the one sent before it.
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    let state = netstrings(['e1', '1', 'v1', '1', '0', '', '0', 'lost-rec', rec])
    const timeout = Object.assign(new Error('command timed out'), { code: 'ERR_REDIS_TIMEOUT' })
    const open = Object.assign(new Error('open'), { code: 'ERR_REDIS_CIRCUIT_OPEN' })
    const f = { merge: () => timeout, update: () => null }
    const { clock, engine, log, sync } = setup((argv, kind) =>
      kind === 'read' ? state : mentions(argv, 'lost-rec') ? f.merge() : f.update(),
    )
    await sync.refresh()
    state = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
    clock.t += 1000
    await sync.refresh()
    assert.equal(engine.resendLength, 1)
    await sync.update(['sent-one'], undefined, clock.t)
    assert.equal(engine.outboxLength, 0, 'sent')
    assert.deepEqual(
      log.lines.filter((l) => l.includes('revalidation of sent-one')),
      [],
      'a sent revalidation is not said to be queued',
    )
    // The merge goes through; later, an outage with the breaker open.
    f.merge = () => null
    clock.t += 1000
    await sync.drain()
    assert.equal(engine.resendLength, 0)
    f.update = () => open
    await sync.update(['outage-first'], undefined, clock.t)
    assert.equal(engine.outboxLength, 1)
    assert.equal(
      log.lines.filter((l) => /^(warn|error) .*outage-first/.test(l)).length,
      1,
      log.lines.join('\n'),
    )
    f.update = () => null
    clock.t += engine.outboxRetryInMs(clock.t)
    await sync.drain()
    assert.equal(engine.outboxLength, 0)
    assert.ok(
      log.lines.includes(
        'info redis is back: sent 1 queued revalidation(s), in order; 1 was made while it did not answer',
      ),
      log.lines.join('\n'),
    )
  })

  test('a revalidation taken out of a full outbox while its own send was out is counted by the line when Redis is back', async () => {
    // Capacity 2: 'a' is sent, the send hangs, 'b' and 'c' are queued behind it and 'c' takes
    // 'a' out; the send then fails. All three were made while Redis did not answer.
    const down = Object.assign(new Error('r'), { code: 'ECONNREFUSED' })
    const f = { write: () => down }
    const { clock, engine, log, sync } = setup(
      (_, kind) => (kind === 'read' ? SYNCED : f.write()),
      {
        config: { outboxCapacity: 2 },
      },
    )
    await sync.refresh()
    let fail
    f.write = () => new Promise((resolve) => (fail = () => resolve(down)))
    const made = [sync.update(['a'], undefined, clock.t)]
    await settle()
    f.write = () => down
    made.push(sync.update(['b'], undefined, clock.t), sync.update(['c'], undefined, clock.t))
    await settle()
    fail()
    await Promise.all(made)
    assert.equal(engine.outboxLength, 2)
    f.write = () => null
    clock.t += engine.outboxRetryInMs(clock.t)
    await sync.drain()
    assert.equal(engine.outboxLength, 0)
    assert.deepEqual(
      log.lines.filter((l) => l.startsWith('info redis is back')),
      [
        'info redis is back: sent 2 queued revalidation(s), in order; 3 were made while it did not answer',
      ],
      log.lines.join('\n'),
    )
  })

  test('revalidations during one run of refused writes log a bounded number of lines', async () => {
    let refusing = true
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const { clock, engine, log, sync } = setup((_, kind) =>
      kind === 'read' ? SYNCED : refusing ? oom : null,
    )
    await sync.refresh()
    const run = async (first, n) => {
      const from = log.lines.length
      for (let i = 0; i < n; i++) await sync.update([`${first}-${String(i)}`], undefined, clock.t)
      return log.lines.slice(from)
    }
    const lines = await run('oom', 30)
    const loud = lines.filter((l) => /^(warn|error) /.test(l))
    // Before: one warning per revalidation, 30 of them (and the error of the first refusal).
    assert.equal(loud.length, 2, loud.join('\n'))
    assert.match(loud[0], /^error revalidation not sent to Redis, kept in the outbox/)
    assert.match(
      loud[1],
      /^warn revalidation of oom-0 \(expire now\) applied on this instance; Redis answered the first queued revalidation with OOM, so it is queued \(1 waiting\) and retried/,
    )
    assert.match(loud[1], /the revalidations made after it are logged at debug/)
    // Each of the others still names its tags, at debug.
    for (let i = 1; i < 30; i++) {
      assert.ok(
        lines.some((l) => l.startsWith(`debug revalidation of oom-${String(i)} `)),
        `oom-${String(i)}`,
      )
    }
    // The run ends: one line with the count.
    refusing = false
    clock.t += engine.outboxRetryInMs(clock.t)
    await sync.drain()
    assert.equal(engine.outboxLength, 0)
    assert.deepEqual(
      log.lines.filter((l) => l.startsWith('info ')),
      [
        'info redis accepts writes again (it had answered them with OOM): sent 30 queued ' +
          'revalidation(s), in order; 30 were made while it refused them',
      ],
    )
    // A second run is logged anew.
    refusing = true
    const again = await run('again', 5)
    assert.equal(again.filter((l) => l.startsWith('warn ')).length, 1, again.join('\n'))
  })

  test('closing during a run of refused writes names the queued revalidations logged at debug', async () => {
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const { clock, log, sync } = setup((_, kind) => (kind === 'read' ? SYNCED : oom))
    await sync.refresh()
    for (const tag of ['first', 'second', 'third']) await sync.update([tag], undefined, clock.t)
    await sync.stop()
    const closing = log.lines.filter((l) => l.startsWith('error closing with'))
    assert.equal(closing.length, 1, log.lines.join('\n'))
    assert.match(closing[0], /^error closing with 3 queued revalidation\(s\) not sent to Redis/)
    // The first was logged at warn with its tags; the two after it only at debug.
    assert.match(
      closing[0],
      /2 of them logged at debug only while Redis refused writes: second; third\)$/,
    )
  })

  test('closing during a run of refused writes names every queued one logged at debug, not five', async () => {
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const { clock, log, sync } = setup((_, kind) => (kind === 'read' ? SYNCED : oom))
    await sync.refresh()
    const tags = Array.from({ length: 9 }, (_, i) => `t${String(i)}`)
    for (const tag of tags) await sync.update([tag], undefined, clock.t)
    await sync.stop()
    const closing = log.lines.filter((l) => l.startsWith('error closing with'))
    assert.equal(closing.length, 1, log.lines.join('\n'))
    // Before: 't1,t2,t3,t4,t5 and 3 more': three lost revalidations named nowhere at warn.
    assert.match(
      closing[0],
      /8 of them logged at debug only while Redis refused writes: t1; t2; t3; t4; t5; t6; t7; t8\)$/,
    )
  })

  test('closing names no revalidation as lost that the queue sent after it was logged at debug', async () => {
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const down = Object.assign(new Error('r'), { code: 'ECONNREFUSED' })
    let answer = () => oom
    const { clock, engine, log, sync } = setup((argv, kind) =>
      kind === 'read' ? SYNCED : answer(argv),
    )
    await sync.refresh()
    // A run of refusals: 'first' at warn, 'second' at debug.
    await sync.update(['first'], undefined, clock.t)
    await sync.update(['second'], undefined, clock.t)
    // Then Redis is out of reach: 'third' is logged at warn, as in any outage.
    answer = () => down
    clock.t += engine.outboxRetryInMs(clock.t)
    await sync.update(['third'], undefined, clock.t)
    assert.ok(
      log.lines.some((l) => l.startsWith('warn revalidation of third ')),
      log.lines.join('\n'),
    )
    // Redis takes 'first' and 'second', and does not answer 'third'.
    answer = (argv) => (mentions(argv, 'third') ? down : null)
    clock.t += engine.outboxRetryInMs(clock.t)
    await sync.drain()
    assert.equal(engine.outboxLength, 1, log.lines.join('\n'))
    await sync.stop()
    const closing = log.lines.filter((l) => l.startsWith('error closing with'))
    assert.equal(closing.length, 1, log.lines.join('\n'))
    // Before: '1 of them logged at debug only while Redis refused writes: second', which
    // Redis had taken; 'third' has its own warning.
    assert.match(closing[0], /^error closing with 1 queued revalidation\(s\)/)
    assert.doesNotMatch(closing[0], /second/)
    assert.match(closing[0], /the lines that queued them name their tags\)$/)
  })

  test('records to give back while Redis refuses writes: one error line per run, not per attempt', async () => {
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    let state = netstrings(['e1', '1', 'v1', '1', '0', '', '0', 'a', rec])
    let answer = () => oom
    const { clock, engine, log, sync } = setup((_, kind) => (kind === 'read' ? state : answer()))
    await sync.refresh()
    // Flushed: the new state lacks 'a', which this instance gives back; Redis refuses writes.
    state = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
    clock.t += 1000
    await sync.refresh()
    assert.equal(engine.resendLength, 1)
    for (let i = 0; i < 10; i++) {
      clock.t += 1000
      await sync.drain()
    }
    assert.equal(engine.resendLength, 1)
    const loud = () => log.lines.filter((l) => /^(warn|error) lost tag records/.test(l))
    // Before: one error line per attempt, 11 here (each refresh drains too), about one a second
    // for as long as Redis refuses writes. The others are debug lines.
    assert.equal(loud().length, 1, loud().join('\n'))
    assert.equal(log.lines.filter((l) => l.startsWith('debug lost tag records')).length, 10)
    // Writes accepted: given back, and the next run of failures is logged anew.
    answer = () => null
    clock.t += 1000
    await sync.drain()
    assert.equal(engine.resendLength, 0)
    assert.ok(log.lines.includes('info gave 1 lost tag record(s) back to Redis (1 batch(es))'))
    state = netstrings(['e3', '1', 'v1', '1', '0', '', '0'])
    answer = () => oom
    clock.t += 1000
    await sync.refresh()
    assert.equal(engine.resendLength, 1)
    assert.equal(loud().length, 2, loud().join('\n'))
  })

  test('an outage after a run of refused merges is logged at error though no revalidation is made', async () => {
    // The merge's error line is once per run of its failures, which an outage that follows
    // the refusals continues (no merge went through): its retries stay debug lines. The outage
    // itself is not left to them: the refreshes' error line says it (and, with the Node
    // transport, the breaker's opening), revalidation or not.
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const down = Object.assign(
      new Error('redis is not connected (reconnecting in the background)'),
      {
        connection: true,
      },
    )
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    let state = netstrings(['e1', '1', 'v1', '1', '0', '', '0', 'a', rec])
    let read = () => state
    let answer = () => oom
    const { clock, engine, log, sync } = setup((_, kind) => (kind === 'read' ? read() : answer()))
    await sync.refresh()
    state = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
    clock.t += 1000
    await sync.refresh()
    clock.t += 1000
    await sync.drain()
    assert.equal(engine.resendLength, 1)
    const before = log.lines.length
    answer = () => down
    read = () => down
    clock.t += 1000
    await sync.refresh()
    await sync.drain()
    const outage = log.lines.slice(before)
    assert.ok(
      outage.some((l) => l.startsWith('error tag refresh failed') && l.includes('not connected')),
      outage.join('\n'),
    )
    assert.deepEqual(
      outage.filter((l) => /^(warn|error) lost tag records/.test(l)),
      [],
      'the merge keeps its run of failures',
    )
  })

  test('a tag given back in a batch that failed and again in a newer one is counted once', async () => {
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const rec = (t) => `${String(t)},${String(t)},0,0,${String(t)}`
    let state = netstrings(['e1', '1', 'v1', '1', '0', '', '0', 'a', rec(T0)])
    let answer = () => oom
    const { clock, engine, log, sync } = setup((_, kind) => (kind === 'read' ? state : answer()))
    await sync.refresh()
    // Flushed: 'a' (T0) is given back; Redis refuses the merge, which stays planned.
    state = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
    clock.t += 1000
    await sync.refresh()
    // Another state holds a newer record of 'a', then a flush loses it too: queued again
    // beside the batch that failed, which does not cover it.
    state = netstrings(['e3', '1', 'v1', '1', '0', '', '0', 'a', rec(T0 + 5000)])
    clock.t += 1000
    await sync.refresh()
    state = netstrings(['e4', '1', 'v1', '1', '0', '', '0'])
    clock.t += 1000
    await sync.refresh()
    assert.equal(engine.resendRecords, 1)
    answer = () => null
    clock.t += 1000
    await sync.drain()
    assert.equal(engine.resendLength, 0)
    const gave = log.lines.filter((l) => l.startsWith('info gave'))
    // Before: 'gave 2 lost tag record(s) back to Redis (2 batch(es))', 'a' counted per batch.
    assert.deepEqual(gave, ['info gave 1 lost tag record(s) back to Redis (2 batch(es))'])
  })

  test('batches given back before one that fails are reported by that run', async () => {
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    const tags = Array.from({ length: 300 }, (_, i) => `t${String(i)}`)
    let state = netstrings(['e1', '1', 'v1', '1', '0', '', '0', ...tags.flatMap((t) => [t, rec])])
    let writes = 0
    // The first merge lands, every later one is refused.
    const { clock, engine, log, sync } = setup((_, kind) =>
      kind === 'read' ? state : (writes += 1) === 1 ? null : oom,
    )
    await sync.refresh()
    // Flushed: the 300 records are given back in batches of up to 256.
    state = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
    clock.t += 1000
    await sync.refresh()
    assert.equal(writes, 2, 'one batch landed, the next was refused')
    const given = 300 - engine.resendRecords
    assert.ok(given > 0 && given < 300, `given back: ${String(given)}`)
    // Before: no line for the batch that landed, the run having ended at the refused one.
    assert.deepEqual(
      log.lines.filter((l) => l.startsWith('info gave')),
      [`info gave ${String(given)} lost tag record(s) back to Redis (1 batch(es))`],
    )
  })

  /**
   * A state holding the record of `lost-rec` (T0), then one that lacks it (a flush, a failover)
   * while every command but the last attempt at close is refused by the breaker (quietly): the
   * record waits to be given back, never tried. `queued`: a revalidation of `queued-rev` is
   * queued first (the breaker refused its send), and the new state lacks it too.
   */
  async function lostWhileRefused(queued) {
    const open = Object.assign(new Error('open'), { code: 'ERR_REDIS_CIRCUIT_OPEN' })
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    let state = netstrings(['e1', '1', 'v1', '1', '0', '', '0', 'lost-rec', rec])
    const f = { atClose: () => open }
    const made = setup((argv, kind, force) =>
      kind === 'read'
        ? f.closePull !== undefined && f.sync.stopped
          ? f.closePull()
          : state
        : force === true
          ? f.atClose(argv)
          : open,
    )
    Object.assign(f, made)
    const { clock, engine, sync } = f
    await sync.refresh()
    if (queued) await sync.update(['queued-rev'], undefined, clock.t)
    assert.equal(engine.outboxLength, queued ? 1 : 0)
    state = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
    clock.t += 1000
    await sync.refresh()
    assert.equal(engine.resendLength, queued ? 2 : 1)
    f.closingWrites = () => f.script.calls.filter((c) => c.kind === 'write' && c.force === true)
    return f
  }

  test('close() gives back the records Redis lost, after the queue, whatever the breaker', async () => {
    // Before: the last attempt was the outbox's only; with the outbox empty, close() returned
    // at once and the records were gone from Redis with the process.
    for (const queued of [false, true]) {
      const f = await lostWhileRefused(queued)
      f.atClose = () => null
      await f.sync.stop()
      const sent = f.closingWrites()
      assert.equal(sent.length, queued ? 2 : 1, f.log.lines.join('\n'))
      if (queued) {
        // The queue first, in order: its send takes its own record off the merge.
        assert.ok(mentions(sent[0].argv, 'queued-rev') && !mentions(sent[0].argv, 'lost-rec'))
      }
      const merge = sent[sent.length - 1]
      assert.ok(mentions(merge.argv, 'lost-rec') && !mentions(merge.argv, 'queued-rev'))
      assert.equal(f.engine.resendLength, 0)
      assert.equal(f.engine.outboxLength, 0)
      assert.ok(f.log.lines.includes('info gave 1 lost tag record(s) back to Redis (1 batch(es))'))
      assert.deepEqual(
        f.log.lines.filter((l) => l.startsWith('error')),
        [],
        f.log.lines.join('\n'),
      )
    }
  })

  test('records close() cannot give back are logged once, at error, with how many', async () => {
    const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
    const f = await lostWhileRefused(false)
    f.atClose = () => oom
    await f.sync.stop()
    assert.equal(f.closingWrites().length, 1)
    const loud = f.log.lines.filter((l) => /^(warn|error)/.test(l))
    // The pull's warning about the loss, then the one line at close (not also the line of a
    // merge that failed, which says it is retried).
    assert.equal(loud.length, 2, loud.join('\n'))
    assert.match(loud[0], /^warn tag state in Redis was replaced/)
    assert.equal(
      loud[1],
      'error closing with lost tag records not given back to Redis (1 waiting; Redis answered the merge ' +
        'with OOM): revalidations this instance knew that the tag state in Redis lacks (flushed, ' +
        'restarted empty, restored or failed over, or never sent there); other instances may serve ' +
        'entries those revalidations invalidated, unless an instance that knows them gives them back; ' +
        'among them: lost-rec',
    )
  })

  test('a queue close() cannot send: no merge is tried after it, and each is logged once', async () => {
    const down = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })
    const f = await lostWhileRefused(true)
    f.atClose = () => down
    await f.sync.stop()
    // One command under its budget, not one more for the merge.
    assert.equal(f.closingWrites().length, 1)
    assert.ok(mentions(f.closingWrites()[0].argv, 'queued-rev'))
    const closing = f.log.lines.filter((l) => l.startsWith('error closing with'))
    assert.equal(closing.length, 2, f.log.lines.join('\n'))
    assert.match(
      closing[0],
      /^error closing with 1 queued revalidation\(s\) not sent to Redis \(Redis is unreachable\)/,
    )
    assert.match(
      closing[1],
      /^error closing with lost tag records not given back to Redis \(2 waiting; not tried: the queued revalidations before them were not sent\): .*; among them: (lost-rec,queued-rev|queued-rev,lost-rec)$/,
    )
    assert.equal(f.log.lines.filter((l) => /^(warn|error) lost tag records/.test(l)).length, 0)
  })

  test('the pull close() made got no connection, Redis refusing the login: the closing line names the refusal', async () => {
    // The transport's error names what refused the connection (`refusal`), also as the
    // breaker's failed probe's cause: the closing line says it, not that Redis was unreachable.
    const refusal = 'Redis refused the login (WRONGPASS; see <doc>)'
    const refused = Object.assign(
      new Error('redis is not connected (reconnecting in the background): Redis refused the login'),
      { connection: true, refusal },
    )
    for (const [atClose, expect] of [
      [refused, `the pull close() made got no connection: ${refusal}`],
      [
        Object.assign(new Error('probe'), { failedProbe: true, cause: refused }),
        `the pull close() made got no connection: ${refusal}`,
      ],
      [
        Object.assign(new Error('redis is not connected'), { connection: true }),
        'Redis was unreachable for the pull close() made',
      ],
    ]) {
      const f = await lostWhileRefused(false)
      f.closePull = () => atClose
      await f.sync.stop()
      assert.equal(f.closingWrites().length, 0, 'no merge tried after the pull')
      const closing = f.log.lines.filter((l) => l.startsWith('error closing with'))
      assert.equal(closing.length, 1, f.log.lines.join('\n'))
      assert.ok(
        closing[0].startsWith(
          `error closing with lost tag records not given back to Redis (1 waiting; not tried: ${expect}): `,
        ),
        closing[0],
      )
    }
  })

  test('a pull in flight when close() is called: the loss it learns is given back', async () => {
    // The pull that learns of a loss (a flush, a failover) may be out when the process is told
    // to stop (SIGTERM during a deploy). Before, close() did not wait for it: nothing waited to
    // be sent yet, so it returned at once, and the records the pull then found lost were
    // neither given back nor reported.
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    let state = netstrings(['e1', '1', 'v1', '1', '0', '', '0', 'lost-rec', rec])
    let answerPull
    const { clock, engine, log, script, sync } = setup((argv, kind) => {
      if (kind !== 'read') return null
      if (answerPull === undefined) return state
      return new Promise((resolve) => {
        const reply = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
        answerPull = () => resolve(reply)
      })
    })
    await sync.refresh()
    answerPull = null
    clock.t += 1000
    const pulling = sync.refresh()
    await new Promise((r) => setImmediate(r))
    const stopping = sync.stop()
    await new Promise((r) => setImmediate(r))
    answerPull()
    await Promise.all([pulling, stopping])
    const merges = script.calls.filter((c) => c.kind === 'write' && c.force === true)
    assert.equal(
      engine.resendLength,
      0,
      `the record the pull found lost went to Redis at close (merges: ${String(merges.length)}): ` +
        log.lines.join('\n'),
    )
    assert.ok(merges.length === 1 && mentions(merges[0].argv, 'lost-rec'))
  })

  test('close() called twice at once: one last attempt, one line per kind', async () => {
    const down = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })
    const f = await lostWhileRefused(true)
    f.atClose = () => new Promise((r) => setTimeout(() => r(down), 5))
    await Promise.all([f.sync.stop(), f.sync.stop()])
    assert.equal(f.closingWrites().length, 1)
    assert.equal(
      f.log.lines.filter((l) => l.startsWith('error closing with')).length,
      2,
      f.log.lines.join('\n'),
    )
  })

  test('the line at close counts the records not given back, not the meta hash with them', async () => {
    // A state that lacks a record this process knows and whose meta hash is lost too (records
    // without an epoch): the engine's count of what waits is one more than the records (the
    // merge also makes the meta hash anew). Before, the line said "2 waiting" for one record.
    const open = Object.assign(new Error('open'), { code: 'ERR_REDIS_CIRCUIT_OPEN' })
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    let state = netstrings(['e1', '1', 'v1', '1', '0', '', '0', 'lost-rec', rec])
    const { clock, engine, log, sync } = setup((_, kind, force) =>
      kind === 'read'
        ? state
        : force === true
          ? replyError('READONLY You cannot write against a read only replica.')
          : open,
    )
    await sync.refresh()
    state = netstrings(['no-meta', '1', '', '1', '0', '', '0', 'a', rec])
    clock.t += 1000
    await sync.refresh()
    assert.equal(engine.resendLength, 2, 'one record and the meta hash')
    await sync.stop()
    const closing = log.lines.filter((l) => l.startsWith('error closing with'))
    assert.equal(closing.length, 1, log.lines.join('\n'))
    assert.match(
      closing[0],
      /^error closing with lost tag records not given back to Redis \(1 waiting; Redis answered the merge with READONLY\): .*; among them: lost-rec$/,
    )
  })

  test('the line of a merge that failed counts the records waiting, not the meta hash with them', async () => {
    // As at close: a state that lacks a record this process knows and whose meta hash is lost
    // too. The merge (the record, and the meta hash made anew) is refused while the process
    // runs. Before, the line said "2 waiting" for one record.
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    let state = netstrings(['e1', '1', 'v1', '1', '0', '', '0', 'lost-rec', rec])
    const { clock, engine, log, sync } = setup((_, kind) =>
      kind === 'read'
        ? state
        : replyError('READONLY You cannot write against a read only replica.'),
    )
    await sync.refresh()
    state = netstrings(['no-meta', '1', '', '1', '0', '', '0', 'a', rec])
    clock.t += 1000
    await sync.refresh()
    assert.equal(engine.resendLength, 2, 'one record and the meta hash')
    const failed = log.lines.filter((l) => /^error lost tag records not yet given back/.test(l))
    assert.deepEqual(
      failed,
      [
        'error lost tag records not yet given back to Redis (1 waiting): ' +
          'ERR_REDIS_REPLY: READONLY You cannot write against a read only replica.',
      ],
      log.lines.join('\n'),
    )
  })

  test('the lines naming lost records name the folded ones readably', async () => {
    // A mirror bounded at one exact record folds the others under one reserved tag
    // ('\u0001folded'); a flush loses them all, and that record is given back with the rest.
    // Before, the closing lines named it raw, a control character in the log.
    const open = Object.assign(new Error('open'), { code: 'ERR_REDIS_CIRCUIT_OPEN' })
    const rec = (t) => `${String(t)},${String(t)},0,0,${String(t)}`
    let state = netstrings([
      'e1',
      '1',
      'v1',
      '1',
      '0',
      '',
      '0',
      'old-1',
      rec(T0 - 30),
      'old-2',
      rec(T0 - 20),
      'new',
      rec(T0 - 10),
    ])
    const { clock, engine, log, sync } = setup(
      (_, kind, force) =>
        kind === 'read'
          ? state
          : force === true
            ? replyError('READONLY You cannot write against a read only replica.')
            : open,
      { config: { tagMirrorMaxTags: 1 } },
    )
    await sync.refresh()
    assert.ok(engine.tagsFolded > 0, 'folded')
    state = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
    clock.t += 1000
    await sync.refresh()
    await sync.stop()
    const naming = log.lines.filter((l) => /lost tag record/.test(l))
    for (const line of [/^error closing with lost tag records/, /^debug closing: every lost/]) {
      const named = naming.filter((l) => line.test(l))
      assert.equal(named.length, 1, naming.join('\n'))
      assert.ok(named[0].includes('(folded revalidations)'), named[0])
    }
    assert.deepEqual(
      naming.filter((l) => l.includes('\u0001')),
      [],
      'no control character in a line',
    )
  })

  test('a send under way that fails as close() is called ends the last attempt', async () => {
    // Redis stops answering while a revalidation's send is out, and the process is told to
    // stop: that send fails at its budget; the last attempt would send it again and wait a
    // write budget more, for a Redis that just did not answer. Before, two commands.
    const late = Object.assign(new Error('timeout'), { code: 'ERR_REDIS_TIMEOUT' })
    const { log, script, sync } = setup((_, kind) =>
      kind === 'read'
        ? netstrings(['e1', '1', 'v1', '1', '0', '', '0'])
        : new Promise((r) => setTimeout(() => r(late), 20)),
    )
    await sync.refresh()
    const sending = sync.update(['gone'], undefined, T0)
    await new Promise((r) => setImmediate(r))
    await Promise.all([sync.stop(), sending])
    const writes = script.calls.filter((c) => c.kind === 'write')
    assert.equal(writes.length, 1, `one write budget: ${log.lines.join('\n')}`)
    assert.equal(
      log.lines.filter((l) => l.startsWith('error closing with 1 queued revalidation(s)')).length,
      1,
      log.lines.join('\n'),
    )
  })

  test('a lost meta hash close() cannot make anew is no lost revalidation', async () => {
    // Records without an epoch: the meta hash alone was lost, and a merge of no record makes
    // it anew. Not made at close: nothing is lost, an instance that loads the state makes it.
    const open = Object.assign(new Error('open'), { code: 'ERR_REDIS_CIRCUIT_OPEN' })
    const rec = `${String(T0)},${String(T0)},0,0,${String(T0)}`
    const { engine, log, sync } = setup((_, kind, force) =>
      kind === 'read'
        ? netstrings(['no-meta', '1', '', '1', '0', '', '0', 'a', rec])
        : force === true
          ? replyError('READONLY You cannot write against a read only replica.')
          : open,
    )
    await sync.refresh()
    assert.equal(engine.resendLength, 1)
    await sync.stop()
    assert.deepEqual(
      log.lines.filter((l) => /^(warn|error)/.test(l)),
      [],
      log.lines.join('\n'),
    )
    assert.ok(
      log.lines.some((l) =>
        /^debug closing without making the tag state's lost meta hash anew/.test(l),
      ),
    )
  })

  test('the breaker keeping Redis from being asked is not logged per request', async () => {
    const open = Object.assign(new Error('open'), { code: 'ERR_REDIS_CIRCUIT_OPEN' })
    const { log, sync } = setup(() => open)
    await sync.refresh()
    await sync.update(['a'], undefined, T0)
    assert.deepEqual(
      log.lines.filter((l) => l.startsWith('error')),
      [],
      log.lines.join('\n'),
    )
  })

  test('the queued-revalidation warning names why it is unsent: a timeout, an open breaker, an unreachable Redis', async () => {
    const failures = [
      [
        Object.assign(new Error('t'), { code: 'ERR_REDIS_TIMEOUT' }),
        'Redis did not answer it in time',
      ],
      [
        Object.assign(new Error('o'), { code: 'ERR_REDIS_CIRCUIT_OPEN' }),
        'the Redis circuit breaker is open',
      ],
      [Object.assign(new Error('r'), { code: 'ECONNREFUSED' }), 'Redis is unreachable'],
    ]
    for (const [failure, why] of failures) {
      const { log, sync } = setup((argv, kind) => (kind === 'write' ? failure : SYNCED))
      await sync.refresh()
      await sync.update(['q'], undefined, T0)
      const warned = log.lines.filter((l) => l.startsWith('warn revalidation of q '))
      assert.equal(warned.length, 1, log.lines.join('\n'))
      assert.ok(warned[0].includes(`; ${why}, so it is queued (1 waiting)`), warned[0])
    }
  })

  // Any error that was neither a reply nor a timeout nor the breaker's was called "Redis is
  // unreachable": a bug (a TypeError in a transport) or an unexpected client error showed at
  // warn as an outage, its own line being debug only in a quiet run. Only a connection error
  // (the transport's, or a socket's code) says unreachable; any other is named, escaped and cut.
  test('the queued-revalidation warning says unreachable for a connection error only, and names any other', async () => {
    const marked = Object.assign(
      new Error('redis is not connected (reconnecting in the background)'),
      {
        connection: true,
      },
    )
    const aggregate = Object.assign(
      new AggregateError(
        [
          Object.assign(new Error('a'), { code: 'ECONNREFUSED' }),
          Object.assign(new Error('b'), { code: 'ECONNREFUSED' }),
        ],
        '',
      ),
      {},
    )
    const failures = [
      [marked, 'Redis is unreachable'],
      // Marked with what refused the connection (the Node transport's refused login or
      // untrusted certificate): named in its place, escaped.
      [
        Object.assign(new Error('redis is not connected'), {
          connection: true,
          refusal: 'Redis refused the login (WRONGPASS; see <doc>)',
        }),
        'Redis refused the login (WRONGPASS; see <doc>)',
      ],
      [
        Object.assign(new Error('cert'), { connection: true, refusal: 'not trusted\nforged' }),
        'not trusted\\nforged',
      ],
      [Object.assign(new Error('reset'), { code: 'ECONNRESET' }), 'Redis is unreachable'],
      [Object.assign(new Error('pipe'), { code: 'EPIPE' }), 'Redis is unreachable'],
      [aggregate, 'Redis is unreachable'],
      [
        new TypeError("Cannot read properties of undefined (reading 'x')"),
        "sending the first queued revalidation failed: Cannot read properties of undefined (reading 'x')",
      ],
      [
        Object.assign(new Error('odd'), { code: 'ERR_SOMETHING' }),
        'sending the first queued revalidation failed: ERR_SOMETHING: odd',
      ],
      [
        new Error(`bad\nline${'y'.repeat(300)}`),
        `sending the first queued revalidation failed: bad\\nline${'y'.repeat(112)}…`,
      ],
    ]
    for (const [failure, why] of failures) {
      const { log, sync } = setup((argv, kind) => (kind === 'write' ? failure : SYNCED))
      await sync.refresh()
      await sync.update(['q'], undefined, T0)
      const warned = log.lines.filter((l) => l.startsWith('warn revalidation of q '))
      assert.equal(warned.length, 1, log.lines.join('\n'))
      assert.ok(warned[0].includes(`; ${why}, so it is queued (1 waiting)`), warned[0])
    }
  })

  test('a refresh that fails while a replaced state is loaded again says nothing tagged is served, not the last known state', async () => {
    // Loaded once, then a flush (a state of another epoch, answered in full over more than one
    // page): until its last page, the mirror is not in sync and no tagged entry is served. A
    // page that fails then is no fall-back on a last known state. Before, the line read 'tag
    // refresh failed, using the last known tag state' (a refresh had loaded a state once).
    const replies = [
      SYNCED,
      netstrings(['e2', '1', 'v1', '1', '0', '', '7']),
      new Error('connection reset'),
    ]
    const { engine, log, sync } = setup(() => replies.shift())
    await sync.refresh()
    assert.equal(engine.tagsSynced, true)
    await sync.refresh()
    assert.equal(engine.tagsSynced, false)
    // What the engine does: a tagged entry made at any time is a miss (Redis answers).
    assert.equal(engine.getExpiration('t', T0 + 20), Number.MAX_VALUE)
    const failed = log.lines.filter((l) => l.startsWith('error tag refresh failed'))
    assert.deepEqual(
      failed,
      [
        'error tag refresh failed while the tag state is loaded again or caught up on: no tagged entry is served until it is (while the breaker is open, but those this instance made since it started): connection reset',
      ],
      log.lines.join('\n'),
    )
  })

  test('a replaced tag state is reported with what it lacks; a state that never existed is not', async () => {
    const states = [
      // No tag state in Redis yet (epoch ''), twice: a revalidation queued meanwhile is not a loss.
      netstrings(['', '0', '', '1', '0', '', '0']),
      netstrings(['', '0', '', '1', '0', '', '0']),
      // A state with b, then a flush: the new state lacks b, and q (already waiting to be
      // given back since the first answer, so not counted again).
      netstrings(['e1', '1', 'v1', '1', '0', '', '0', 'b', `0,${T0},0,0,${T0}`]),
      netstrings(['e2', '1', 'v1', '1', '0', '', '0']),
    ]
    const { log, sync, engine } = setup((argv, kind) =>
      kind === 'write' ? new Error('connection reset') : states.shift(),
    )
    const replaced = () => log.lines.filter((l) => l.includes('tag state in Redis was replaced'))
    await sync.refresh()
    await sync.update(['q'], undefined, T0)
    assert.equal(engine.outboxLength, 1)
    await sync.refresh()
    assert.deepEqual(replaced(), [], log.lines.join('\n'))
    await sync.refresh()
    await sync.refresh()
    assert.equal(replaced().length, 1, log.lines.join('\n'))
    assert.match(replaced()[0], /and lacks 1 revalidation record\(s\) this instance knows of/)
  })

  test('what recording a revalidation dropped is logged: an over-long tag, an evicted one', async () => {
    const { engine, log, sync } = setup(() => new Error('connection reset'), {
      config: { outboxCapacity: 1 },
    })
    await sync.update(['first', 'x'.repeat(20_000)], undefined, T0)
    assert.ok(
      log.lines.some((l) => l.startsWith('warn revalidation of first,') && !l.endsWith(': ')),
      log.lines.join('\n'),
    )
    await sync.update(['second'], undefined, T0 + 50)
    assert.equal(engine.outboxLength, 1)
    assert.ok(
      log.lines.some((l) =>
        l.startsWith(
          'warn revalidation outbox full: took the oldest queued revalidation (first) out of the queue',
        ),
      ),
      log.lines.join('\n'),
    )
  })

  // A drain sends the queue, then merges back what a full outbox took out of it. When only
  // that merge failed, the revalidation that drained the queue was sent: it was logged as
  // 'applied on this instance; Redis is unreachable, so it is queued (0 waiting)'.
  test('a revalidation sent, then a failed merge of one the full outbox took out: not said to be queued', async () => {
    let up = false
    const { clock, engine, log, sync } = setup(
      (argv, kind) =>
        kind !== 'write'
          ? null
          : !up
            ? new Error('connection reset')
            : mentions(argv, 'first')
              ? replyError('OOM command not allowed')
              : null,
      { config: { outboxCapacity: 1 } },
    )
    await sync.update(['first'], undefined, T0)
    await sync.update(['second'], undefined, T0 + 1)
    assert.equal(engine.outboxDropped, 1)
    up = true
    clock.t += 10_000
    const from = log.lines.length
    await sync.update(['third'], undefined, clock.now())
    // Third took second out of the full queue (capacity 1), and went out itself.
    assert.equal(engine.outboxLength, 0, 'third was sent')
    assert.ok(engine.resendLength > 0, "first's record still waits")
    const lines = log.lines.slice(from)
    assert.ok(!lines.some((l) => /revalidation of third .*queued/.test(l)), lines.join('\n'))
  })

  /**
   * A sync following by push and caught up, whose wall clock is its clock plus `apart.by`
   * (a step of the wall clock is a change of `apart.by`); `f.reads()` counts its pulls.
   */
  async function caughtUpByPushWithWall() {
    const ch = fakeChannel()
    const timer = fakeTimer()
    const apart = { by: 0 }
    const f = setup(
      (_, kind) =>
        kind !== 'read'
          ? null
          : f.engine.tagsSynced
            ? netstrings(['e1', '1', 'v1', '0', '0', ''])
            : SYNCED,
      {
        timer,
        push: { subscribe: ch.subscribe, maxPullIntervalMs: 1000 },
        wall: (c) => () => c.t + apart.by,
      },
    )
    Object.assign(f, { ch, timer })
    f.reads = () => f.script.calls.filter((c) => c.kind === 'read').length
    await upAndCaughtUp(f)
    return { f, apart }
  }

  test('following by push, a request after a step of the wall clock (a machine resumed after a pause) pulls first', async () => {
    // The machine paused for 900 ms: Next's clock held still, the wall clock did not. Counted
    // on Next's clock alone, the mirror was caught up, and the request skipped its pull with a
    // mirror older than the bound (docs/decisions/0036).
    const { f, apart } = await caughtUpByPushWithWall()
    const reads = f.reads()
    f.clock.t += 1
    await f.sync.refresh()
    assert.equal(f.reads(), reads, 'caught up: no pull')
    apart.by = 900
    f.clock.t += 1
    await f.sync.refresh()
    assert.equal(f.reads(), reads + 1, 'the step asks for a pull')
    assert.equal(f.engine.tagsCaughtUp(f.clock.t), true, 'caught up again by it')
    await f.sync.stop()
  })

  test('following by push, a pause past the slack after drift the filter left untold pulls first', async () => {
    // The clocks drifted apart by just under the filter (the core's number, read once): no
    // call into wasm. Then a pause of 12 ms the other way: told, the distance moved 7.1 ms,
    // within the engine's 10 ms slack, and before the engine accounted for the filter the
    // mirror stayed caught up, 12 ms older than the bound (docs/decisions/0036).
    const { f, apart } = await caughtUpByPushWithWall()
    const note = f.engine.clockNoteMs
    assert.equal(note, 5, "the host's filter is the core's")
    const reads = f.reads()
    apart.by = -(note - 0.1)
    f.clock.t += 1
    await f.sync.refresh()
    assert.equal(f.reads(), reads, 'drift within the filter: no pull')
    apart.by += 12
    f.clock.t += 1
    await f.sync.refresh()
    assert.equal(f.reads(), reads + 1, 'the pause asks for a pull')
    await f.sync.stop()
  })

  test('following by push, pauses within the filter told by writes add up: past the slack, a request pulls first', async () => {
    // Three pauses of 4 ms since the pull, each told the engine by a write's start (which hands
    // it both clocks unfiltered, as \`WriteMachine\` does): each moved the distance by less than
    // the engine's threshold from the one before. The mirror is 12 ms older than the bound
    // counts, past the slack: a request must pull (docs/decisions/0036).
    const { f, apart } = await caughtUpByPushWithWall()
    const reads = f.reads()
    for (let i = 0; i < 3; i++) {
      apart.by += 4
      f.clock.t += 1
      const wall = f.clock.t + apart.by
      f.engine.noteClocks(f.clock.t, wall)
      f.sync.clocksTold(f.clock.t, wall)
    }
    f.clock.t += 1
    await f.sync.refresh()
    assert.equal(f.reads(), reads + 1, 'paused 12 ms in all since the pull: a pull')
    await f.sync.stop()
  })

  test('following by push, an hour of requests on a clock NTP slews at 500 ppm pulls no more than the periodic pull', async () => {
    // The cost of taking a told move of the clocks' distance past the slack less the filter as
    // a step: drift alone must not make one where the periodic pull (every 800 ms) tells the
    // engine both clocks. A request every 100 ms for an hour, the wall clock drifting from this
    // one by 500 ppm either way.
    for (const ppm of [500, -500]) {
      const { f, apart } = await caughtUpByPushWithWall()
      let due = f.clock.t + 800
      const set = f.timer.set
      f.timer.set = (fn, ms) => {
        due = f.clock.t + ms
        return set(fn, ms)
      }
      let byRequests = 0
      for (let ms = 0; ms < 3_600_000; ms += 100) {
        f.clock.t += 100
        apart.by += (100 * ppm) / 1e6
        if (f.clock.t >= due && f.timer.pending.length > 0) {
          f.timer.fire()
          for (let i = 0; i < 4; i++) await settle()
        }
        const before = f.reads()
        await f.sync.refresh()
        byRequests += f.reads() - before
      }
      assert.equal(byRequests, 0, `pulls by requests at ${ppm} ppm`)
      await f.sync.stop()
    }
  })

  test('following by push, a pause after a pull saw the wall clock stepped back pulls first', async () => {
    // The distance the request compares against must be the one the engine last saw: a pull
    // (its timer's) told the engine the wall clock was stepped back 5 s; a pause of 5 s then
    // brought the clocks back to where the last request found them. The engine takes that as
    // a step (0036), but only if it is told: a request comparing against its own last reading
    // finds nothing moved and skips both the call and the pull.
    const { f, apart } = await caughtUpByPushWithWall()
    f.clock.t += 1
    await f.sync.refresh()
    // The wall clock stepped back 5 s; the periodic pull sees it and catches up.
    apart.by = -5000
    f.clock.t += 900
    const before = f.reads()
    f.timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(f.reads(), before + 1, 'the periodic pull')
    assert.equal(f.engine.tagsCaughtUp(f.clock.t), true, 'caught up by it')
    // Paused 5 s: Next's clock held still, the wall clock moved on.
    apart.by = 0
    f.clock.t += 1
    const reads = f.reads()
    await f.sync.refresh()
    assert.equal(f.reads(), reads + 1, 'the step asks for a pull')
    await f.sync.stop()
  })

  test('a process clock a second or more from the wall clock is logged, at most once a minute', async () => {
    const clockLines = (log) => log.lines.filter((l) => l.includes('wall clock'))
    // Behind by 5 s: a step of the wall clock after the process started.
    const apart = { by: 5000 }
    const { clock, log, sync } = setup(() => SYNCED, { wall: (c) => () => c.t + apart.by })
    await sync.refresh()
    assert.equal(clockLines(log).length, 1)
    assert.match(clockLines(log)[0], /^warn .* 5\.0 s behind the wall clock/)
    await sync.refresh()
    await sync.update(['t'], undefined, clock.t)
    assert.equal(clockLines(log).length, 1, 'not again within the minute')
    // A minute of wall clock later.
    clock.t += 67_500
    apart.by = -2500
    await sync.update(['t'], undefined, clock.t)
    assert.equal(clockLines(log).length, 2, 'a revalidation checks too')
    assert.match(clockLines(log)[1], /2\.5 s ahead of the wall clock/)
    // Within the second: nothing, however often.
    const near = setup(() => SYNCED, { wall: (c) => () => c.t + 999 })
    for (let i = 0; i < 3; i++) {
      await near.sync.refresh()
      near.clock.t += 60_000
    }
    assert.deepEqual(clockLines(near.log), [])
  })

  test('a retry that joins a pull in flight which then fails is armed again, and pulls once', async () => {
    const timer = fakeTimer()
    const req = fakeRequests()
    // Each read waits for the test: `answer(reply)` settles the oldest.
    const waiting = []
    const answer = (reply) => waiting.shift()(reply)
    const { clock, script, sync } = setup(
      (_, kind) => (kind === 'read' ? new Promise((r) => waiting.push(r)) : null),
      { timer, request: req.get },
    )
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    req.current = {}
    const loaded = sync.refresh()
    answer(SYNCED)
    await loaded
    // A request's pull fails: the retry is armed (the plain 1 s, the breaker closed).
    req.current = {}
    const failed = sync.refresh()
    answer(new Error('lost'))
    await failed
    assert.equal(timer.pending.length, 1, 'the retry')
    // Another request's pull goes out and hangs past the retry's time.
    req.current = {}
    const hanging = sync.refresh()
    await settle()
    assert.equal(reads(), 3)
    clock.t += timer.pending[0].ms
    timer.fire()
    await settle()
    assert.equal(reads(), 3, 'the retry joined the pull out')
    // That pull fails: the retry it stood for is owed again, on the one timer.
    answer(new Error('lost'))
    await hanging
    await settle()
    assert.equal(timer.pending.length, 1, 'armed again')
    clock.t += timer.pending[0].ms
    timer.fire()
    await settle()
    assert.equal(reads(), 4, 'one pull for it')
    answer(SYNCED)
    await settle()
    await settle()
    assert.equal(timer.pending.length, 0, 'Redis answers: nothing left to retry')
  })

  test('a pull that succeeds disarms the retry a failed pull armed: no pull more per recovery', async () => {
    const timer = fakeTimer()
    let fail = false
    const { clock, script, sync } = setup(
      (_, kind) => (kind !== 'read' ? null : fail ? new Error('lost') : SYNCED),
      { timer },
    )
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    await sync.refresh()
    for (let round = 1; round <= 3; round++) {
      // Redis goes away: a request's pull fails, and the retry is armed for it.
      fail = true
      await sync.refresh()
      assert.equal(timer.pending.length, 1, 'the retry')
      const due = clock.t + timer.pending[0].ms
      // Redis is back: a request's pull succeeds before the retry's time.
      fail = false
      clock.t += 10
      await sync.refresh()
      const after = reads()
      clock.t = due
      timer.fire()
      for (let i = 0; i < 4; i++) await settle()
      assert.equal(reads(), after, `round ${String(round)}: no pull but the requests'`)
      assert.deepEqual(timer.pending, [], 'nothing left to retry')
    }
    assert.equal(reads(), 1 + 3 * 2)
  })

  test('a retry armed only for a revalidation to send sends it and pulls nothing', async () => {
    const timer = fakeTimer()
    let sendFails = true
    const { clock, engine, script, sync } = setup(
      (_, kind) => (kind === 'read' ? SYNCED : sendFails ? new Error('lost') : null),
      { timer },
    )
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    await sync.refresh()
    await sync.update(['t'], undefined, clock.t)
    assert.equal(engine.outboxLength, 1)
    assert.equal(timer.pending.length, 1, 'the retry')
    const before = reads()
    const sent = updates(script).length
    sendFails = false
    clock.t += timer.pending[0].ms
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(updates(script).length, sent + 1, 'sent')
    assert.equal(engine.outboxLength, 0)
    assert.equal(reads(), before, 'the tag state had nothing to pull')
    assert.deepEqual(timer.pending, [])
  })

  test('a retry that only sent, its update reaching another state, pulls after it', async () => {
    // A failover or a flush: only a pull compares the new state with the mirror and gives
    // back what it lost, and an idle process has no request to pull.
    const timer = fakeTimer()
    let sendFails = true
    // Redis answers again as a new state, e2.
    const e2 = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
    const { clock, engine, script, sync } = setup(
      (_, kind) =>
        kind === 'read'
          ? sendFails
            ? SYNCED
            : e2
          : sendFails
            ? new Error('lost')
            : netstrings(['e2', '1', 'v1', '0']),
      { timer },
    )
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    await sync.refresh()
    await sync.update(['t'], undefined, clock.t)
    const before = reads()
    sendFails = false
    clock.t += timer.pending[0].ms
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(engine.outboxLength, 0, 'sent')
    assert.equal(reads(), before, 'no pull with the send')
    assert.equal(timer.pending.length, 1, 'the retry, for the pull')
    clock.t += timer.pending[0].ms
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 1)
    assert.deepEqual(timer.pending, [])
  })

  test("a request's revalidation whose send reaches another state pulls after it, with no request", async () => {
    // The send that finds a failover or a flush is the request's own (or the drain a reply's
    // backlog signal starts), not the retry's: the pull it owes must not wait for the next
    // request either.
    const timer = fakeTimer()
    const e2 = netstrings(['e2', '1', 'v1', '1', '0', '', '0'])
    let failedOver = false
    const { clock, engine, script, sync } = setup(
      (_, kind) =>
        kind === 'read'
          ? failedOver
            ? e2
            : SYNCED
          : failedOver
            ? netstrings(['e2', '1', 'v1', '0'])
            : null,
      { timer },
    )
    const reads = () => script.calls.filter((c) => c.kind === 'read').length
    await sync.refresh()
    failedOver = true
    await sync.update(['t'], undefined, clock.t)
    await settle()
    assert.equal(engine.outboxLength, 0, 'sent')
    const before = reads()
    assert.equal(timer.pending.length, 1, 'the retry, for the pull the send owes')
    clock.t += timer.pending[0].ms
    timer.fire()
    for (let i = 0; i < 4; i++) await settle()
    assert.equal(reads(), before + 1, 'one pull')
    assert.deepEqual(timer.pending, [])
  })

  test('stop cancels the one timer', async () => {
    const timer = fakeTimer()
    const { sync } = setup(() => new Error('connection reset'), { timer })
    await sync.refresh()
    assert.equal(timer.pending.length, 1)
    sync.stop()
    assert.equal(timer.pending.length, 0)
  })
})
