// close() with tag sync by push while Redis hangs (the test's own redis-server,
// paused by PID before the handler connects, as a Redis stuck in a long fork or on a saturated
// host). The transport's connection closes within its one-second grace; the announcement
// subscriber's `client.close()` (tag-channel.ts) waits for node-redis's pending commands (its
// SSUBSCRIBE) with no deadline, so close() never resolves while Redis hangs, and a shutdown
// hook that awaits it holds the process until it is killed. Then it waited 1 s for that reply,
// which nobody reads, after the transport's own second: 2 s where docs/operating.md says one.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { capture, resumeAndStop, useCacheEntry } from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-push-close-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await resumeAndStop(redis)
})

test('close() in push mode returns while Redis hangs', async () => {
  process.kill(redis.pid, 'SIGSTOP')
  let outcome
  try {
    const h = createUseCacheHandler({
      redisUrl: redis.url,
      prefix: 'push-close',
      deploymentId: 'd1',
      leases: false,
      tagSync: 'push',
    })
    await capture(async () => {
      // Starts the runtime (and its subscriber) against the hung Redis: a miss.
      assert.equal(await h.get('k', []), undefined)
      // The bound: the connection's grace (1 s) and a connect budget (1 s), with room to spare.
      const bound = delay(8_000, 'still closing after 8 s', { ref: false })
      outcome = await Promise.race([close().then(() => 'closed'), bound])
    })
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  assert.equal(outcome, 'closed')
})

test('close() in push mode while Redis hangs, no reply awaited: closes at once', async () => {
  process.kill(redis.pid, 'SIGSTOP')
  let ms
  try {
    const h = createUseCacheHandler({
      redisUrl: redis.url,
      prefix: 'push-close-none',
      deploymentId: 'd1',
      leases: false,
      tagSync: 'push',
      connectTimeoutMs: 300,
    })
    await capture(async () => {
      // The transport's connection never gets past its login (nothing awaited on it); the
      // channel's waits for its own, which nobody reads once closed.
      assert.equal(await h.get('k', []), undefined)
      const t0 = performance.now()
      await close()
      ms = performance.now() - t0
    })
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  // Before, the channel's close waited 1 s for its pending reply.
  assert.ok(ms < 500, `close() took ${ms.toFixed(0)} ms`)
})

/** The RedisTransport of the one runtime open (behind its GuardedTransport). */
function openTransport() {
  const runtimes = [...globalThis[Symbol.for('fleetcache.runtimes')].values()]
  assert.equal(runtimes.length, 1, 'one runtime open')
  return runtimes[0].transport.inner
}

test("close() in push mode once Redis hangs: the connection's second for an awaited write, not a second more for the channel", async () => {
  const prefix = 'push-close-wait'
  const h = createUseCacheHandler({
    redisUrl: redis.url,
    prefix,
    deploymentId: 'd1',
    leases: false,
    tagSync: 'push',
    // The write is still awaited at close(), and the breaker stays closed so that it is sent;
    // the pull close() makes of its own costs a read budget.
    readTimeoutMs: 200,
    writeTimeoutMs: 10_000,
    breakerFailures: 100,
  })
  let ms
  await capture(async () => {
    assert.equal(await h.get('k', []), undefined)
    // Subscribed: Redis confirmed the channel's SSUBSCRIBE.
    const channel = `${prefix}:tags:{${prefix}}:announce`
    for (let i = 0; ; i++) {
      const [, n] = await redisCommand(redis.port, ['PUBSUB', 'SHARDNUMSUB', channel])
      if (n === 1) break
      assert.ok(i < 2000, 'the channel subscribed')
      await new Promise((resolve) => setImmediate(resolve))
    }
    // The channel's connection is cut and Redis hangs before node-redis reconnects it (at
    // least 25 ms later): its new connection's login, then its SSUBSCRIBE, wait on the hung
    // Redis, as after any blip in an outage. The transport's connection stays ready.
    await redisCommand(redis.port, ['CLIENT', 'KILL', 'TYPE', 'pubsub'])
    process.kill(redis.pid, 'SIGSTOP')
    try {
      const stored = h.set('k', Promise.resolve(useCacheEntry('v'))).catch(() => undefined)
      const transport = openTransport()
      for (let i = 0; i < 10_000 && transport.awaited === 0; i++) {
        await new Promise((resolve) => setImmediate(resolve))
      }
      assert.equal(transport.awaited, 1, 'the write is sent and awaited')
      const t0 = performance.now()
      await close()
      ms = performance.now() - t0
      await stored
    } finally {
      process.kill(redis.pid, 'SIGCONT')
    }
  })
  // close()'s own pull (200 ms, unanswered), then the connection waits at most 1 s for the
  // write's reply, which the hung Redis never sends; the channel's connection waits for
  // nothing (nobody reads a reply of its once closed). Before, the channel waited 1 s of its
  // own between the two: about 2.2 s.
  assert.ok(ms >= 1100 && ms < 1800, `close() took ${ms.toFixed(0)} ms`)
})
