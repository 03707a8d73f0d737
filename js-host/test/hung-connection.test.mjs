// A connection that stays open and answers nothing while Redis answers new ones: a proxy or
// load balancer in front of Redis that keeps the client's side of a connection whose other
// side is gone, or a route lost without a reset. TCP may never end such a connection
// (a proxy acknowledges every byte), and node-redis reconnects only after its socket fails:
// the instance stayed without Redis until restarted. Against a real redis-server behind a
// proxy in this process that can hold connections (nothing passes either way, both ends open).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, afterEach, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { MAX_RECONNECT_DELAY_MS } from '../dist/redis-client.js'
import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import {
  HUNG_BUDGETS,
  capture,
  holdingProxy,
  text,
  transportOn,
  useCacheEntry,
} from './helpers.mjs'

let redis
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-hung-'))
  redis = await startRedis({ logDir })
})

afterEach(() => close())

after(async () => {
  await close()
  await redis?.stop()
})

// Short budgets, so the tests take seconds: the rule under test is stated in their terms.
const BUDGETS = HUNG_BUDGETS

let seq = 0
function instance(redisUrl, extra = {}) {
  seq += 1
  return createUseCacheHandler({
    redisUrl,
    prefix: 'hung',
    deploymentId: 'd1',
    // A runtime of its own per handler (the odd setting keeps them apart).
    maxTtlSeconds: 30 * 24 * 3600 - seq,
    memoryBytes: 0,
    leases: false,
    ...BUDGETS,
    ...extra,
  })
}

/** The entry's text, or undefined on a miss. */
async function read(h, key) {
  const e = await h.get(key, [])
  return e === undefined ? undefined : text(e.value)
}

/**
 * Reads `key` through `h` every 100 ms until a hit, for at most `ms`: the reads are what a
 * site under traffic would send (the breaker lets one probe through now and then).
 */
async function hitWithin(h, key, ms) {
  const until = Date.now() + ms
  for (;;) {
    const got = await read(h, key)
    if (got !== undefined) return got
    if (Date.now() > until) return undefined
    await sleep(100)
  }
}

describe('a connection that stays open and answers nothing', () => {
  test('one in use is given up and a new one made: hits come back from Redis', async () => {
    const proxy = await holdingProxy(redis.port)
    try {
      const h = instance(proxy.url)
      await h.set('k1', Promise.resolve(useCacheEntry('v1', { tags: ['t'] })))
      assert.equal(await read(h, 'k1'), 'v1')
      proxy.hold()
      assert.equal(proxy.held.length, 1)
      // Before: a miss for as long as the proxy held the connection (30 s, by hand).
      assert.equal(await hitWithin(h, 'k1', 10_000), 'v1')
      assert.ok(proxy.held[0].closed, 'the held connection was closed by the instance')
      assert.equal(stats().breaker.state, 'closed')
    } finally {
      proxy.stop()
    }
  })

  test('one whose login is never answered is given up and a new one made', async () => {
    const writer = instance(redis.url)
    await writer.set('k2', Promise.resolve(useCacheEntry('v2', { tags: ['t'] })))
    const proxy = await holdingProxy(redis.port)
    try {
      proxy.holdNew = true
      const h = instance(proxy.url)
      assert.equal(await read(h, 'k2'), undefined, 'no answer within the connect budget')
      assert.equal(proxy.held.length, 1)
      proxy.holdNew = false
      // Before: every read failed at once ("redis is not connected"), the login still waited.
      assert.equal(await hitWithin(h, 'k2', 10_000), 'v2')
      assert.ok(proxy.held[0].closed, 'the held connection was closed by the instance')
    } finally {
      proxy.stop()
    }
  })
})

describe('the line of a login given up', () => {
  // The transport alone (a handler's tag sync sends commands on its own timer, and the check
  // runs on every command): its traffic is the test's.
  test('says how long the connection was not usable, not the bound', async () => {
    const proxy = await holdingProxy(redis.port)
    const { transport, lines } = transportOn(proxy.url)
    // RedisTransport hungAfter: the longest budget, plus the connect budget, plus node-redis's
    // longest pause between reconnection attempts.
    const bound = 400 + 400 + MAX_RECONNECT_DELAY_MS
    try {
      proxy.holdNew = true
      const began = performance.now()
      await assert.rejects(transport.send(['PING']), /redis connect took longer than 400 ms/)
      assert.equal(proxy.held.length, 1)
      // The attempt began after `began` and before the proxy accepted its connection.
      const accepted = proxy.held[0].openedAt
      // The traffic under test: no command until 1 s after the bound, then one, which finds
      // the login unanswered for that long and gives it up.
      await sleep(accepted + bound + 1000 - performance.now())
      await assert.rejects(transport.send(['PING']), /redis is not connected/)
      const elapsed = performance.now() - began
      const given = lines.filter((l) => /closing it and connecting anew/.test(l))
      assert.equal(given.length, 1, lines.join('\n'))
      const ms = Number(/not usable (\d+) ms after connecting/.exec(given[0])?.[1])
      assert.ok(
        ms >= bound + 1000 && ms <= elapsed,
        `${given[0]}: at least ${String(bound + 1000)} ms, at most the ${String(Math.round(elapsed))} ms since the first command`,
      )
    } finally {
      await transport.close()
      proxy.stop()
    }
  })
})

describe('a connection that answers, slowly', () => {
  // A read budget longer than the write and connect budgets (nothing requires the read budget
  // to be the shorter): Redis runs another client's slow command for 3 s, so the reads and
  // writes sent meanwhile are answered after it, the read within its 6 s budget. The writes
  // time out, hearing nothing for 3 s, longer than a bound that left the read budget out
  // (2.4 s with these budgets); the read must still get its value.
  test('a read still within its budget is not cut off by the connection being given up', async () => {
    const h = instance(redis.url, {
      readTimeoutMs: 6000,
      writeTimeoutMs: 200,
      connectTimeoutMs: 200,
      // Every timed-out write is sent (none kept back by an open breaker).
      breakerFailures: 1000,
      breakerMinCalls: 1000,
    })
    await h.set('slow-1', Promise.resolve(useCacheEntry('v-slow', { tags: ['t'] })))
    assert.equal(await read(h, 'slow-1'), 'v-slow')
    // Busy for 3 s by Redis's own clock (a script: Redis runs nothing else meanwhile).
    const busy = redisCommand(
      redis.port,
      [
        'EVAL',
        "local function us() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end " +
          'local s = us() while us() - s < 3000000 do end return 1',
        '0',
      ],
      { timeoutMs: 10_000 },
    )
    // The script is running once a PING on another connection goes unanswered for 50 ms.
    for (;;) {
      const answered = await redisCommand(redis.port, ['PING'], { timeoutMs: 50 }).then(
        () => true,
        () => false,
      )
      if (!answered) break
    }
    const lines = await capture(async () => {
      const slowRead = read(h, 'slow-1')
      for (let i = 0; i < 28; i++) {
        await h.set(`slow-w${String(i)}`, Promise.resolve(useCacheEntry('w', { tags: ['t'] })))
        await sleep(100)
      }
      assert.equal(await busy, 1)
      assert.equal(await slowRead, 'v-slow', 'the read within its budget got its value')
    })
    assert.ok(
      !lines.some((l) => /closing it and connecting anew/.test(l)),
      `the connection was not given up:\n${lines.join('\n')}`,
    )
  })
})

describe('a stall of this process', () => {
  // The event loop blocked for longer than a connection may answer nothing (a long synchronous
  // render), replies on their way meanwhile: read before any deadline is called back, so no
  // command timed out and the connection is not given up.
  test('a stall longer than the silence allowed gives up no connection', async () => {
    const h = instance(redis.url)
    const keys = Array.from({ length: 8 }, (_, i) => `stall-${String(i)}`)
    for (const key of keys) await h.set(key, Promise.resolve(useCacheEntry(key, { tags: ['t'] })))
    for (const key of keys) assert.equal(await read(h, key), key)
    const lines = await capture(async () => {
      const reads = keys.map((key) => read(h, key))
      await new Promise((resolve) => {
        setImmediate(() => {
          // Longer than the 2.8 s a connection may answer nothing with these budgets.
          const end = performance.now() + 3000
          while (performance.now() < end) {
            // busy
          }
          resolve()
        })
      })
      assert.deepEqual(await Promise.all(reads), keys)
      // And the commands sent right after it.
      for (const key of keys) assert.equal(await read(h, key), key)
    })
    assert.ok(
      !lines.some((l) => /closing it and connecting anew/.test(l)),
      `the connection was not given up:\n${lines.join('\n')}`,
    )
  })
})

describe('logins that stay unanswered for several periods', () => {
  test('each connection given up is closed: one connection is left once logins are answered', async () => {
    const writer = instance(redis.url)
    await writer.set('k4', Promise.resolve(useCacheEntry('v4', { tags: ['t'] })))
    const proxy = await holdingProxy(redis.port)
    try {
      proxy.holdNew = true
      const h = instance(proxy.url)
      // Reads as traffic sends them until a third login is held: two connections given up in
      // turn (2.8 s each with these budgets), bounded at 15 s.
      const until = Date.now() + 15_000
      while (proxy.held.length < 3 && Date.now() < until) {
        assert.equal(await read(h, 'k4'), undefined)
        await sleep(100)
      }
      assert.ok(proxy.held.length >= 3, `${String(proxy.held.length)} logins held`)
      proxy.holdNew = false
      assert.equal(await hitWithin(h, 'k4', 10_000), 'v4')
      // A reconnection loop left running by a client given up opens its next connection at most
      // node-redis's longest pause between attempts plus a connect budget after its previous
      // one closed: once the proxy has seen no connection opened or closed for that long, none
      // is on its way.
      await proxy.quiet(MAX_RECONNECT_DELAY_MS + BUDGETS.connectTimeoutMs, { timeoutMs: 10_000 })
      assert.equal(await read(h, 'k4'), 'v4')
      assert.equal(proxy.open(), 1, 'connections the instance keeps open')
    } finally {
      proxy.stop()
    }
  })
})

describe('close() and connections given up', () => {
  test('close() right after a login is given up returns, with nothing left open', async () => {
    const proxy = await holdingProxy(redis.port)
    const unhandled = []
    const onUnhandled = (err) => unhandled.push(err)
    process.on('unhandledRejection', onUnhandled)
    try {
      proxy.holdNew = true
      const h = instance(proxy.url)
      const lines = await capture(async () => {
        // Until the first login is given up (a new one begun, held too).
        while (proxy.held.length < 2) {
          assert.equal(await read(h, 'k5'), undefined)
          await sleep(50)
        }
      })
      assert.ok(lines.some((l) => /closing it and connecting anew/.test(l)))
      const outcome = await Promise.race([
        close().then(() => 'closed'),
        sleep(3000).then(() => 'still closing after 3 s'),
      ])
      assert.equal(outcome, 'closed')
      // Closed by the time the proxy sees it (its close event comes a turn later).
      for (let i = 0; i < 100 && proxy.open() > 0; i++) await sleep(20)
      assert.equal(proxy.open(), 0, 'connections left open')
      assert.deepEqual(unhandled, [])
    } finally {
      process.off('unhandledRejection', onUnhandled)
      proxy.stop()
    }
  })
})

describe('on Redis Cluster', () => {
  // No proxy here (the layout names the nodes' own addresses): every node is paused for longer
  // than a connection may answer nothing, so the cluster client is given up and connected
  // anew while Redis cannot answer, and must find the layout again once it can.
  test('a cluster client given up while every node is paused connects anew: hits come back', async () => {
    const cluster = await startRedisCluster({ logDir })
    const pids = cluster.nodes.map((n) => n.child.pid)
    try {
      const h = instance(cluster.url, { cluster: true })
      await h.set('k3', Promise.resolve(useCacheEntry('v3', { tags: ['t'] })))
      assert.equal(await read(h, 'k3'), 'v3')
      const lines = await capture(async () => {
        for (const pid of pids) process.kill(pid, 'SIGSTOP')
        try {
          // Longer than the 2.8 s a connection may answer nothing with these budgets.
          const until = Date.now() + 4000
          while (Date.now() < until) {
            assert.equal(await read(h, 'k3'), undefined)
            await sleep(100)
          }
        } finally {
          for (const pid of pids) process.kill(pid, 'SIGCONT')
        }
        assert.equal(await hitWithin(h, 'k3', 10_000), 'v3')
      })
      assert.ok(
        lines.some((l) => /closing it and connecting anew/.test(l)),
        `the client was given up:\n${lines.join('\n')}`,
      )
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGCONT')
        } catch {
          // Stopped already.
        }
      }
      await close()
      await cluster.stop()
    }
  })
})

describe('a silence given up once', () => {
  // Commands sent together on a connection that answers nothing time out together (one call
  // of the deadline queue): the first gives the connection up, and those after it were sent
  // on the connection given up, not on the new one. Each used to count the silence of the
  // old connection again, and give up the new one in turn: a new client per command.
  test('commands timing out together on a silent connection give it up once', async () => {
    const proxy = await holdingProxy(redis.port)
    const { transport, lines } = transportOn(proxy.url)
    const bound = 400 + 400 + MAX_RECONNECT_DELAY_MS
    try {
      assert.equal(String(await transport.send(['PING'])), 'PONG')
      proxy.hold()
      const first = performance.now()
      await assert.rejects(transport.send(['PING']), /took longer than 150 ms/)
      await sleep(first + bound + 200 - performance.now())
      const together = await Promise.allSettled([1, 2, 3, 4].map(() => transport.send(['PING'])))
      assert.ok(together.every((r) => r.status === 'rejected'))
      const given = lines.filter((l) => /closing it and connecting anew/.test(l))
      assert.equal(given.length, 1, lines.join('\n'))
      // The new connection answers, and it is the only one made since.
      for (let i = 0; ; i++) {
        const r = await transport.send(['PING']).then(String, () => undefined)
        if (r === 'PONG') break
        assert.ok(i < 50, 'the new connection answers')
        await sleep(20)
      }
      assert.equal(proxy.conns.length, 2, 'one new connection')
    } finally {
      await transport.close()
      proxy.stop()
    }
  })
})
