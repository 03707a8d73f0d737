// RedisTransport.close() closes gracefully, waiting for replies (bounded by 1 s), only while a
// command's caller still waits for its reply (`awaited`: sent, neither settled nor abandoned at
// its budget); with none, it closes at once. This is the other half of the test in
// lost-records-at-close.test.mjs ("close() while Redis does not answer" takes no 1 s): a
// reply someone awaits is still waited for, and one abandoned at its budget is not.
// Against a real redis-server. Steps are ordered by what the test observes (a client blocked in
// Redis, a promise settled), never by a sleep.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { transportOn } from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-close-awaited-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await redis?.stop()
})

/** Resolves once Redis holds `n` clients blocked (a BLPOP waiting for its list). */
async function blockedClients(n) {
  for (let i = 0; i < 500; i++) {
    const info = String(await redisCommand(redis.port, ['INFO', 'clients']))
    const m = /blocked_clients:(\d+)/.exec(info)
    if (m !== null && Number(m[1]) === n) return
    await new Promise((resolve) => setImmediate(resolve))
  }
  throw new Error(`Redis never held ${String(n)} blocked client(s)`)
}

/** The outcome of `p`, once settled: `{ ok, value }` or `{ ok: false, err }`. */
const outcome = (p) =>
  p.then(
    (value) => ({ ok: true, value }),
    (err) => ({ ok: false, err }),
  )

test('close() waits for a reply a caller still awaits: it gets it, not a disconnection', async () => {
  const { transport } = transportOn(redis.url, { longestCommandMs: 5000, connectTimeoutMs: 2000 })
  const key = 'close-awaited:list'
  try {
    await transport.send(['PING'])
    // A command whose reply comes only when the test says (a request's read in flight at
    // close(), answered late), under a budget far longer than the test.
    const reply = outcome(transport.send(['BLPOP', key, '0'], { timeoutMs: 5000 }))
    await blockedClients(1)
    const closing = transport.close()
    // Redis answers once close() began: the caller reads the reply.
    await redisCommand(redis.port, ['LPUSH', key, 'v'])
    const got = await reply
    assert.equal(got.ok, true, `the awaited command failed at close(): ${String(got.err)}`)
    assert.deepEqual(
      got.value.map((b) => String(b)),
      [key, 'v'],
    )
    await closing
  } finally {
    await transport.close()
    await redisCommand(redis.port, ['DEL', key])
  }
})

test('close() waits for the awaited reply beside a command abandoned at its budget', async () => {
  const { transport } = transportOn(redis.url, { longestCommandMs: 5000, connectTimeoutMs: 2000 })
  const abandonedKey = 'close-awaited:abandoned'
  const key = 'close-awaited:awaited'
  try {
    await transport.send(['PING'])
    // Abandoned at its 100 ms budget: nobody reads its reply.
    const abandoned = outcome(transport.send(['BLPOP', abandonedKey, '0'], { timeoutMs: 100 }))
    const reply = outcome(transport.send(['BLPOP', key, '0'], { timeoutMs: 5000 }))
    await blockedClients(1)
    const gone = await abandoned
    assert.equal(gone.ok, false)
    assert.match(String(gone.err), /took longer than 100 ms/)
    const closing = transport.close()
    // The abandoned BLPOP is answered first on the connection, then the awaited one.
    await redisCommand(redis.port, ['LPUSH', abandonedKey, 'x'])
    await redisCommand(redis.port, ['LPUSH', key, 'v'])
    const got = await reply
    assert.equal(got.ok, true, `the awaited command failed at close(): ${String(got.err)}`)
    assert.deepEqual(
      got.value.map((b) => String(b)),
      [key, 'v'],
    )
    await closing
  } finally {
    await transport.close()
    await redisCommand(redis.port, ['DEL', key, abandonedKey])
  }
})

test('commands settled every way leave none awaited: close() closes at once', async () => {
  const { transport } = transportOn(redis.url, { longestCommandMs: 5000, connectTimeoutMs: 2000 })
  const key = 'close-awaited:none'
  try {
    await transport.send(['PING'])
    await transport.send(['SET', key, 'v'])
    // An error reply; a command abandoned at its budget, then answered late; one abandoned
    // and left unanswered.
    await assert.rejects(transport.send(['INCR', key]), /not an integer/)
    const late = outcome(transport.send(['BLPOP', `${key}:late`, '0'], { timeoutMs: 50 }))
    await blockedClients(1)
    assert.equal((await late).ok, false)
    await redisCommand(redis.port, ['LPUSH', `${key}:late`, 'x'])
    // Its late reply read (a PING after it on the same connection answered).
    await transport.send(['PING'])
    const left = outcome(transport.send(['BLPOP', `${key}:left`, '0'], { timeoutMs: 50 }))
    await blockedClients(1)
    assert.equal((await left).ok, false)
    // The count close() goes by (private: the transport's own bookkeeping).
    assert.equal(transport.awaited, 0)
    // No reply awaited: close() does not wait for the abandoned BLPOP's (node-redis's graceful
    // close would until its 1 s bound); the socket is closed, and Redis unblocks its client.
    await transport.close()
    await blockedClients(0)
  } finally {
    await transport.close()
    await redisCommand(redis.port, ['DEL', key, `${key}:late`, `${key}:left`])
  }
})
