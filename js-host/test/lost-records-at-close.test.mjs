// Tag records Redis lost (a flush, a restart without persistence, a failover that lost the last
// writes) that this process knows and has not given back yet when it shuts down (`close()`, as
// a SIGTERM handler calls it during a deploy or a scale-down), against a real redis-server.
// The process learned of the loss by a pull; its merge was refused (OOM under `noeviction`),
// and the retry waits for the breaker, which a pause opened. Redis answers again, and the
// process is stopped before its retry: before, close() made its last attempt for the outbox
// only, the revalidation was gone from Redis with the process, and another instance served the
// entry it had invalidated as fresh.
// The test pauses and resumes only the redis-server it started, by PID.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { capture, now, resumeAndStop, settled, useCacheEntry } from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-lost-close-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await resumeAndStop(redis)
})

/**
 * One instance of the fleet: a runtime of its own (the odd connect budget keeps them apart).
 * `budgetMs`: its read and write budgets, short by default (the pause must exhaust them).
 * Pulling on each refresh (`tagSync: 'pull'`): the loss is learned when the test says.
 */
function instance(prefix, n, budgetMs = 200) {
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix,
    deploymentId: 'd1',
    leases: false,
    tagSync: 'pull',
    readTimeoutMs: budgetMs,
    writeTimeoutMs: budgetMs,
    breakerFailures: 2,
    // Long enough that the retry cannot give the records back between the pause and close().
    breakerOpenMs: 5_000,
    breakerMaxOpenMs: 5_000,
    connectTimeoutMs: 3_000 + n,
  })
}

/** The tag state's keys (what a flush or a failover that lost the last writes takes). */
const tagKeys = (prefix) => ['state', 'log', 'meta'].map((k) => `${prefix}:tags:{${prefix}}:${k}`)

/** Waits for `fn` to return a truthy value: at most `ms`, checking every 20 ms. */
async function until(fn, ms, what) {
  const deadline = performance.now() + ms
  for (;;) {
    if (await fn()) return
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * An entry tagged `tag` stored before anything else (by an instance with long budgets, which
 * also has Redis load every script the test's instance sends), then an instance `a` whose
 * revalidation of `tag` reached Redis; then Redis loses the tag state, `a` learns it by a pull,
 * and its merge is refused (OOM). Returns `a` and the lines logged, with Redis still refusing
 * writes (`writes()` lets it take them again).
 */
async function lostAndNotGivenBack(prefix, tag) {
  const w = instance(prefix, 100, 10_000)
  await w.refreshTags()
  await w.updateTags([`${prefix}-warm`])
  await w.set(
    'page-data',
    Promise.resolve(useCacheEntry('old', { tags: [tag], timestamp: now() - 5 })),
  )
  assert.ok(await w.get('page-data', []), 'stored')
  await close()

  const a = instance(prefix, 1)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await a.updateTags([tag])
  const [state] = tagKeys(prefix)
  assert.notEqual(await redisCommand(redis.port, ['HGET', state, tag]), null, 'in Redis')
  // Redis loses it; then it refuses writes, so the merge that gives it back fails.
  await redisCommand(redis.port, ['DEL', ...tagKeys(prefix)])
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'])
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '1'])
  const writes = () => redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '0'])
  try {
    const lines = await capture(async (seen) => {
      await a.refreshTags()
      await until(
        () => seen.some((l) => /lost tag records not yet given back to Redis/.test(l)),
        5_000,
        'the merge to be refused',
      )
    })
    // Its own and the warming instance's.
    assert.ok(
      lines.some((l) => /lacks 2 revalidation record\(s\) this instance knows of/.test(l)),
      `the pull learned of the loss: ${lines.join('\n')}`,
    )
  } catch (err) {
    await writes()
    throw err
  }
  return { a, writes }
}

/** Opens `a`'s breaker: two reads time out while Redis is paused. */
async function openBreaker(a) {
  process.kill(redis.pid, 'SIGSTOP')
  try {
    assert.equal(await a.get('other-1', []), undefined)
    assert.equal(await a.get('other-2', []), undefined)
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  assert.equal(stats()?.breaker.state, 'open')
  // The commands sent during the pause run now, under the OOM still.
  await redisCommand(redis.port, ['PING'])
}

test('tag records Redis lost and this process has not given back reach Redis at close()', async () => {
  const prefix = 'lostclose'
  const { a, writes } = await lostAndNotGivenBack(prefix, 'lc-t')
  try {
    await openBreaker(a)
  } finally {
    await writes()
  }
  // Redis takes writes again; the process is told to stop before its retry (the breaker's).
  const atClose = await capture(() => close())

  // Another instance of the fleet (or the same one restarted) judges the old entry stale.
  const b = instance(prefix, 2)
  await b.refreshTags()
  assert.equal(
    await b.get('page-data', []),
    undefined,
    'close() gives the lost record of lc-t back, the breaker open or not: another instance no ' +
      `longer serves the entry it invalidated; close() logged: ${JSON.stringify(atClose)}`,
  )
  const [state] = tagKeys(prefix)
  assert.notEqual(await redisCommand(redis.port, ['HGET', state, 'lc-t']), null, 'in Redis again')
  assert.ok(!atClose.some((l) => /closing with/.test(l)), 'nothing reported lost')
  await close()
})

test('tag records close() cannot give back are reported once', async () => {
  const prefix = 'lostclose2'
  const { writes } = await lostAndNotGivenBack(prefix, 'lc-u')
  let atClose
  try {
    // Redis still refuses writes when the process closes.
    atClose = await capture(() => close())
  } finally {
    await writes()
  }
  const lost = atClose.filter((l) => /lost tag record/.test(l))
  assert.equal(lost.length, 1, `one line: ${JSON.stringify(atClose)}`)
  assert.match(
    lost[0],
    /closing with lost tag records not given back to Redis \(2 waiting; Redis answered the merge with OOM\): .*other instances may serve entries those revalidations invalidated.*; among them: (lc-u,lostclose2-warm|lostclose2-warm,lc-u)$/,
  )
  assert.equal(await redisCommand(redis.port, ['HGET', tagKeys(prefix)[0], 'lc-u']), null)
})

test('a close() while Redis does not answer gives up on lost tag records within the budget', async () => {
  const prefix = 'lostclose3'
  const { writes } = await lostAndNotGivenBack(prefix, 'lc-v')
  let atClose
  let ms
  process.kill(redis.pid, 'SIGSTOP')
  try {
    const t0 = performance.now()
    atClose = await capture(() => close())
    ms = performance.now() - t0
  } finally {
    process.kill(redis.pid, 'SIGCONT')
    await writes()
  }
  // One attempt under the write budget (200 ms, plus the connection's), then the line.
  assert.ok(ms < 4_000, `close() took ${ms.toFixed(0)} ms`)
  const lost = atClose.filter((l) => /lost tag record/.test(l))
  assert.equal(lost.length, 1, `one line: ${JSON.stringify(atClose)}`)
  assert.match(lost[0], /\(2 waiting; Redis did not answer it in time\)/)
})

test('a record given back at close never moves back what Redis holds since for its tag', async () => {
  // TAG_MERGE, forced at close, merges field by field (max; the stronger scheduled expiry):
  // another instance's later revalidation of the same tag, written after the loss, stays.
  const prefix = 'lostclose4'
  const { a, writes } = await lostAndNotGivenBack(prefix, 'lc-w')
  try {
    // The retry waits for the breaker: the record is still to give back at close.
    await openBreaker(a)
  } finally {
    await writes()
  }
  const [state] = tagKeys(prefix)
  const b = instance(prefix, 2, 10_000)
  await b.refreshTags()
  await new Promise((r) => setTimeout(r, 5))
  await b.updateTags(['lc-w'])
  const newer = await redisCommand(redis.port, ['HGET', state, 'lc-w'])
  assert.equal(await redisCommand(redis.port, ['HGET', state, `${prefix}-warm`]), null, 'lost')
  assert.notEqual(newer, null)
  const atClose = await capture(() => close())
  const after = await redisCommand(redis.port, ['HGET', state, 'lc-w'])
  const fields = (r) => String(r).split(',').map(Number)
  const [n, m] = [fields(newer), fields(after)]
  // stale, expired and updated_at never lower; no scheduled expiry in either.
  for (const i of [0, 1, 4]) {
    assert.ok(m[i] >= n[i], `field ${String(i)}: ${String(after)} after ${String(newer)}`)
  }
  assert.deepEqual([m[0], m[1], m[4]], [n[0], n[1], n[4]], `unchanged: ${JSON.stringify(atClose)}`)
  assert.ok(!atClose.some((l) => /closing with/.test(l)), JSON.stringify(atClose))
  // The merge went out at close: it gave back the other record it carried too.
  assert.notEqual(
    await redisCommand(redis.port, ['HGET', state, `${prefix}-warm`]),
    null,
    'given back',
  )
})

test('a pull out when close() is called: the loss it learns is given back at close', async () => {
  // SIGTERM while the pull that learns of a flush is out (here Redis is paused, then resumed
  // once close() was called): before, close() did not wait for it, found nothing to send, and
  // the records the pull then found lost went nowhere, without a line.
  const prefix = 'lostclose5'
  const w = instance(prefix, 100, 10_000)
  await w.refreshTags()
  await w.set(
    'page-data',
    Promise.resolve(useCacheEntry('old', { tags: ['lc-x'], timestamp: now() - 5 })),
  )
  await close()
  const a = instance(prefix, 5, 3_000)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await a.updateTags(['lc-x'])
  await redisCommand(redis.port, ['DEL', ...tagKeys(prefix)])
  let atClose
  process.kill(redis.pid, 'SIGSTOP')
  try {
    const pulling = a.refreshTags()
    await new Promise((r) => setTimeout(r, 50))
    const closing = capture(() => close())
    await new Promise((r) => setTimeout(r, 100))
    process.kill(redis.pid, 'SIGCONT')
    atClose = await closing
    await pulling
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  assert.notEqual(
    await redisCommand(redis.port, ['HGET', tagKeys(prefix)[0], 'lc-x']),
    null,
    `the record the pull found lost was given back at close: ${JSON.stringify(atClose)}`,
  )
  const b = instance(prefix, 6)
  await b.refreshTags()
  assert.equal(await b.get('page-data', []), undefined, 'another instance judges it stale')
  await close()
})

test('close() while a send is out to a Redis that stopped answering: one write budget, one line', async () => {
  // The revalidation's send is out when Redis stops answering and the process is told to stop:
  // it fails at its budget, and that is the last attempt's first failure. Before, close() sent
  // it again, forced, and waited a whole write budget more.
  const prefix = 'lostclose6'
  const budgetMs = 1_500
  const a = instance(prefix, 7, budgetMs)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await a.updateTags([`${prefix}-warm`])
  let atClose
  let ms
  process.kill(redis.pid, 'SIGSTOP')
  try {
    const sending = a.updateTags(['lc-y2'])
    await new Promise((r) => setTimeout(r, 20))
    const t0 = performance.now()
    atClose = await capture(() => close())
    ms = performance.now() - t0
    await sending
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  assert.deepEqual(
    atClose.filter((l) => /closing with/.test(l)).map((l) => l.replace(/:.*/s, '')),
    [
      '[fleetcache] closing with 1 queued revalidation(s) not sent to Redis (Redis did not answer it in time)',
    ],
  )
  // What is left of the send's budget, then the connection's 1 s grace for pending replies
  // (about 2.5 s); before, a whole budget more (about 4 s).
  assert.ok(
    ms < 2 * budgetMs + 500,
    `close() took ${ms.toFixed(0)} ms (one write budget: ${String(budgetMs)})`,
  )
})

test('a loss no pull has seen yet: close() pulls once and gives the record back', async () => {
  // A failover that lost the last writes, then a deploy: the instance that knows the
  // revalidation has served no request since (no pull), and is told to stop. Before, close()
  // asked Redis nothing, found nothing to send, and the revalidation was gone from Redis with
  // the process: another instance served the entry it had invalidated as fresh.
  const prefix = 'lostclose7'
  const w = instance(prefix, 100, 10_000)
  await w.refreshTags()
  await w.set(
    'page-data',
    Promise.resolve(useCacheEntry('old', { tags: ['lc-z'], timestamp: now() - 5 })),
  )
  await close()
  const a = instance(prefix, 8, 3_000)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await a.updateTags(['lc-z'])
  await redisCommand(redis.port, ['DEL', ...tagKeys(prefix)])
  const atClose = await capture(() => close())
  assert.notEqual(
    await redisCommand(redis.port, ['HGET', tagKeys(prefix)[0], 'lc-z']),
    null,
    `close() learned of the loss and gave the record back: ${JSON.stringify(atClose)}`,
  )
  const b = instance(prefix, 9)
  await b.refreshTags()
  assert.equal(await b.get('page-data', []), undefined, 'another instance judges it stale')
  await close()
})
