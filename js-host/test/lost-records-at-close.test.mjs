// Tag records Redis lost (a flush, a restart without persistence, a failover that lost the last
// writes) that this process knows and has not given back yet when it shuts down (`close()`, as
// a SIGTERM handler calls it during a deploy or a scale-down), against a real redis-server.
// The process learned of the loss by a pull; its merge was refused (OOM under `noeviction`),
// and the retry waits for the breaker, which a pause opened. Redis answers again, and the
// process is stopped before its retry: before, close() made its last attempt for the outbox
// only, the revalidation was gone from Redis with the process, and another instance served the
// entry it had invalidated as fresh.
// The test pauses and resumes only the redis-server it started, by PID. It orders its steps by
// what it observes (a command passing the holding proxy, a line logged), never by a sleep.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import {
  capture,
  now,
  pausedRedisInstance,
  resumeAndStop,
  settled,
  startHoldingProxy,
  useCacheEntry,
} from './helpers.mjs'

let redis
/** Between the instances that need an exact interleaving and Redis (helpers.mjs). */
let proxy

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-lost-close-'))
  redis = await startRedis({ logDir })
  proxy = await startHoldingProxy(new URL(redis.url))
})

after(async () => {
  proxy?.release()
  proxy?.close()
  await close()
  await resumeAndStop(redis)
})

/**
 * One instance of the fleet (`pausedRedisInstance`), pulling on each refresh (`tagSync:
 * 'pull'`): the loss is learned when the test says. `url`: Redis's, or the holding proxy's.
 */
function instance(prefix, n, budgetMs = 200, url = redis.url, debug = false) {
  return createUseCacheHandler({
    ...pausedRedisInstance(url, prefix, n, budgetMs),
    tagSync: 'pull',
    debug,
  })
}

/** The tag state's keys (what a flush or a failover that lost the last writes takes). */
const tagKeys = (prefix) => ['state', 'log', 'meta'].map((k) => `${prefix}:tags:{${prefix}}:${k}`)

/**
 * Runs `fn`, then waits until a line matching `re` is logged (at most `ms`, then fails naming
 * `what`): the lines logged meanwhile, as `capture` returns them.
 */
async function captureUntil(re, ms, what, fn) {
  let logged
  const seen = new Promise((resolve) => (logged = resolve))
  let timer
  const lines = await capture(async (lines) => {
    const push = lines.push.bind(lines)
    lines.push = (...l) => {
      const n = push(...l)
      if (l.some((x) => re.test(x))) logged()
      return n
    }
    await fn()
    await Promise.race([
      seen,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
      }),
    ]).finally(() => clearTimeout(timer))
  })
  return lines
}

/**
 * The entry `page-data` tagged `tag`, stored by an instance with long budgets (which also has
 * Redis load every script the next instance sends; `warm`: and revalidates `<prefix>-warm`
 * first), then instance `n` (`budgetMs`, through `url`) whose revalidation of `tag` reached
 * Redis. Returns that instance.
 */
async function revalidatedEntry(
  prefix,
  tag,
  { n, budgetMs = 200, url = redis.url, warm = false, more = [], debug = false },
) {
  const w = instance(prefix, 100, 10_000)
  await w.refreshTags()
  if (warm) await w.updateTags([`${prefix}-warm`, ...more])
  await w.set(
    'page-data',
    Promise.resolve(useCacheEntry('old', { tags: [tag], timestamp: now() - 5 })),
  )
  assert.ok(await w.get('page-data', []), 'stored')
  await close()
  const a = instance(prefix, n, budgetMs, url, debug)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await a.updateTags([tag])
  return a
}

/**
 * An entry tagged `tag` stored before anything else (by an instance with long budgets, which
 * also has Redis load every script the test's instance sends), then an instance `a` whose
 * revalidation of `tag` reached Redis; then Redis loses the tag state, `a` learns it by a pull,
 * and its merge is refused (OOM). Returns `a` and the lines logged, with Redis still refusing
 * writes (`writes()` lets it take them again). `budgetMs`: `a`'s read and write budgets; `n`,
 * `url`: as `revalidatedEntry`'s; `more`: tags the warming instance revalidates too (lost with
 * the rest); `debug`: `a`'s.
 */
async function lostAndNotGivenBack(
  prefix,
  tag,
  budgetMs = 200,
  { n = 1, url = redis.url, more = [], debug = false } = {},
) {
  const a = await revalidatedEntry(prefix, tag, { n, budgetMs, url, warm: true, more, debug })
  const [state] = tagKeys(prefix)
  assert.notEqual(await redisCommand(redis.port, ['HGET', state, tag]), null, 'in Redis')
  // Redis loses it; then it refuses writes, so the merge that gives it back fails.
  await redisCommand(redis.port, ['DEL', ...tagKeys(prefix)])
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'])
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '1'])
  const writes = () => redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '0'])
  try {
    const lines = await captureUntil(
      /lost tag records not yet given back to Redis/,
      5_000,
      'the merge to be refused',
      () => a.refreshTags(),
    )
    // Its own and the warming instance's.
    assert.ok(
      lines.some((l) =>
        l.includes(
          `lacks ${String(2 + more.length)} revalidation record(s) this instance knows of`,
        ),
      ),
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

/**
 * Calls close() while a pull of `a` is out: the proxy holds every reply from before the pull's
 * EVALSHA passes it; `answer`: the held replies are delivered once close() was called (else
 * only after it returned: Redis does not answer the pull meanwhile). close() takes the pull
 * under way in its synchronous part (stop(), then sendLast() reading the pull in flight),
 * before the reply can come. Returns the lines close() logged and the ms it took.
 */
async function closeWithPullOut(a, { answer }) {
  proxy.hold = true
  proxy.all = true
  try {
    const out = proxy.sentEval()
    const pulling = a.refreshTags()
    await out
    const t0 = performance.now()
    const closing = capture(() => close())
    if (answer) proxy.release()
    const atClose = await closing
    const ms = performance.now() - t0
    await pulling
    return { atClose, ms }
  } finally {
    proxy.release()
  }
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

test('a tag in the merge that failed and found lacking again since is one record waiting at close', async () => {
  // Its merge refused, lc-v is revalidated again (queued: Redis refuses writes), then the state
  // is lost again: the pull queues lc-v's newer record beside the batch planned. Before, the
  // line at close counted lc-v twice ("3 waiting", "and 1 more" for two tags) and the debug
  // line named it twice.
  const prefix = 'lostclose12'
  const { a, writes } = await lostAndNotGivenBack(prefix, 'lc-v', 200, { debug: true })
  const logged = []
  const { log } = console
  let atClose
  console.log = (...l) => logged.push(l.join(' '))
  try {
    await a.updateTags(['lc-v'])
    await redisCommand(redis.port, ['DEL', ...tagKeys(prefix)])
    await a.refreshTags()
    atClose = await capture(() => close())
  } finally {
    console.log = log
    await writes()
  }
  const lost = atClose.filter((l) => /lost tag record/.test(l))
  assert.equal(lost.length, 1, `one line: ${JSON.stringify(atClose)}`)
  assert.match(lost[0], /\(2 waiting; /, lost[0])
  assert.match(lost[0], /; among them: (lc-v,lostclose12-warm|lostclose12-warm,lc-v)$/, lost[0])
  const all = logged.filter((l) => /closing: every lost tag record not given back/.test(l))
  assert.equal(all.length, 1, JSON.stringify(logged))
  const named = all[0].replace(/.*: /, '').split(',').sort()
  assert.deepEqual(named, [`${prefix}-warm`, 'lc-v'].sort())
})

test('the line for records close() cannot give back names five tags and counts the rest; debug lists all', async () => {
  // Before, the line named five tags of the batch its merge would send and no line named the
  // rest: its "and N more" counted that batch's tags only, not the records waiting.
  const prefix = 'lostclose11'
  const more = Array.from({ length: 6 }, (_, i) => `lc-m${String(i)}`)
  const { writes } = await lostAndNotGivenBack(prefix, 'lc-s', 200, { n: 13, more, debug: true })
  const logged = []
  const { log } = console
  let atClose
  console.log = (...a) => logged.push(a.join(' '))
  try {
    atClose = await capture(() => close())
  } finally {
    console.log = log
    await writes()
  }
  const lost = atClose.filter((l) => /lost tag record/.test(l))
  assert.equal(lost.length, 1, `one line: ${JSON.stringify(atClose)}`)
  assert.match(lost[0], /\(8 waiting; Redis answered the merge with OOM\)/)
  assert.match(lost[0], /; among them: ([^,]+,){4}[^,]+ and 3 more$/, lost[0])
  const all = logged.filter((l) => /closing: every lost tag record not given back/.test(l))
  assert.equal(all.length, 1, JSON.stringify(logged))
  const named = all[0].replace(/.*: /, '').split(',').sort()
  assert.deepEqual(named, [`${prefix}-warm`, 'lc-s', ...more].sort())
})

test('a close() while Redis does not answer gives up on lost tag records within one budget', async () => {
  // Nothing queued and the state loaded: close() pulls before its last attempt. Redis stopped
  // answering: that pull fails at its read budget, and the merge after it would fail alike.
  // Before, close() sent the merge all the same and waited a write budget more.
  const prefix = 'lostclose3'
  const budgetMs = 1_500
  const { writes } = await lostAndNotGivenBack(prefix, 'lc-v', budgetMs)
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
  // The pull's read budget, and no more (about 1.5 s): the connection's close waits for no
  // reply, the pull's was abandoned at its budget. Before, a write budget more, and before
  // that the connection's 1 s grace for the abandoned reply (about 2.5 s, 4 s).
  assert.ok(ms < budgetMs + 700, `close() took ${ms.toFixed(0)} ms (budgets: ${String(budgetMs)})`)
  const lost = atClose.filter((l) => /lost tag record/.test(l))
  assert.equal(lost.length, 1, `one line: ${JSON.stringify(atClose)}`)
  assert.match(
    lost[0],
    /\(2 waiting; not tried: Redis did not answer the pull close\(\) made in time\)/,
  )
  assert.equal(await redisCommand(redis.port, ['HGET', tagKeys(prefix)[0], 'lc-v']), null)
  // The pull's failure is the closing line's `<why>`, not a line of its own.
  assert.ok(!atClose.some((l) => /tag refresh failed/.test(l)), JSON.stringify(atClose))
})

test('a close() while Redis does not answer, with nothing to write: no error line', async () => {
  // The pull close() makes of its own is only to learn of a loss: unanswered, with nothing
  // waiting, nothing is lost that the process knows of. It logged "tag refresh failed, using
  // the last known tag state" at error, in every deploy made during an outage.
  const budgetMs = 500
  const a = instance('lostclose9', 10, budgetMs)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await a.updateTags(['lc-quiet'])
  let atClose
  let ms
  process.kill(redis.pid, 'SIGSTOP')
  try {
    const t0 = performance.now()
    atClose = await capture(() => close())
    ms = performance.now() - t0
  } finally {
    process.kill(redis.pid, 'SIGCONT')
  }
  assert.deepEqual(atClose, [], 'no warning or error')
  // The pull's read budget, and no more: its reply, abandoned at that budget, is awaited by
  // nobody. Before, the connection's close waited 1 s more for it (about 1.5 s).
  assert.ok(ms < budgetMs + 700, `close() took ${ms.toFixed(0)} ms (budget: ${String(budgetMs)})`)
})

test('a record given back at close never moves back what Redis holds since for its tag', async () => {
  // TAG_MERGE, forced at close, merges field by field (max; the stronger scheduled expiry):
  // another instance's later revalidation of the same tag, written after the loss, stays.
  const prefix = 'lostclose4'
  const { a, writes } = await lostAndNotGivenBack(prefix, 'lc-w')
  // `a`'s record of lc-w was made before this (and two read budgets before the next one).
  const lostMadeBy = Date.now()
  try {
    // The retry waits for the breaker: the record is still to give back at close.
    await openBreaker(a)
  } finally {
    await writes()
  }
  const [state] = tagKeys(prefix)
  const b = instance(prefix, 2, 10_000)
  await b.refreshTags()
  await b.updateTags(['lc-w'])
  const newer = await redisCommand(redis.port, ['HGET', state, 'lc-w'])
  assert.equal(await redisCommand(redis.port, ['HGET', state, `${prefix}-warm`]), null, 'lost')
  assert.notEqual(newer, null)
  const fields = (r) => String(r).split(',').map(Number)
  // What the test proves needs `b`'s revalidation later than `a`'s record (its updated_at, a
  // wall-clock time, past the time `a`'s was made by): equal, a merge could not move it back.
  assert.ok(fields(newer)[4] > lostMadeBy, `${String(newer)} after ${String(lostMadeBy)}`)
  const atClose = await capture(() => close())
  const after = await redisCommand(redis.port, ['HGET', state, 'lc-w'])
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
  // SIGTERM while the pull that learns of a flush is out (here its reply is held by the proxy
  // until close() was called): before, close() did not wait for it, found nothing to send, and
  // the records the pull then found lost went nowhere, without a line.
  const prefix = 'lostclose5'
  const a = await revalidatedEntry(prefix, 'lc-x', { n: 5, budgetMs: 3_000, url: proxy.url })
  await redisCommand(redis.port, ['DEL', ...tagKeys(prefix)])
  // The held reply names the state Redis holds now (the pull passed the proxy after the DEL).
  const { atClose } = await closeWithPullOut(a, { answer: true })
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
  const a = instance(prefix, 7, budgetMs, proxy.url)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await a.updateTags([`${prefix}-warm`])
  let atClose
  let ms
  process.kill(redis.pid, 'SIGSTOP')
  // The proxy only tells when the send passed (Redis, paused, answers nothing meanwhile).
  proxy.hold = true
  proxy.all = true
  try {
    const out = proxy.sentWrite()
    const sending = a.updateTags(['lc-y2'])
    // The send is out: its EVALSHA passed the proxy toward the paused Redis.
    await out
    const t0 = performance.now()
    atClose = await capture(() => close())
    ms = performance.now() - t0
    await sending
  } finally {
    process.kill(redis.pid, 'SIGCONT')
    proxy.release()
  }
  assert.deepEqual(
    atClose.filter((l) => /closing with/.test(l)).map((l) => l.replace(/:.*/s, '')),
    [
      '[fleetcache] closing with 1 queued revalidation(s) not sent to Redis (Redis did not answer it in time)',
    ],
  )
  // What is left of the send's budget, and no more (at most 1.5 s): the connection's close
  // waits for no reply, the send's was abandoned at its budget. Before, a whole budget more,
  // and the connection's 1 s grace for the abandoned reply (about 2.5 s, 4 s).
  assert.ok(
    ms < budgetMs + 700,
    `close() took ${ms.toFixed(0)} ms (one write budget: ${String(budgetMs)})`,
  )
})

test('a loss no pull has seen yet: close() pulls once and gives the record back', async () => {
  // A failover that lost the last writes, then a deploy: the instance that knows the
  // revalidation has served no request since (no pull), and is told to stop. Before, close()
  // asked Redis nothing, found nothing to send, and the revalidation was gone from Redis with
  // the process: another instance served the entry it had invalidated as fresh.
  const prefix = 'lostclose7'
  await revalidatedEntry(prefix, 'lc-z', { n: 8, budgetMs: 3_000 })
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

test('a loss to a state of more than 16 pages: close() loads it and gives the records back', async () => {
  // The pull close() makes finds another state, which the mirror loads page by page (1,000
  // tags each). Before, close() waited for 16 pulls, one page each: a state of 20,000 tags was
  // not loaded by then, the records it lacks were not compared, and close() only said so
  // ("closing before the tag state was loaded"). Bounded by time instead (16 read budgets), a
  // Redis that answers loads it all, and the record it lacks is given back.
  const prefix = 'lostclose9'
  const a = instance(prefix, 10, 10_000)
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await a.updateTags(['lc-q'])
  await redisCommand(redis.port, ['DEL', ...tagKeys(prefix)])
  const w = instance(prefix, 11, 10_000)
  await w.refreshTags()
  for (let i = 0; i < 20; i++) {
    await w.updateTags(
      Array.from({ length: 1_000 }, (_, j) => `${prefix}-${String(i)}-${String(j)}`),
    )
  }
  const atClose = await capture(() => close())
  assert.ok(!atClose.some((l) => /tag refresh failed/.test(l)), JSON.stringify(atClose))
  assert.ok(!atClose.some((l) => /closing/.test(l)), JSON.stringify(atClose))
  assert.notEqual(
    await redisCommand(redis.port, ['HGET', tagKeys(prefix)[0], 'lc-q']),
    null,
    `lc-q, which the state lacked, was given back at close: ${JSON.stringify(atClose)}`,
  )
})

test('a pull under way at close() that Redis does not answer ends the attempt', async () => {
  // Records wait to be given back (their merge was refused); a pull is out when the process is
  // told to stop, and Redis does not answer it (the proxy holds every reply). Before, that
  // pull's failure did not end the attempt (only the pull close() makes itself did): the merge
  // was sent all the same, forced, and close() waited a write budget more.
  const prefix = 'lostclose10'
  const budgetMs = 1_500
  const { a, writes } = await lostAndNotGivenBack(prefix, 'lc-r', budgetMs, {
    n: 12,
    url: proxy.url,
  })
  await writes()
  const { atClose, ms } = await closeWithPullOut(a, { answer: false })
  const lost = atClose.filter((l) => /lost tag record/.test(l))
  assert.equal(lost.length, 1, `one line: ${JSON.stringify(atClose)}`)
  assert.match(
    lost[0],
    /\(2 waiting; not tried: Redis did not answer a pull close\(\) waited for in time\)/,
  )
  // What is left of the pull's read budget, and no more (at most 1.5 s): the connection's
  // close waits for no reply, the pull's was abandoned at its budget. Before, a write budget
  // more, and the connection's 1 s grace for the abandoned reply (about 4 s).
  assert.ok(ms < budgetMs + 700, `close() took ${ms.toFixed(0)} ms (budgets: ${String(budgetMs)})`)
  assert.equal(await redisCommand(redis.port, ['HGET', tagKeys(prefix)[0], 'lc-r']), null)
})

test('a pull close() makes whose reply the engine rejects does not end the attempt as unanswered', async () => {
  // Redis answered the pull; the engine refused what it read (a reply it cannot take, which
  // says nothing of Redis's reach). Before, close() took that for a pull Redis did not answer:
  // nothing was sent after it, and the closing line said "Redis was unreachable for the pull
  // close() made" while Redis took writes.
  const prefix = 'lostclose12'
  const { writes } = await lostAndNotGivenBack(prefix, 'lc-e')
  await writes()
  const { TagSync } = createRequire(import.meta.url)('../dist/tag-sync.js')
  const pullsUnderWay = TagSync.prototype.pullsUnderWay
  let rejected = 0
  // For this close() only: the pull it made is out (its reply not read yet); its reply is
  // handed to an engine that rejects it, once, without trapping.
  TagSync.prototype.pullsUnderWay = function (own) {
    const engine = this.engine
    this.engine = new Proxy(engine, {
      get(target, prop) {
        if (prop === 'applyRefresh' && rejected === 0) {
          return () => {
            rejected += 1
            throw new Error('tag refresh reply not taken (test)')
          }
        }
        const v = Reflect.get(target, prop, target)
        return typeof v === 'function' ? v.bind(target) : v
      },
    })
    return pullsUnderWay.call(this, own).finally(() => {
      this.engine = engine
    })
  }
  let atClose
  try {
    atClose = await capture(() => close())
  } finally {
    TagSync.prototype.pullsUnderWay = pullsUnderWay
  }
  assert.equal(rejected, 1, 'the pull close() made was answered and its reply rejected')
  assert.ok(
    !atClose.some((l) => /unreachable|did not answer/.test(l)),
    `no line says Redis did not answer: ${JSON.stringify(atClose)}`,
  )
  assert.notEqual(
    await redisCommand(redis.port, ['HGET', tagKeys(prefix)[0], 'lc-e']),
    null,
    `Redis answers and takes writes: the record is given back: ${JSON.stringify(atClose)}`,
  )
})
