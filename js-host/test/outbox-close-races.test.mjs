// The last attempt of close() at the outbox (374267a) against a real redis-server, paused
// and resumed by PID (only the one this file started).
//
// 1. The forced command's reply goes through the guard's settle, which sees the outbox still
//    holding the head (acknowledged only after the reply reaches the replay) and calls
//    onBacklog: a second, ordinary drain starts beside the last attempt and sends the same
//    revalidation again, and each one after it.
// 2. close() called again while the first call still sends (two shutdown hooks, SIGTERM then
//    SIGINT) finds the registry already empty and resolves at once: its caller exits before the
//    outbox is sent or reported lost.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { createClient } from 'redis'

import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { capture, resumeAndStop, settled } from './helpers.mjs'

let redis
let raw

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-outbox-races-'))
  redis = await startRedis({ logDir })
  raw = createClient({ url: redis.url })
  await raw.connect()
})

after(async () => {
  await close()
  await raw?.close()
  await resumeAndStop(redis)
})

/** An instance: read and write budgets of `budgetMs`, short by default (the pause exhausts them). */
function instance(prefix, n, budgetMs = 200) {
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix,
    deploymentId: 'd1',
    leases: false,
    readTimeoutMs: budgetMs,
    writeTimeoutMs: budgetMs,
    // The breaker stays closed: the queued revalidation failed by a timeout only.
    breakerFailures: 1000,
    connectTimeoutMs: 3_000 + n,
  })
}

/** TAG_UPDATE calls Redis ran for `prefix` (each one increments the meta hash's `ver`). */
async function updates(prefix) {
  const [key] = await raw.keys(`${prefix}:tags:*:meta`)
  if (key === undefined) return 0
  return Number((await raw.hGet(key, 'ver')) ?? 0)
}

/**
 * Set-up no budget of the instance under test can fail: an instance of `prefix` with long
 * budgets pulls and revalidates first (Redis loads both scripts, and the tag state exists),
 * then is closed, so that the test's close() has only the instance under test to close.
 */
async function warmed(prefix, n) {
  const w = instance(prefix, n, 10_000)
  await w.refreshTags()
  await w.updateTags([`${prefix}-warm`])
  await close()
}

test('close() sends a queued revalidation once more, not twice', async () => {
  // Loads the update script: the command abandoned below runs once Redis resumes (a NOSCRIPT
  // reply would leave it unrun, and its EVAL fallback is never sent).
  await warmed('races1', 11)
  const a = instance('races1', 1)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  const before = await updates('races1')
  process.kill(redis.pid, 'SIGSTOP')
  let lines
  try {
    // Sent, then given up on at its 200 ms deadline: node-redis keeps it queued, and Redis runs
    // it once resumed (1 update).
    lines = await capture(() => a.updateTags(['races-t']))
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  assert.ok(
    lines.some((l) => /queued/.test(l)),
    `queued: ${lines.join('\n')}`,
  )
  // Redis runs the abandoned command within milliseconds of the resume: polled for, before the
  // retry timer's first attempt (at least 100 ms after the failure).
  let abandoned = 0
  const until = performance.now() + 300
  while (abandoned === 0 && performance.now() < until)
    abandoned = (await updates('races1')) - before
  assert.equal(abandoned, 1, 'the command abandoned at its deadline ran once Redis resumed')
  // Before the retry timer fires: the last attempt sends it once more.
  const atClose = await capture(() => close())
  const ran = (await updates('races1')) - before - abandoned
  assert.equal(
    ran,
    1,
    `close() ran TAG_UPDATE ${String(ran)} times for one queued revalidation ` +
      `(${String(abandoned)} before it: the command abandoned at its deadline); ` +
      `close() logged ${JSON.stringify(atClose)}`,
  )
})

test('a second close() waits for the first one', async () => {
  await warmed('races2', 12)
  const a = instance('races2', 2)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  process.kill(redis.pid, 'SIGSTOP')
  let first
  try {
    await capture(() => a.updateTags(['races-lost']))
    // Redis still hangs: the first close() spends the write budget on its last attempt, then
    // names what it lost.
    const lines = await capture(async () => {
      first = close()
      await close()
    })
    assert.ok(
      lines.some((l) => /closing with 1 queued revalidation\(s\) not sent/.test(l)),
      `the second close() resolved before the first one sent or reported the outbox: ${JSON.stringify(lines)}`,
    )
  } finally {
    process.kill(redis.pid, 'SIGCONT')
    await first
  }
})
