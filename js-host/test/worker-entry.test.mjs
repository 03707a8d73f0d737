// The workers entry (`fleetcache/worker`) with a fake transport and a fake clock: no Redis,
// no timers waited on. What it must do as the Node handlers do: drop a revalidation Redis
// refuses for want of a permission (NOPERM) instead of blocking the outbox behind it, report
// error replies to the engine as error replies (not as successes), and read the clock it is
// given for every decision. And, as the Node handlers' logger: an `onError` that throws costs the
// call that reported nothing (a rejected `get` is a failed render).
import assert from 'node:assert/strict'
import { AsyncLocalStorage } from 'node:async_hooks'
import fs from 'node:fs'
import { describe, test } from 'node:test'

import { createCache } from 'fleetcache/worker'
import { text, useCacheEntry } from './helpers.mjs'

const wasmBytes = fs.readFileSync(new URL(import.meta.resolve('fleetcache/wasm')))
const T0 = 1_800_000_000_000

function fakeClock(start = T0) {
  const clock = { t: start, now: () => clock.t }
  return clock
}

const replyError = (message) => Object.assign(new Error(message), { code: 'ERR_REDIS_REPLY' })

/**
 * A transport that answers from `answer(argv)` (a reply, or an Error to reject with) and
 * records every command it was given.
 */
function fakeTransport(answer) {
  const sent = []
  return {
    sent,
    async send(argv) {
      sent.push(argv.map((a) => (typeof a === 'string' ? a : `<${a.byteLength} bytes>`)))
      const r = answer(argv)
      if (r instanceof Error) throw r
      return r
    },
  }
}

const isScript = (argv) => argv[0] === 'EVALSHA' || argv[0] === 'EVAL'
const mentions = (argv, word) => argv.some((a) => typeof a === 'string' && a.includes(word))

function cache(transport, clock, errors = []) {
  const c = createCache({ module: wasmBytes, transport, deploymentId: 'd1', now: clock.now })
  c.onError = (m) => errors.push(m)
  return c
}

describe('fleetcache/worker, fake transport', () => {
  test('a revalidation refused with NOPERM is dropped; the ones behind it are sent', async () => {
    const transport = fakeTransport((argv) =>
      isScript(argv) && mentions(argv, 'refused-tag')
        ? replyError('NOPERM User fc has no permissions to run the evalsha command')
        : null,
    )
    const errors = []
    const c = cache(transport, fakeClock(), errors)
    await c.updateTags(['refused-tag'])
    assert.equal(c.engine.outboxLength, 0, 'the refused revalidation still blocks the outbox')
    assert.ok(
      errors.some((m) => /revalidation dropped: .*NOPERM/.test(m)),
      JSON.stringify(errors),
    )
    await c.updateTags(['next-tag'])
    assert.equal(c.engine.outboxLength, 0)
    assert.ok(
      transport.sent.some((a) => isScript(a) && mentions(a, 'next-tag')),
      'the next revalidation was sent',
    )
    // It still took effect in this isolate.
    assert.ok(c.engine.getExpiration('refused-tag', T0 + 1) > 0)
  })

  test('a revalidation that failed waits for the backoff on the given clock, then is sent', async () => {
    let down = true
    const transport = fakeTransport((argv) =>
      down && isScript(argv) ? Object.assign(new Error('connection reset')) : null,
    )
    const clock = fakeClock()
    const c = cache(transport, clock)
    await c.updateTags(['a'])
    assert.equal(c.engine.outboxLength, 1, 'kept after a connection failure')
    down = false
    const before = transport.sent.length
    await c.updateTags(['b'])
    assert.equal(transport.sent.length, before, 'sent again inside the backoff')
    assert.equal(c.engine.outboxLength, 2)
    clock.t += c.engine.outboxRetryInMs(clock.t)
    await c.updateTags(['c'])
    assert.equal(c.engine.outboxLength, 0, 'sent in order once the backoff is over')
  })

  test('an error reply is counted as one by the engine, not as a success', async () => {
    const transport = fakeTransport((argv) =>
      argv[0] === 'GET' ? replyError('WRONGTYPE Operation against a key') : null,
    )
    const clock = fakeClock()
    const errors = []
    const c = cache(transport, clock, errors)
    assert.equal(await c.get('k', []), undefined)
    const redis = c.engine.stats(clock.t).redis
    assert.equal(redis.replyErrors, 1, JSON.stringify(redis))
    // The read refreshed the tag state first (never loaded), as the Node handler does: only
    // that script is a success.
    const gets = transport.sent.filter((a) => a[0] === 'GET').length
    assert.equal(gets, 1)
    assert.equal(redis.ok, transport.sent.length - gets, JSON.stringify(redis))
    assert.ok(
      errors.some((m) => m.includes('ERR_REDIS_REPLY')),
      JSON.stringify(errors),
    )
  })

  test('lifetimes are judged on the given clock, not Date.now()', async () => {
    const clock = fakeClock(Date.now() + 10 * 24 * 3600_000)
    const c = createCache({ module: wasmBytes, deploymentId: 'd1', now: clock.now })
    await c.set('k', useCacheEntry('v', { timestamp: clock.t, revalidate: 60, expire: 3600 }))
    const hit = await c.get('k', [])
    assert.ok(hit, 'a hit at the time it was written')
    assert.equal(hit.revalidate, 60)
    clock.t += 2 * 3600_000
    assert.equal(await c.get('k', []), undefined, 'past its expire on the given clock')
  })
})

describe('fleetcache/worker in memory: who the answer is for', () => {
  // No transport, no leases: a read that may be stored (the consumer unknown, a prerender)
  // regenerates a stale entry before it answers, as the Node handlers do when a lease cannot
  // be had; a read that serves a response gets it stale and Next regenerates it behind it.
  const stale = async (options) => {
    const clock = fakeClock()
    const c = createCache({ module: wasmBytes, deploymentId: 'd1', now: clock.now, ...options })
    await c.set('k', useCacheEntry('v', { timestamp: clock.t, revalidate: 1, expire: 3600 }))
    clock.t += 10_000
    return c
  }

  test('with no way to know the consumer, a stale entry is a miss', async () => {
    const c = await stale({})
    assert.equal(await c.get('k', []), undefined, 'a stale entry was handed to an unknown consumer')
  })

  test("with workUnitAsyncStorage, a request's read gets it stale; a prerender's misses it", async () => {
    const workUnits = new AsyncLocalStorage()
    const c = await stale({ workUnitAsyncStorage: workUnits })
    const served = await workUnits.run({ type: 'request' }, () => c.get('k', []))
    assert.ok(served, "a request's read missed the stale entry")
    assert.equal(served.timestamp, T0, 'served as it is: stale, so Next regenerates it')
    assert.equal(
      await workUnits.run({ type: 'prerender' }, () => c.get('k', [])),
      undefined,
      "a prerender's read got the stale entry",
    )
  })

  test('with workUnitAsyncStorage but no store, a stale entry is a miss, and onError hears it once', async () => {
    // Next 16.2 and later run every 'use cache' read inside a work unit (they throw before the
    // handler is asked otherwise): a read that sees no store was given a storage other than
    // the one Next runs in (another copy of its module in the bundle), and every read would
    // then be taken to serve a response, the stale-as-fresh defect back without a word.
    const errors = []
    const c = await stale({ workUnitAsyncStorage: new AsyncLocalStorage() })
    c.onError = (m) => errors.push(m)
    assert.equal(await c.get('k', []), undefined, 'a read with no store got the stale entry')
    assert.equal(await c.get('k', []), undefined, 'the second read with no store got it')
    assert.equal(errors.length, 1, `one line for the reads with no store: ${errors.join(' | ')}`)
    assert.match(errors[0], /workUnitAsyncStorage.*no work-unit store/)
  })

  test('workUnitAsyncStorage without a getStore is refused when the cache is made', () => {
    for (const given of [{}, null, 'storage', { getStore: 'not a function' }]) {
      assert.throws(
        () => createCache({ module: wasmBytes, workUnitAsyncStorage: given }),
        (err) => err instanceof TypeError && /workUnitAsyncStorage/.test(err.message),
        `${String(given)} accepted, or refused with another message`,
      )
    }
  })
})

/**
 * A transport over a Map for GET and SET that fails every script (the tag state's pulls and
 * pushes), and every SET once `writesDown` is set, as a connection that was lost does.
 */
function halfDownTransport() {
  const kv = new Map()
  const lost = () => new Error('connection reset')
  const transport = fakeTransport((argv) => {
    if (argv[0] === 'GET') return kv.get(argv[1]) ?? null
    if (argv[0] === 'SET') {
      if (transport.writesDown) return lost()
      kv.set(argv[1], argv[2])
      return 'OK'
    }
    return lost()
  })
  transport.writesDown = false
  return transport
}

/** A cache over `halfDownTransport()` on a fake clock. */
const halfDownCache = () => {
  const transport = halfDownTransport()
  const c = createCache({
    module: wasmBytes,
    transport,
    deploymentId: 'd1',
    now: fakeClock().now,
  })
  return { transport, c }
}

describe('fleetcache/worker, an onError that throws', () => {
  /**
   * Each call with what it settles to, each of them reporting at least once: the throw is
   * provoked. A failed set and a failed revalidation resolve too, as with a working onError.
   */
  async function eachCallSettles(c, transport, reports) {
    const clock = { t: T0 }
    const out = []
    const step = async (name, fn) => {
      const before = reports.count
      let result
      try {
        result = { value: await fn() }
      } catch (err) {
        result = { rejected: String(err) }
      }
      out.push([name, result, reports.count > before ? 'reported' : 'not reported'])
    }
    // Written while Redis answers (no script needed for an untagged entry), then read while
    // the tag state cannot be pulled: the hit is served, the failed pull reported.
    await c.set('k', useCacheEntry('v', { tags: [], timestamp: clock.t }))
    await step('get, tag pull failing', async () => {
      const hit = await c.get('k', [])
      return hit === undefined ? undefined : text(hit.value)
    })
    await step('get, key refused', () => c.get('bad\ud800', []))
    await step('set, key refused', () => c.set('bad\ud800', useCacheEntry('x', { tags: [] })))
    transport.writesDown = true
    await step('set, write failing', () =>
      c.set('k2', useCacheEntry('x', { tags: [], timestamp: clock.t })),
    )
    await step('updateTags, push failing', () => c.updateTags(['t']))
    await step('refreshTags, pull failing', () => c.refreshTags())
    return out
  }

  const expected = [
    ['get, tag pull failing', { value: 'v' }, 'reported'],
    ['get, key refused', { value: undefined }, 'reported'],
    ['set, key refused', { value: undefined }, 'reported'],
    ['set, write failing', { value: undefined }, 'reported'],
    ['updateTags, push failing', { value: undefined }, 'reported'],
    ['refreshTags, pull failing', { value: undefined }, 'reported'],
  ]

  test("the application's onError: every call settles as it would have", async () => {
    const { transport, c } = halfDownCache()
    const reports = { count: 0 }
    c.onError = () => {
      reports.count += 1
      throw new Error('onError broke')
    }
    assert.deepEqual(await eachCallSettles(c, transport, reports), expected)
  })

  test('the default onError over a console.error that throws: likewise', async () => {
    const { transport, c } = halfDownCache()
    const reports = { count: 0 }
    const { error } = console
    console.error = () => {
      reports.count += 1
      throw new Error('console broke')
    }
    try {
      assert.deepEqual(await eachCallSettles(c, transport, reports), expected)
    } finally {
      console.error = error
    }
  })
})

test('fleetcache/worker: a hit whose answer cannot be freed is still served, the failure reported', async () => {
  const { c } = halfDownCache()
  const reports = []
  c.onError = (m) => reports.push(m)
  await c.set('k', useCacheEntry('v', { tags: [], timestamp: T0 }))
  // The release behind `answer.free()` throws after releasing, as a machine a trap left
  // borrowed does.
  const { machines } = c
  const release = machines.release.bind(machines)
  let throws = 0
  machines.release = (m) => {
    release(m)
    throws += 1
    throw new Error('machine trapped')
  }
  const hit = await c.get('k', [])
  assert.equal(throws, 1, 'the answer was freed once')
  assert.equal(hit === undefined ? undefined : await text(hit.value), 'v')
  assert.ok(
    reports.some((m) => m.includes('machine trapped') && m.includes('its value served')),
    reports.join('\n'),
  )
})

describe('fleetcache/worker, the lines that report no failure (onLog)', () => {
  /** An in-memory cache (no transport) whose onLog lines are collected as `level: message`. */
  function logged(options) {
    const c = createCache({
      module: wasmBytes,
      deploymentId: 'd1',
      now: fakeClock().now,
      ...options,
    })
    const lines = []
    c.onLog = (level, m) => lines.push(`${level}: ${m}`)
    c.onError = (m) => assert.fail(`onError: ${m}`)
    return { c, lines }
  }

  test('debug: true passes each cache decision to onLog at debug, as the Node debug option prints them', async () => {
    const { c, lines } = logged({ debug: true })
    await c.set('k', useCacheEntry('v', { tags: [], timestamp: T0 }))
    const hit = await c.get('k', [])
    assert.equal(hit === undefined ? undefined : await text(hit.value), 'v')
    assert.equal(await c.get('absent', []), undefined)
    assert.ok(
      lines.some((l) => /^debug: get \S+:uc-default:\{[0-9a-f]+\}:e hit$/.test(l)),
      lines.join('\n'),
    )
    assert.ok(
      lines.some((l) => /^debug: get \S+ miss/.test(l)),
      lines.join('\n'),
    )
  })

  test('without debug, no debug line is built or passed', async () => {
    const { c, lines } = logged({})
    await c.set('k', useCacheEntry('v', { tags: [], timestamp: T0 }))
    assert.ok(await c.get('k', []))
    assert.equal(await c.get('absent', []), undefined)
    assert.deepEqual(lines, [])
  })

  test('an onLog that throws costs the call nothing: the hit is served', async () => {
    const c = createCache({
      module: wasmBytes,
      deploymentId: 'd1',
      now: fakeClock().now,
      debug: true,
    })
    let calls = 0
    c.onLog = () => {
      calls += 1
      throw new Error('onLog broke')
    }
    await c.set('k', useCacheEntry('v', { tags: [], timestamp: T0 }))
    const hit = await c.get('k', [])
    assert.equal(hit === undefined ? undefined : await text(hit.value), 'v')
    assert.ok(calls > 0, 'onLog was called')
  })
})
