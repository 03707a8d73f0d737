// Redis failures and hostile data against a real redis-server: deadlines,
// the circuit breaker, reconnection, the revalidation outbox, and bad values, tags and settings.
// The test starts, stops, kills and pauses only the redis-server processes it started, by PID.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, afterEach, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import {
  createIncrementalCacheHandler,
  createUseCacheHandler,
  ConfigError,
  close,
  stats,
} from '../esm/index.mjs'
import { redisCommand, startRedis, startRedisOnPort } from '../../tests/support/redis.mjs'
import { freePort } from '../../tests/support/ports.mjs'
import { waitForExit } from '../../tests/support/util.mjs'
import { now, resumeAndStop, text, transportOn, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')
const { engineStats } = require('../dist/stats-sum.js')
const { createClient, RESP_TYPES } = require('redis')

let logDir
let redis

// Captures fleetcache's log lines (it logs through console) for assertions.
const lines = []
const originals = {}
before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-faults-js-'))
  redis = await startRedis({ logDir })
  for (const level of ['log', 'warn', 'error']) {
    originals[level] = console[level]
    console[level] = (...args) => {
      const text = args.join(' ')
      if (text.startsWith('[fleetcache]')) lines.push(text)
      else originals[level](...args)
    }
  }
})

// Every handler a test made closes with it: one left open keeps working after its test (a
// breaker's probe, an outbox replay, reconnecting to an address nobody serves and logging that
// every 10 s), and its lines land in whichever test runs then.
afterEach(() => close())

after(async () => {
  await close()
  await resumeAndStop(redis)
  Object.assign(console, originals)
})

function logged(re) {
  return lines.filter((l) => re.test(l))
}

let seq = 0
// A handler with its own runtime (engine, connection): the odd setting keeps runtimes apart.
function instance(extra = {}) {
  seq += 1
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'faults',
    deploymentId: 'd1',
    maxTtlSeconds: 30 * 24 * 3600 - seq,
    // These tests look at Redis itself (values written or broken behind the handler's back,
    // outages): the in-process tier and leases are off; test/single-flight.test.mjs covers them.
    memoryBytes: 0,
    leases: false,
    ...extra,
  })
}

const entry = (value, over = {}) =>
  useCacheEntry(value, { tags: ['products'], revalidate: 60, ...over })

/**
 * Error and warning lines from now on, in order (`loud`), still printed; `restore()` stops
 * collecting them.
 */
function loudLines() {
  const loud = []
  const capturing = { error: console.error, warn: console.warn }
  for (const level of ['error', 'warn']) {
    console[level] = (...args) => {
      loud.push(args.join(' '))
      capturing[level](...args)
    }
  }
  return { loud, restore: () => Object.assign(console, capturing) }
}

/** The resolution of `timed`'s event-loop delay samples, in ms. */
const LOOP_SAMPLE_MS = 10

/**
 * Runs `fn`; `ms` is how long it took less the longest stall of this process's event loop
 * meanwhile (a busy machine not scheduling the process, a GC pause): a deadline timer fires
 * that much late through no fault of the code under test, so bounds on `ms` hold under load.
 * `late` is every sample's lateness summed: how long the loop was kept from running in all,
 * the slack a bound on `wall` allows over a configured budget (`withinBudget`).
 */
async function timed(fn) {
  const stalls = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS })
  stalls.enable()
  const t0 = performance.now()
  try {
    const value = await fn()
    const wall = performance.now() - t0
    stalls.disable()
    // The histogram's values are the timer's lateness in ns, plus its own resolution.
    const stall = stalls.count > 0 ? stalls.max / 1e6 : 0
    const late =
      stalls.count > 0 ? Math.max(0, stalls.mean / 1e6 - LOOP_SAMPLE_MS) * stalls.count : 0
    return { value, ms: Math.max(0, wall - stall), wall, late }
  } finally {
    stalls.disable()
  }
}

/**
 * Asserts that what `timed` measured ended within `budget` ms, a configured deadline: the
 * slack is the event loop's measured lateness meanwhile plus one sample's resolution (a
 * deadline timer fires late by what kept the loop busy, and is seen a sample late), never a
 * fixed allowance; on an idle machine the bound is the budget itself.
 */
function withinBudget(t, budget, what) {
  const limit = budget + t.late + LOOP_SAMPLE_MS
  assert.ok(
    t.wall <= limit,
    `${what} took ${t.wall.toFixed(0)} ms, past its ${String(budget)} ms budget plus ` +
      `${(t.late + LOOP_SAMPLE_MS).toFixed(0)} ms the event loop was late`,
  )
}

/**
 * What `promise` resolves to, or a failure naming `what` once `ms` passed without it settling:
 * a bound that ends a test whose call waits for a Redis that never answers.
 */
async function within(ms, promise, what) {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new assert.AssertionError({ message: `${what} did not settle within ${String(ms)} ms` }),
      )
    }, ms)
  })
  try {
    return await Promise.race([promise, limit])
  } finally {
    clearTimeout(timer)
  }
}

// Waits until fn() resolves truthy, at most timeoutMs, polling every 50 ms.
async function eventually(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await fn()) return
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`)
    await sleep(50)
  }
}

async function hit(h, key) {
  const got = await h.get(key, [])
  return got === undefined ? undefined : text(got.value)
}

const FAST = {
  readTimeoutMs: 200,
  writeTimeoutMs: 300,
  connectTimeoutMs: 500,
  breakerFailures: 3,
  breakerOpenMs: 300,
  breakerMaxOpenMs: 600,
}

/**
 * FAST with command and connect budgets far above any round trip, for the tests whose Redis
 * answers (an error reply, a killed connection) or refuses connections, which fails at once:
 * no budget runs out in them, and under load a short one ran out while Redis was up.
 */
const ROOMY = { ...FAST, readTimeoutMs: 10_000, writeTimeoutMs: 10_000, connectTimeoutMs: 10_000 }

describe('Redis hangs (SIGSTOP)', () => {
  test('reads give up at their budget, the breaker stops the waiting, and recovery is automatic', async () => {
    const h = instance(FAST)
    // The same outage seen by an instance whose read budget is so long that a read waiting on
    // Redis would be unmistakable, and whose breaker, once open, stays open (no probe) for the
    // rest of the test: it opens on writes, which time out at FAST's budget.
    const slow = instance({
      ...FAST,
      readTimeoutMs: 60_000,
      breakerOpenMs: 3_600_000,
      breakerMaxOpenMs: 3_600_000,
    })
    await h.set('hang-k', Promise.resolve(entry('before')))
    assert.equal(await hit(h, 'hang-k'), 'before')
    await slow.set('hang-k', Promise.resolve(entry('before')))
    assert.equal(await hit(slow, 'hang-k'), 'before')
    // Every command `slow` hands to the Redis client, past its breaker.
    const inner = slow.rt.transport.inner
    const send = inner.send.bind(inner)
    let sent = 0
    inner.send = (...args) => {
      sent += 1
      return send(...args)
    }
    const breaker = () => engineStats(slow.rt.engine).breaker
    const commands = () => engineStats(h.rt.engine).redis
    const ended = commands()
    process.kill(redis.pid, 'SIGSTOP')
    try {
      // Each failing read gives up at its deadline, a miss, until the breaker opens. Redis is
      // paused until the end of this block, so a read that waited for it would not settle at
      // all: the limit, 50 times the 200 ms budget, only ends such a test, and no load on the
      // machine comes near it. That the deadline ended the reads is the engine's count.
      for (let i = 0; i < 3; i++) {
        assert.equal(await within(10_000, h.get('hang-k', []), `read ${String(i)}`), undefined)
      }
      assert.ok(logged(/circuit open/).length >= 1, 'the breaker opening is logged')
      const now = commands()
      assert.ok(
        now.timeouts - ended.timeouts >= FAST.breakerFailures,
        `commands abandoned at their deadline: ${JSON.stringify({ ended, now })}`,
      )
      assert.deepEqual(
        [now.ok, now.connectionErrors, now.replyErrors],
        [ended.ok, ended.connectionErrors, ended.replyErrors],
        'every command sent while Redis was paused timed out',
      )
      for (let i = 0; i < FAST.breakerFailures; i++) {
        await slow.set(`hang-w${String(i)}`, Promise.resolve(entry('w')))
      }
      await eventually(() => breaker().state === 'open', 5000, "slow's breaker opens")
      // Open: nothing goes to Redis, and nothing waits for its 60 s read budget.
      const before = { sent, rejected: breaker().rejected }
      for (let i = 0; i < 20; i++) {
        const { value, wall } = await timed(() => slow.get('hang-k', []))
        assert.equal(value, undefined)
        assert.ok(wall < 30_000, `read with an open breaker took ${wall.toFixed(0)} ms`)
      }
      const { wall } = await timed(() => slow.refreshTags())
      assert.ok(wall < 30_000, `refreshTags with an open breaker took ${wall.toFixed(0)} ms`)
      assert.equal(sent - before.sent, 0, 'commands sent to Redis with the breaker open')
      assert.ok(breaker().rejected - before.rejected >= 21, 'each read and the refresh refused')
      assert.equal(breaker().state, 'open')
    } finally {
      process.kill(redis.pid, 'SIGCONT')
    }
    // The next probe (after at most breakerMaxOpenMs) closes the breaker; hits resume.
    await eventually(async () => (await hit(h, 'hang-k')) === 'before', 3000, 'hits resume')
    assert.ok(logged(/circuit closed/).length >= 1, 'the recovery is logged')
  })

  test('an outage logs its opening and its closing once, however many probes fail', async () => {
    // A Redis of its own: only this handler sees the hang, so every line and timeout is its.
    const own = await startRedis({ logDir })
    // A connect budget that keeps the connection from being given up during these outages
    // (3 s and more with FAST's; hung-connection.test.mjs): the probes here time out on it.
    const h = instance({ ...FAST, connectTimeoutMs: 10_000, redisUrl: own.url, debug: true })
    const { loud, restore } = loudLines()
    const from = lines.length
    const since = (re) => lines.slice(from).filter((l) => re.test(l))
    const errorLines = (re) => loud.filter((l) => re.test(l))
    const breaker = () => engineStats(h.rt.engine).breaker
    /**
     * `send()` as the breaker's probe: called once the breaker's open time is up, in the same
     * turn, before the instance's own timer can send its tag refresh as the probe (a timer
     * cannot fire while this loop runs).
     */
    const asProbe = (send) => {
      for (;;) if (breaker().state === 'half-open') return send()
    }
    // One outage: two reads and a tag refresh time out, the third failure opens the breaker;
    // then probes fail, the instance's own (tag refreshes on its timer) and, with `requests`,
    // a read's and a write's, until Redis answers again.
    const outage = async ({ requests }) => {
      const timeouts = stats().redis.timeouts
      process.kill(own.pid, 'SIGSTOP')
      const leading = loud.length
      for (let i = 0; i < FAST.breakerFailures - 1; i++) {
        assert.equal(await h.get('o-k', []), undefined)
      }
      await h.refreshTags()
      assert.equal(breaker().state, 'open')
      // The failures that opened it, the breaker closed when each was sent, are errors.
      const opening = loud.slice(leading)
      assert.equal(
        opening.filter((l) => /get failed, treated as a miss: .*\(timeout\)/.test(l)).length,
        FAST.breakerFailures - 1,
        `each read that failed before the opening is an error line:\n${opening.join('\n')}`,
      )
      assert.equal(
        opening.filter((l) => /tag refresh failed, using the last known tag state/.test(l)).length,
        1,
        `the tag refresh that opened it is an error line:\n${opening.join('\n')}`,
      )
      const opened = loud.length
      let probes = 2
      if (requests) {
        assert.equal(await asProbe(() => h.get('o-k', [])), undefined)
        await asProbe(() => h.set('o-w', Promise.resolve(entry('w'))))
        probes += 2
      }
      // Two more probes, the instance's own: tag refreshes on its timer.
      await eventually(
        () => stats().redis.timeouts >= timeouts + FAST.breakerFailures + probes,
        5000,
        `${String(probes)} probes failed`,
      )
      const closings = since(/circuit closed/).length
      process.kill(own.pid, 'SIGCONT')
      await eventually(() => since(/circuit closed/).length > closings, 3000, 'the breaker closes')
      // Between the opening and the closing, failed probes are debug lines only.
      assert.deepEqual(
        loud.slice(opened),
        [],
        `error or warning lines while the breaker was open:\n${lines.slice(from).join('\n')}`,
      )
    }
    try {
      await h.set('o-k', Promise.resolve(entry('v')))
      assert.equal(await hit(h, 'o-k'), 'v')
      await outage({ requests: false })
      const opened = errorLines(/circuit open/)
      assert.equal(opened.length, 1, `one error line for the opening:\n${loud.join('\n')}`)
      assert.match(opened[0], /\(opened once so far\)/)
      assert.ok(
        since(/circuit stays open/).length >= 2,
        `each failed probe is a debug line:\n${lines.slice(from).join('\n')}`,
      )
      assert.ok(
        since(/tag refresh failed as the breaker's probe: ERR_REDIS_TIMEOUT/).length >= 2,
        `the timer's probes are the tag refreshes:\n${lines.slice(from).join('\n')}`,
      )
      assert.equal(since(/circuit closed/).length, 1)
      // The next outage is the second: failed probes are not counted as openings. A read's
      // and a write's probe fail in it too.
      const stays = since(/circuit stays open/).length
      await outage({ requests: true })
      assert.deepEqual(
        errorLines(/circuit open/).map((l) => /\(opened ([^)]*) so far\)/.exec(l)?.[1]),
        ['once', '2 times'],
      )
      const probeLines = lines.slice(from).join('\n')
      assert.ok(since(/circuit stays open/).length >= stays + 4, probeLines)
      assert.equal(
        since(/get failed, treated as a miss: .*\(timeout\).*\(the breaker's probe\)/).length,
        1,
        `the read's probe is a debug line:\n${probeLines}`,
      )
      assert.equal(
        since(/set failed, entry not stored: ERR_REDIS_TIMEOUT.*\(the breaker's probe\)/).length,
        1,
        `the write's probe is a debug line:\n${probeLines}`,
      )
      assert.equal(since(/circuit closed/).length, 2)
    } finally {
      restore()
      process.kill(own.pid, 'SIGCONT')
      // Closed before its Redis goes, so it does not log reconnection errors into later tests.
      await close()
      await own.stop()
    }
  })
})

describe('Redis dies and comes back', () => {
  test('SIGKILL, restart on the same port: reconnects, hits resume, no crash', async () => {
    const h = instance(FAST)
    await h.set('kill-k', Promise.resolve(entry('v1')))
    assert.equal(await hit(h, 'kill-k'), 'v1')
    const port = redis.port
    process.kill(redis.pid, 'SIGKILL')
    assert.ok(await waitForExit(redis.child, 10_000), 'redis-server gone')
    // Refused at once by the kernel, or at worst the budgets of a connection and a read.
    for (let i = 0; i < 10; i++) {
      const read = await timed(() => h.get('kill-k', []))
      assert.equal(read.value, undefined)
      withinBudget(read, FAST.connectTimeoutMs + FAST.readTimeoutMs, 'a read against a dead Redis')
    }
    // Writes are skipped, not queued, and do not throw.
    await h.set('kill-k2', Promise.resolve(entry('lost')))
    redis = await startRedisOnPort({ port, logDir })
    // An empty Redis: write again once it is back, then read it.
    await eventually(
      async () => {
        await h.set('kill-k', Promise.resolve(entry('v2')))
        return (await hit(h, 'kill-k')) === 'v2'
      },
      5000,
      'writes and hits resume after the restart',
    )
  })

  // docs/failures.md, "What happens", the row of a Redis refusing connections: with the
  // in-process tier on (the default), a read serves this process's copy at once, while the
  // breaker is still closed. A write that could not be stored is kept as this process's own,
  // which serves only while the breaker is open: a read while it is closed drops it and asks
  // Redis, a miss when that fails ("What an instance made while Redis was down is its own").
  test('refused connections, the breaker closed: a read serves the tier copy; an unstored write does not serve', async () => {
    const h = instance({
      ...FAST,
      memoryBytes: 1 << 20,
      breakerFailures: 1000,
      breakerMinCalls: 1000,
    })
    await h.refreshTags()
    await h.set('refused-k', Promise.resolve(entry('v1')))
    assert.equal(await hit(h, 'refused-k'), 'v1')
    const opened = logged(/redis circuit open/).length
    const port = redis.port
    process.kill(redis.pid, 'SIGKILL')
    assert.ok(await waitForExit(redis.child, 10_000), 'redis-server gone')
    try {
      const read = await timed(() => hit(h, 'refused-k'))
      assert.equal(read.value, 'v1', "this process's copy, not a miss")
      withinBudget(read, FAST.connectTimeoutMs + FAST.readTimeoutMs, 'a read against a dead Redis')
      await h.set('refused-k', Promise.resolve(entry('v2')))
      assert.equal(await hit(h, 'refused-k'), undefined, 'the unstored write is dropped, a miss')
      assert.equal(logged(/redis circuit open/).length, opened, 'the breaker stayed closed')
    } finally {
      redis = await startRedisOnPort({ port, logDir })
    }
  })

  test('a Redis that is gone: probes that fail for want of a connection add no error or warning line', async () => {
    // A Redis of its own, killed and started again on its port.
    let own = await startRedis({ logDir })
    const port = own.port
    const h = instance({ ...ROOMY, redisUrl: own.url, debug: true })
    const { loud, restore } = loudLines()
    const from = lines.length
    const since = (re) => lines.slice(from).filter((l) => re.test(l))
    const breaker = () => engineStats(h.rt.engine).breaker
    try {
      await h.set('gone-k', Promise.resolve(entry('v')))
      assert.equal(await hit(h, 'gone-k'), 'v')
      process.kill(own.pid, 'SIGKILL')
      assert.ok(await waitForExit(own.child, 10_000), 'redis-server gone')
      // Reads fail at once, for want of a connection, until the breaker opens.
      await eventually(
        async () => {
          assert.equal(await h.get('gone-k', []), undefined)
          return breaker().state !== 'closed'
        },
        5000,
        'the breaker opens',
      )
      const opened = loud.length
      const failed = since(/circuit stays open after a failure of the probe/).length
      await eventually(
        () => since(/circuit stays open after a failure of the probe/).length >= failed + 2,
        5000,
        'two probes failed',
      )
      own = await startRedisOnPort({ port, logDir })
      await eventually(() => since(/circuit closed/).length > 0, 5000, 'the breaker closes')
      // The connection's own line (at most one per 10 s) is not a probe's.
      assert.deepEqual(
        loud.slice(opened).filter((l) => !/redis connection: /.test(l)),
        [],
        `error or warning lines while the breaker was open:\n${lines.slice(from).join('\n')}`,
      )
      assert.ok(
        since(/tag refresh failed as the breaker's probe: /).length >= 2,
        lines.slice(from).join('\n'),
      )
    } finally {
      restore()
      await close()
      await own.stop()
    }
  })

  test('a read whose GET is the failed probe logs only that failure at debug, not what else its answer found wrong', async () => {
    // A Redis of its own, paused: the GET times out.
    const own = await startRedis({ logDir })
    seq += 1
    const opts = {
      ...FAST,
      // The connection is not given up during this outage (hung-connection.test.mjs).
      connectTimeoutMs: 10_000,
      redisUrl: own.url,
      prefix: 'faults-inc',
      deploymentId: 'd1',
      maxTtlSeconds: 30 * 24 * 3600 - seq,
      // The tier on: it holds the route's copy, which the read below judges before its GET.
      memoryBytes: 1 << 20,
      leases: false,
      // Following by push, caught up: a read sends no tag pull of its own, so its GET is the
      // command the breaker lets through as its probe.
      tagSync: 'push',
      debug: true,
    }
    const Inc = createIncrementalCacheHandler(opts)
    const inc = () => new Inc({ dev: false, revalidatedTags: [] })
    // The same options: the same runtime, whose engine tells the breaker's state.
    const uc = createUseCacheHandler(opts)
    const engine = uc.rt.engine
    const breaker = () => engineStats(engine).breaker
    const asProbe = (send) => {
      for (;;) if (breaker().state === 'half-open') return send()
    }
    const { loud, restore } = loudLines()
    const from = lines.length
    const since = (re) => lines.slice(from).filter((l) => re.test(l))
    try {
      const route = {
        kind: 'APP_ROUTE',
        body: Buffer.from('route body'),
        status: 200,
        headers: { 'content-type': 'text/plain' },
      }
      const ctx = { kind: 'APP_ROUTE', isRoutePPREnabled: false, isFallback: false }
      // Until it is there: on a loaded machine FAST's budgets can run out while Redis answers.
      await eventually(
        async () => {
          await inc().set('/r', route, { ...ctx, cacheControl: { revalidate: 60, expire: 3600 } })
          return (await inc().get('/r', ctx))?.value.kind === 'APP_ROUTE'
        },
        10_000,
        'the route cached',
      )
      await eventually(() => engine.tagsCaughtUp(now()), 5000, 'caught up by push')
      // Caught up lasts a pull interval (1 s) from the last pull's start: paused just after the
      // instance's own periodic pull (the only command now) answered, the probe below comes
      // within about a read budget and the breaker's open time of it.
      const ok = engineStats(engine).redis.ok
      await eventually(() => engineStats(engine).redis.ok > ok, 5000, 'a periodic pull')
      process.kill(own.pid, 'SIGSTOP')
      // Reads of keys of their own, at once: each one's command times out, and the breaker opens.
      const reads = Array.from({ length: FAST.breakerFailures }, (_, i) =>
        inc().get(`/other-${String(i)}`, ctx),
      )
      assert.deepEqual(
        await Promise.all(reads),
        reads.map(() => null),
      )
      assert.equal(breaker().state, 'open')
      assert.ok(engine.tagsCaughtUp(now()), 'still caught up: no read sends a tag pull')
      const opened = loud.length
      // Read as a FETCH, the route's copy this process holds is of another kind: a line of its
      // own, whatever became of the GET that followed, which is the breaker's probe and fails.
      const fetchCtx = { kind: 'FETCH', revalidate: 60, tags: [], softTags: [] }
      assert.equal(await asProbe(() => inc().get('/r', fetchCtx)), null)
      const probe = lines.slice(from).join('\n')
      assert.equal(
        since(/inc get failed, treated as a miss: redis read of .* \(the breaker's probe\)$/)
          .length,
        1,
        `the probe's failure is a debug line:\n${probe}`,
      )
      assert.deepEqual(
        loud.slice(opened).map((l) => /has value kind \d+, read as FETCH: miss$/.test(l)),
        [true],
        `the kind mismatch is an error line, and it alone:\n${probe}`,
      )
    } finally {
      restore()
      process.kill(own.pid, 'SIGCONT')
      await close()
      await own.stop()
    }
  })

  test('CLIENT KILL: the connection heals itself', async () => {
    const h = instance(ROOMY)
    await h.set('ck-k', Promise.resolve(entry('x')))
    assert.equal(await hit(h, 'ck-k'), 'x')
    await redisCommand(redis.port, ['CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'])
    await eventually(async () => (await hit(h, 'ck-k')) === 'x', 3000, 'hits after CLIENT KILL')
  })

  test('a dead address: the first read waits at most the connect budget, later ones not at all', async () => {
    const port = await freePort()
    const connectTimeoutMs = 400
    const h = createUseCacheHandler({
      redisUrl: `redis://127.0.0.1:${port}`,
      prefix: 'faults',
      connectTimeoutMs,
      breakerFailures: 2,
      // Once open, it stays open for the test: no probe is sent.
      breakerOpenMs: 3_600_000,
      breakerMaxOpenMs: 3_600_000,
    })
    const first = await timed(() => h.get('k', []))
    assert.equal(first.value, undefined)
    withinBudget(first, connectTimeoutMs, 'the first read')
    // Then the breaker is open: what follows is refused before it reaches the Redis client (the
    // client's count says so), and at once: all of it together ends within the one connect
    // budget a single wait would take (a refusal that waited, for a connection or a timer,
    // reaches no client and would pass the count alone).
    await h.get('k', [])
    assert.equal(engineStats(h.rt.engine).breaker.state, 'open')
    const inner = h.rt.transport.inner
    const send = inner.send.bind(inner)
    let sent = 0
    inner.send = (...args) => {
      sent += 1
      return send(...args)
    }
    const rest = await timed(async () => {
      for (let i = 0; i < 50; i++) await h.get('k', [])
      await h.set('k', Promise.resolve(entry('nowhere')))
      await h.refreshTags()
    })
    withinBudget(rest, connectTimeoutMs, '50 reads, a write and a refresh with the breaker open')
    assert.equal(engineStats(h.rt.engine).breaker.state, 'open')
    assert.equal(sent, 0, 'commands handed to the Redis client with the breaker open')
  })

  test('a refused connection is a miss at once, logged as refused, not as a connect timeout', async () => {
    // Nobody listens on the port: the kernel refuses the connection immediately. A 5 s connect
    // budget is what the defect cost (the first read waited all of it); a read that ends in
    // under half of it did not wait for the budget.
    const port = await freePort()
    const h = createUseCacheHandler({
      redisUrl: `redis://127.0.0.1:${port}`,
      prefix: 'refused',
      connectTimeoutMs: 5000,
    })
    const before = lines.length
    const first = await timed(async () => {
      const got = await h.get('k', [])
      await h.refreshTags()
      return got
    })
    assert.equal(first.value, undefined)
    assert.ok(first.ms < 2500, `a refused connection cost the first read ${first.ms.toFixed(0)} ms`)
    const said = lines.slice(before).join('\n')
    assert.match(said, /ECONNREFUSED/)
    assert.doesNotMatch(said, /redis connect took longer/)
  })

  test('a tag refresh that fails before any tag state was loaded says none was, not that it uses the last known', async () => {
    // Nobody listens from the start: there never was a tag state to fall back on, and until
    // one is loaded no tagged entry is served (a page's path tags count), but, while the breaker
    // is open, one this process made since it started.
    const port = await freePort()
    const h = createUseCacheHandler({
      redisUrl: `redis://127.0.0.1:${port}`,
      prefix: 'never-loaded',
      connectTimeoutMs: 5000,
    })
    const before = lines.length
    await h.refreshTags()
    const said = lines.slice(before)
    assert.ok(
      said.some((l) =>
        /tag refresh failed before any tag state was loaded: no tagged entry is served until it is \(while the breaker is open, but those this instance made since it started\): .*ECONNREFUSED/.test(
          l,
        ),
      ),
      said.join('\n'),
    )
    assert.ok(!said.some((l) => /using the last known tag state/.test(l)), said.join('\n'))
  })
})

describe('revalidation outbox', () => {
  test('a revalidation during an outage applies locally at once and reaches the fleet after', async () => {
    const a = instance(ROOMY)
    const b = instance(ROOMY)
    await a.set('ob-k', Promise.resolve(entry('old', { tags: ['ob1', 'ob2', 'ob3'] })))
    await b.refreshTags()
    assert.equal(await hit(b, 'ob-k'), 'old')
    const port = redis.port
    process.kill(redis.pid, 'SIGKILL')
    assert.ok(await waitForExit(redis.child, 10_000), 'redis-server gone')
    // Three revalidations in order while Redis is gone: none throws, each is logged.
    const before = logged(/queued/).length
    await a.updateTags(['ob1'])
    await a.updateTags(['ob2'], { expire: 3600 })
    await a.updateTags(['ob3'])
    assert.ok(logged(/queued/).length >= before + 1, 'the deferral is logged')
    // On A at once: the entry is expired.
    const restart = startRedisOnPort({ port, logDir })
    redis = await restart
    // Redis came back empty; put the entry back as another instance would have, with the
    // original timestamp (computed before the revalidations).
    await b.set('ob-k', Promise.resolve(entry('old', { tags: ['ob1'], timestamp: now() - 60_000 })))
    assert.equal(await hit(a, 'ob-k'), undefined, 'A honours its own revalidation')
    // A's next refresh replays the outbox; B then sees every revalidation.
    await eventually(
      async () => {
        await a.refreshTags()
        await b.refreshTags()
        return (await b.getExpiration(['ob1'])) > 0 && (await b.getExpiration(['ob3'])) > 0
      },
      5000,
      'the queued revalidations reach B',
    )
    assert.equal(await hit(b, 'ob-k'), undefined, 'B no longer serves the revalidated entry')
    assert.ok(logged(/sent 3 queued revalidation/).length >= 1, 'the replay is logged')
  })

  test('a revalidation Redis keeps answering with WRONGTYPE is parked on its own, with one line, and later ones reach the fleet', async () => {
    // An operator mistake: the tag log key written as a string. Every tag update script fails
    // at its ZADD with WRONGTYPE, which no retry fixes.
    const prefix = 'wrongtype'
    const log = `${prefix}:tags:{${prefix}}:log`
    const a = instance({ ...ROOMY, prefix })
    const b = instance({ ...ROOMY, prefix })
    await a.refreshTags()
    await b.refreshTags()
    await redisCommand(redis.port, ['SET', log, 'oops'])
    const parkedBefore = stats()?.outbox.parked ?? 0
    const from = lines.length
    await a.updateTags(['wt1'])
    await a.updateTags(['wt2'])
    // Nothing else is called on A: its own timer retries with a backoff, then parks both.
    await eventually(
      () => (stats()?.outbox.parked ?? 0) >= parkedBefore + 2,
      10_000,
      'both revalidations parked without any further call',
    )
    const since = lines.slice(from)
    const parked = since.filter((l) => /revalidation parked: .*WRONGTYPE/.test(l))
    assert.equal(parked.length, 1, `one line for two parked revalidations:\n${since.join('\n')}`)
    assert.ok(
      since.filter((l) => /revalidation not sent to Redis/.test(l)).length <= 1,
      `the failed attempts before it are logged once:\n${since.join('\n')}`,
    )
    // Both still hold on A.
    assert.ok((await a.getExpiration(['wt1'])) > 0 && (await a.getExpiration(['wt2'])) > 0)
    // The operator removes the key: the next revalidation is not stuck behind the parked ones.
    await redisCommand(redis.port, ['DEL', log])
    await a.updateTags(['wt3'])
    await eventually(
      async () => {
        await b.refreshTags()
        return (await b.getExpiration(['wt3'])) > 0
      },
      5000,
      'the revalidation after the parked ones reaches B',
    )
    assert.equal(stats()?.outbox.parked, parkedBefore + 2)
  })

  test('a full outbox takes the oldest revalidations out with one warning and merges them back', async () => {
    const h = instance({ ...FAST, outboxCapacity: 2 })
    const from = lines.length
    // Open the breaker against a paused Redis, then revalidate four times.
    process.kill(redis.pid, 'SIGSTOP')
    try {
      for (let i = 0; i < 3; i++) await h.get('full-k', [])
      for (const tag of ['full1', 'full2', 'full3', 'full4']) await h.updateTags([tag])
    } finally {
      process.kill(redis.pid, 'SIGCONT')
    }
    // full1 and full2 taken out: the first with a warning, the second at debug (a warning each
    // was a flood once the queue was full).
    const full = logged(/outbox full/)
    assert.equal(full.length, 1, lines.slice(from).join('\n'))
    assert.match(full[0], /took the oldest .*\(full1\) out of the queue.*1 taken out so far/)
    // Honoured locally at once.
    assert.ok((await h.getExpiration(['full1'])) > 0)
    assert.ok((await h.getExpiration(['full2'])) > 0)
    // The breaker's probe, about breakerOpenMs after it opened, replays the two kept ones, then
    // merges what full1 and full2 wrote. Waited for here: left running, that replay and its
    // lines landed in a later test.
    await eventually(
      () => lines.slice(from).some((l) => /redis is back: sent 2 queued revalidation/.test(l)),
      5000,
      'the two kept revalidations are replayed',
    )
    const other = instance(ROOMY)
    await other.refreshTags()
    assert.ok((await other.getExpiration(['full3'])) > 0, 'full3 reaches the fleet')
    assert.ok((await other.getExpiration(['full4'])) > 0, 'full4 reaches the fleet')
    await eventually(
      async () => {
        await other.refreshTags()
        return (
          (await other.getExpiration(['full1'])) > 0 && (await other.getExpiration(['full2'])) > 0
        )
      },
      5000,
      'full1 and full2, taken out of the queue, reach the fleet by the merge',
    )
  })

  test('revalidations during one outage log one warning; the line when Redis is back counts them', async () => {
    // Its breaker stays open (no probe) while the test revalidates: every revalidation after
    // the first is queued behind it, none sent before Redis resumes.
    const h = instance({ ...FAST, breakerOpenMs: 2_000, breakerMaxOpenMs: 2_000 })
    const queuedLine = /revalidation of .* applied on this instance; .*so it is queued/
    const outage = async (name, n) => {
      const from = lines.length
      process.kill(redis.pid, 'SIGSTOP')
      try {
        for (let i = 0; i < 3; i++) await h.get(`${name}-k`, [])
        for (let i = 0; i < n; i++) await h.updateTags([`${name}-${String(i)}`])
      } finally {
        process.kill(redis.pid, 'SIGCONT')
      }
      await eventually(
        () => lines.slice(from).some((l) => /redis is back: sent \d+ queued revalidation/.test(l)),
        10_000,
        `the revalidations of ${name} are replayed`,
      )
      return lines.slice(from)
    }
    const first = await outage('out1', 12)
    // Before: one warning per revalidation, 12 of them.
    const warned = first.filter((l) => queuedLine.test(l))
    assert.equal(warned.length, 1, first.join('\n'))
    assert.match(
      warned[0],
      /revalidation of out1-0 .*the revalidations made after it are logged at debug/,
    )
    const back = first.filter((l) => /redis is back/.test(l))
    assert.deepEqual(
      back.map((l) => l.replace(/^\[fleetcache\] /, '')),
      [
        'redis is back: sent 12 queued revalidation(s), in order; 12 were made while it did not answer',
      ],
      first.join('\n'),
    )
    // A second outage gets its own first warning.
    const second = await outage('out2', 3)
    const again = second.filter((l) => queuedLine.test(l))
    assert.equal(again.length, 1, second.join('\n'))
    assert.match(again[0], /revalidation of out2-0 /)
    assert.ok(
      second.some((l) =>
        /redis is back: sent 3 queued revalidation\(s\), in order; 3 were made/.test(l),
      ),
      second.join('\n'),
    )
    const other = instance(ROOMY)
    await other.refreshTags()
    assert.ok(
      (await other.getExpiration(['out1-11'])) > 0,
      'the last of the first outage reaches the fleet',
    )
    assert.ok(
      (await other.getExpiration(['out2-2'])) > 0,
      'the last of the second outage reaches the fleet',
    )
  })
})

describe('one line per queued revalidation', () => {
  // A new user's trial: with Redis stopped, one revalidateTag('isr') logged two lines, the
  // failed send's error (`revalidation not sent to Redis, kept in the outbox and retried (1
  // waiting): ...`) and then the warning that names the revalidation. The warning alone now;
  // the failed send is a debug line, and the revalidations after it are debug lines only.
  for (const [how, budgets] of [
    ['killed', ROOMY],
    ['paused', FAST],
  ]) {
    test(`Redis ${how}: the first revalidation logs one warning, naming it; the next ones are debug lines`, async () => {
      const own = await startRedis({ logDir })
      const h = instance({ ...budgets, redisUrl: own.url, debug: true })
      const { loud, restore } = loudLines()
      const from = lines.length
      try {
        await h.refreshTags()
        process.kill(own.pid, how === 'killed' ? 'SIGKILL' : 'SIGSTOP')
        if (how === 'killed') assert.ok(await waitForExit(own.child, 10_000), 'redis-server gone')
        const quietFrom = loud.length
        await h.updateTags(['isr'])
        await h.updateTags(['isr2'])
        const all = lines.slice(from).join('\n')
        // The connection's own line (at most one per 10 s) is not the revalidation's.
        const said = loud.slice(quietFrom).filter((l) => !/redis connection: /.test(l))
        assert.equal(said.length, 1, `warning and error lines:\n${said.join('\n')}\nall:\n${all}`)
        assert.match(
          said[0],
          /revalidation of isr \(expire now\) applied on this instance; Redis (is unreachable|did not answer it in time), so it is queued \(1 waiting\) and will be sent when Redis answers; while Redis does not answer, the revalidations made after it are logged at debug/,
        )
        assert.ok(
          lines.slice(from).some((l) => /revalidation not sent to Redis, retried: /.test(l)),
          `the failed send at debug:\n${all}`,
        )
      } finally {
        restore()
        if (how === 'paused') process.kill(own.pid, 'SIGCONT')
        await close()
        await own.stop()
      }
    })
  }
})

describe('a run of failures that changes kind', () => {
  // A revalidation's send timed out (Redis busy: here its writes paused), and is a debug line
  // since 31f4456 (the revalidation's warning says Redis did not answer); then Redis answers
  // the queue's retries with OOM (noeviction at maxmemory). That refusal's whole text is said
  // in no line at warn or error: the retries of a backlog log at debug, and no revalidation is
  // made to log the warning naming its code. The queue waits for as long as OOM lasts.
  test('an error reply after a timeout logs its error line, once', async () => {
    const own = await startRedis({ logDir })
    const h = instance({ ...FAST, connectTimeoutMs: 10_000, redisUrl: own.url, debug: true })
    const { loud, restore } = loudLines()
    const from = lines.length
    try {
      await h.refreshTags()
      await redisCommand(own.port, ['CLIENT', 'PAUSE', '1500', 'WRITE'])
      await h.updateTags(['after-timeout'])
      await redisCommand(own.port, ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'])
      await redisCommand(own.port, ['CONFIG', 'SET', 'maxmemory', '1'])
      await eventually(
        () => lines.slice(from).some((l) => /retried: OOM /.test(l) || /: OOM /.test(l)),
        10_000,
        'a retry met OOM',
      )
      const all = lines.slice(from).join('\n')
      const oom = loud.filter((l) => /OOM command not allowed/.test(l))
      assert.equal(
        oom.length,
        1,
        `warning and error lines naming OOM:\n${oom.join('\n')}\nall:\n${all}`,
      )
      assert.match(
        oom[0],
        /revalidation not sent to Redis, kept in the outbox and retried \(1 waiting\): ERR_REDIS_REPLY: OOM /,
      )
      // Once per run: the next retries stay debug lines.
      await sleep(1500)
      assert.equal(
        loud.filter((l) => /OOM command not allowed/.test(l)).length,
        1,
        lines.slice(from).join('\n'),
      )
    } finally {
      restore()
      await redisCommand(own.port, ['CONFIG', 'SET', 'maxmemory', '0']).catch(() => undefined)
      await close()
      await own.stop()
    }
  })
})

// node-redis says `The client is offline` for a command sent while its connection is down and
// being made again, and the transport said `redis is not connected (reconnecting in the
// background)` for the same state once its first connect budget had run out: two wordings in
// the log lines for one state.
describe('the transport names a connection being made again in one wording', () => {
  test('a command sent while Redis is gone fails with the same message early and late', async () => {
    const own = await startRedis({ logDir })
    const { transport } = transportOn(own.url, { connectTimeoutMs: 1500 })
    const failure = (p) =>
      p.then(
        () => assert.fail('the command succeeded against a Redis that is gone'),
        (err) => err.message,
      )
    try {
      await transport.send(['PING'])
      process.kill(own.pid, 'SIGKILL')
      assert.ok(await waitForExit(own.child, 10_000), 'redis-server gone')
      // node-redis has seen the socket close and reconnects in the background.
      await sleep(200)
      const early = await failure(transport.send(['PING']))
      // Past the connect budget counted from the first connect.
      await sleep(1600)
      const late = await failure(transport.send(['PING']))
      assert.deepEqual(
        [early, late],
        [
          'redis is not connected (reconnecting in the background)',
          'redis is not connected (reconnecting in the background)',
        ],
      )
    } finally {
      await transport.close()
      await own.stop()
    }
  })
})

describe('hostile data and settings', () => {
  function entryKey(key) {
    return new wasm.Engine({ prefix: 'faults', deployment: 'd1' }).entryKey(
      wasm.Interface.useCache('default'),
      key,
    )
  }

  async function rawSet(key, bytes) {
    const c = createClient({ url: redis.url })
    c.on('error', () => {})
    await c.connect()
    await c.sendCommand(['SET', key, bytes])
    await c.close()
  }

  async function storedValue(h, key) {
    await h.set(key, Promise.resolve(entry('genuine payload')))
    const c = createClient({ url: redis.url })
    await c.connect()
    const v = await c.sendCommand(['GET', entryKey(key)], {
      typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer },
    })
    await c.close()
    return v
  }

  test('corrupt, foreign, truncated, future-version and non-UTF-8 values are logged misses', async () => {
    const h = instance()
    const good = await storedValue(h, 'hostile')
    assert.ok(Buffer.isBuffer(good))
    const future = Buffer.from(good)
    future[4] = 99
    const badKey = Buffer.from(good)
    // The stored key's first byte (after the 48-byte fixed header and its 4-byte length).
    badKey[52] = 0xff
    const cases = {
      json: Buffer.from('{"kind":"FETCH","data":{}}'),
      empty: Buffer.alloc(0),
      magic: Buffer.from('FLCE'),
      truncated: good.subarray(0, good.length - 3),
      headerOnly: good.subarray(0, 30),
      future,
      utf8: badKey,
      random: Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919 + 13) & 0xff)),
    }
    for (const [name, bytes] of Object.entries(cases)) {
      await rawSet(entryKey('hostile'), bytes)
      const before = lines.length
      const got = await h.get('hostile', [])
      assert.equal(got, undefined, `${name}: must be a miss`)
      assert.ok(
        lines.slice(before).some((l) => /unreadable entry/.test(l)),
        `${name}: one log line expected, got ${JSON.stringify(lines.slice(before))}`,
      )
    }
    // The real value still works after all that.
    await rawSet(entryKey('hostile'), good)
    assert.equal(await hit(h, 'hostile'), 'genuine payload')
  })

  test('values above maxEntryBytes are logged and not stored', async () => {
    const h = instance({ maxEntryBytes: 1024 })
    const before = lines.length
    await h.set('big', Promise.resolve(entry('x'.repeat(2000))))
    assert.ok(
      lines.slice(before).some((l) => /exceeds maxEntryBytes \(1024\)/.test(l)),
      JSON.stringify(lines.slice(before)),
    )
    assert.equal(await h.get('big', []), undefined)
    await h.set('small', Promise.resolve(entry('x'.repeat(100))))
    assert.equal(await hit(h, 'small'), 'x'.repeat(100))
  })

  test('any number of tags works; a tag past the byte limit is dropped with one line, never a crash', async () => {
    const h = instance()
    const many = Array.from({ length: 5000 }, (_, i) => `t${i}`)
    const long = 'l'.repeat(100_000)
    let before = lines.length
    await h.set('tagged', Promise.resolve(entry('v', { tags: many })))
    assert.equal(await hit(h, 'tagged'), 'v', 'an entry with 5,000 tags is stored')
    await h.updateTags(many.slice(-129))
    assert.equal(await h.get('tagged', []), undefined, 'a revalidation of 129 tags applies')
    assert.deepEqual(lines.slice(before), [], 'and nothing is logged')
    // A list of only over-long tags is refused, one line; one among others is dropped alone.
    await h.updateTags([long])
    let said = lines.slice(before)
    assert.equal(said.length, 1, JSON.stringify(said))
    assert.match(said[0], /revalidation refused .*16384 bytes/)
    before = lines.length
    await h.set('tagged-long', Promise.resolve(entry('w', { tags: [long, 'kept'] })))
    said = lines.slice(before)
    assert.equal(said.length, 1, JSON.stringify(said))
    assert.match(said[0], /dropped 1 tag\(s\) longer than 16384 bytes/)
    const got = await h.get('tagged-long', [])
    assert.deepEqual(got?.tags, ['kept'], 'stored with the other tags')
  })

  test('keys that are not well-formed UTF-16 are never confused with each other', async () => {
    const h = instance()
    await h.set('lone\uD800', Promise.resolve(entry('first')))
    assert.equal(await h.get('lone\uDC00', []), undefined)
    assert.equal(await h.get('lone\uFFFD', []), undefined)
  })

  test('an invalid setting in the environment stops a server process at load, naming the variable', () => {
    // The handler modules as Next loads them, in a process of their own (it is meant to exit).
    const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist')
    const load = (env, modules = ['use-cache', 'incremental']) => {
      const clean = {}
      for (const [k, v] of Object.entries(process.env)) {
        if (!/^(REDIS_URL|FLEETCACHE_.*|NEXT_PHASE)$/.test(k)) clean[k] = v
      }
      const code = modules
        .map((m) => `require(${JSON.stringify(path.join(dist, `${m}.js`))})`)
        .join(';')
      return spawnSync(process.execPath, ['-e', `${code}; console.log('LOADED')`], {
        env: { ...clean, ...env },
        encoding: 'utf8',
        timeout: 30_000,
      })
    }
    const cases = [
      [
        { REDIS_URL: 'localhost:6390' },
        /REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL .*"localhost:6390" \(no scheme\)/,
      ],
      [
        { REDIS_URL: 'http://127.0.0.1:6390' },
        /REDIS_URL: must start with redis:\/\/ or rediss:\/\/, got http:\/\//,
      ],
      [{ REDIS_URL: 'redis://127.0.0.1:abc' }, /REDIS_URL: is not a valid URL/],
      [
        { REDIS_URL: 'redis://user:s3cret@127.0.0.1:abc' },
        /REDIS_URL: is not a valid URL .*"redis:\/\/\*\*\*@127\.0\.0\.1:abc"/,
      ],
      [
        { FLEETCACHE_READ_TIMEOUT_MS: 'abc' },
        /FLEETCACHE_READ_TIMEOUT_MS: must be a number of milliseconds > 0 and <= 60000, got "abc"/,
      ],
      [
        { FLEETCACHE_READ_TIMEOUT_MS: '0' },
        /FLEETCACHE_READ_TIMEOUT_MS: must be a number of milliseconds > 0 and <= 60000, got "0"/,
      ],
      [
        { FLEETCACHE_READ_TIMEOUT_MS: '120000' },
        /FLEETCACHE_READ_TIMEOUT_MS: must be .*<= 60000, got "120000"/,
      ],
      [
        { FLEETCACHE_COMMAND_TIMEOUT_MS: '120000' },
        /FLEETCACHE_COMMAND_TIMEOUT_MS: must be .*<= 60000/,
      ],
      [{ FLEETCACHE_PREFIX: 'my app' }, /FLEETCACHE_PREFIX: must match .*, got "my app"/],
      // A fraction for a count: the engine's message, as for the option, naming the variable.
      // The range the setting takes (1 to 1000000), not its type's (0 to 4294967295, which
      // said 0 would do).
      [
        { FLEETCACHE_OUTBOX_CAPACITY: '1.5' },
        /FLEETCACHE_OUTBOX_CAPACITY: must be a whole number from 1 to 1000000, got "1\.5"$/,
      ],
      [
        { FLEETCACHE_COMPRESS_LEVEL: '1.5' },
        /FLEETCACHE_COMPRESS_LEVEL: must be a whole number from 1 to 9, got "1\.5"$/,
      ],
      [
        { FLEETCACHE_MEMORY_BYTES: '0.5' },
        /FLEETCACHE_MEMORY_BYTES: must be a whole number from 0 to 9007199254740991, got "0\.5"$/,
      ],
      // 0 turns these off: "positive" said it would be refused.
      [
        { FLEETCACHE_MEMORY_BYTES: '-1' },
        /FLEETCACHE_MEMORY_BYTES: must be a number >= 0, got "-1"$/,
      ],
      [
        { FLEETCACHE_COMPRESS_MIN_BYTES: '-1' },
        /FLEETCACHE_COMPRESS_MIN_BYTES: must be a number >= 0, false or off, got "-1"$/,
      ],
      [
        { FLEETCACHE_OUTBOX_CAPACITY: '-1' },
        /FLEETCACHE_OUTBOX_CAPACITY: must be a whole number from 1 to 1000000, got "-1"$/,
      ],
      // Not ignored: a debug switch spelled `yes` or `on` would otherwise log nothing, silently.
      [{ FLEETCACHE_DEBUG: 'yes' }, /FLEETCACHE_DEBUG: must be 1, true, 0 or false, got "yes"/],
      // Quoted as every other value is, so a stray space or an empty-looking value shows.
      [{ FLEETCACHE_TAG_SYNC: 'pushy' }, /FLEETCACHE_TAG_SYNC: must be pull or push, got "pushy"$/],
      [
        {
          REDIS_URL: 'redis://mymaster',
          FLEETCACHE_REDIS_SENTINELS: '127.0.0.1:26379',
          FLEETCACHE_REDIS_CLUSTER: '1',
        },
        /FLEETCACHE_REDIS_SENTINELS: Sentinel and Redis Cluster cannot be combined/,
      ],
    ]
    for (const [env, re] of cases) {
      for (const modules of [['use-cache'], ['incremental']]) {
        const r = load(env, modules)
        const what = `${JSON.stringify(env)} loading ${modules[0]}: ${r.stdout}${r.stderr}`
        assert.equal(r.status, 1, what)
        assert.doesNotMatch(r.stdout, /LOADED/, what)
        const said = r.stderr.split('\n').filter((l) => l.startsWith('[fleetcache]'))
        assert.equal(said.length, 1, what)
        assert.match(said[0], /^\[fleetcache\] invalid setting, the server does not start: /, what)
        assert.match(said[0], re, what)
        assert.doesNotMatch(r.stderr, /s3cret/, what)
      }
    }
    // A build uses none of them: one warning naming the variable, and the modules load.
    const build = load({ NEXT_PHASE: 'phase-production-build', FLEETCACHE_PREFIX: 'my app' })
    assert.equal(build.status, 0, build.stderr)
    assert.match(build.stdout, /LOADED/)
    const warned = build.stderr.split('\n').filter((l) => l.startsWith('[fleetcache]'))
    assert.equal(warned.length, 1, build.stderr)
    assert.match(warned[0], /ignored by next build.*FLEETCACHE_PREFIX: must match/)
    // And a valid environment loads.
    const good = load({ REDIS_URL: 'redis://127.0.0.1:6390', FLEETCACHE_PREFIX: 'my-app' })
    assert.equal(good.status, 0, good.stderr)
  })

  test('invalid settings fail loudly with the setting named', () => {
    const bad = (opts, re) =>
      assert.throws(() => createUseCacheHandler({ redisUrl: redis.url, ...opts }), re)
    bad({ redisUrl: 'http://x' }, ConfigError)
    bad({ redisUrl: 'not a url' }, ConfigError)
    bad({ readTimeoutMs: -1 }, /readTimeoutMs/)
    bad({ writeTimeoutMs: 0 }, /writeTimeoutMs/)
    bad({ connectTimeoutMs: Number.NaN }, /connectTimeoutMs/)
    bad({ readTimeoutMs: 120_000 }, /readTimeoutMs/)
    bad({ breakerFailureRate: 2 }, /breakerFailureRate/)
    bad({ breakerOpenMs: 5000, breakerMaxOpenMs: 1000 }, /breakerMaxOpenMs/)
    bad({ outboxCapacity: 1e9 }, /outboxCapacity/)
    // The first open time alone above the longest's default: the longest follows it.
    assert.doesNotThrow(() => createUseCacheHandler({ redisUrl: redis.url, breakerOpenMs: 5000 }))
  })

  test('a fraction, a negative number or one past the range for a whole-number setting says what it must be', () => {
    const refused = (opts) => {
      try {
        createUseCacheHandler({ redisUrl: redis.url, ...opts })
      } catch (err) {
        return err
      }
      assert.fail(`${JSON.stringify(opts)} was accepted`)
    }
    const whole = (range) => `must be a whole number from ${range}`
    // The engine's check: its code and the setting named, as for every setting it refuses, and
    // the range the setting takes, not its type's (`1.5` for a count said 0 would do).
    for (const [setting, value, range] of [
      ['outboxCapacity', 1.5, '1 to 1000000'],
      ['breakerFailures', 2.25, '1 to 4294967295'],
      ['breakerMinCalls', 2.5, '1 to 4294967295'],
      ['tagMirrorMaxTags', 1000.5, '1 to 100000000'],
      ['compressLevel', 1.5, '1 to 9'],
      ['maxEntryBytes', 1024.5, '1 to 4294967295'],
      ['memoryBytes', 2 ** 60, '0 to 9007199254740991'],
      ['compressMinBytes', 0.5, '0 to 9007199254740991'],
    ]) {
      const err = refused({ [setting]: value })
      assert.equal(err.code, 'ERR_CONFIG_INVALID', `${setting}: ${err.message}`)
      assert.equal(err.setting, setting)
      assert.equal(err.message, `invalid fleetcache config: ${setting} ${whole(range)}`)
    }
    // 0 turns these off: a negative value is refused saying so, not "positive".
    for (const [setting, value, why] of [
      ['memoryBytes', -1, 'must be a number >= 0, got -1'],
      ['compressMinBytes', -1, 'must be a number >= 0 or false, got -1'],
    ]) {
      const err = refused({ [setting]: value })
      assert.ok(err instanceof ConfigError, `${setting}: ${err.message}`)
      assert.equal(err.message, `${setting}: ${why}`)
    }
    // Numbers out of the range, and non-finite ones, are the options' check, before the
    // engine: the same words as the environment's (FLEETCACHE_OUTBOX_CAPACITY=-1, above), the
    // range the setting takes (test/option-ranges.test.mjs has one of each kind).
    for (const [setting, value, range] of [
      ['outboxCapacity', -1, 'a whole number from 1 to 1000000'],
      ['compressLevel', 4_294_967_296, 'a whole number from 1 to 9'],
      ['leaseTtlMs', Number.POSITIVE_INFINITY, 'a number of milliseconds from 1 to 600000'],
      ['maxTtlSeconds', Number.NaN, 'a number of seconds > 0 and <= 3153600000'],
    ]) {
      const err = refused({ [setting]: value })
      assert.ok(err instanceof ConfigError, `${setting}: ${err.message}`)
      assert.equal(err.message, `${setting}: must be ${range}, got ${String(value)}`)
    }
  })
})
