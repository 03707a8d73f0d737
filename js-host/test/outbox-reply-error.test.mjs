// A revalidation Redis answers with an error that waiting fixes (OOM under `noeviction` at
// `maxmemory`, MISCONF when a snapshot cannot be written) stays queued, and the ones made after
// it queue behind it. The operator's record of which revalidations have not reached the fleet
// is the line the first of them logged as it was queued, and the line at `close()`, which names
// the others (logged at debug only, one warning per revalidation being a flood for as long as
// the refusals last). Against a real redis-server set to `maxmemory 1`.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler, stats } from '../esm/index.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { capture, settled } from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-outbox-reply-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

test('revalidations queued behind OOM replies: the first is logged with its tags, close() names the others', async () => {
  const a = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'obxreply',
    deploymentId: 'd1',
    readTimeoutMs: 10_000,
    writeTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
  })
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'])
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '1'])
  let lines
  let closing
  try {
    lines = await capture(async () => {
      for (let i = 0; i < 10; i++) await a.updateTags([`oom-${String(i)}`])
    })
    assert.equal(stats().outbox.length, 10, 'all wait in the outbox')
    // Still refused at close: its last attempt fails, and the line says what is lost.
    closing = await capture(() => close())
  } finally {
    await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '0'])
  }
  // The failed attempt's error line and one warning naming the first; before, a warning each.
  const loud = lines.filter((l) => /queued|not sent/.test(l))
  assert.equal(loud.length, 2, lines.join('\n'))
  assert.match(loud[1], /revalidation of oom-0 .*Redis answered .*OOM/, 'the line says why')
  const closed = closing.filter((l) => /closing with/.test(l))
  assert.equal(closed.length, 1, closing.join('\n'))
  // Every one of the nine, not the first five 'and 4 more': no line at warn named the others.
  assert.match(
    closed[0],
    /closing with 10 queued revalidation\(s\) not sent to Redis \(Redis answered the first queued revalidation with OOM\).*9 of them logged at debug only while Redis refused writes: oom-1; oom-2; oom-3; oom-4; oom-5; oom-6; oom-7; oom-8; oom-9\)$/,
  )
})

// Measured on a real redis-server (MONITOR): with no tag state yet in Redis, each refresh during
// the OOM answered the whole (empty) state, the mirror found its own queued revalidations
// missing and queued them to be given back too; once writes were accepted, the outbox sent
// each (TAG_UPDATE, versions 1 and 2) and then the merge sent both again (TAG_MERGE, version 3),
// so every instance loaded one more version for nothing ("gave 2 lost tag record(s) back").
test('after an OOM clears, each queued revalidation reaches Redis once', async () => {
  const a = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'obxonce',
    deploymentId: 'd1',
    readTimeoutMs: 10_000,
    writeTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
  })
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'])
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '1'])
  let lines
  try {
    lines = await capture(async () => {
      await a.updateTags(['once-first'])
      await a.updateTags(['once-second'])
      // Refreshes answer while writes are refused: the whole state, which lacks both.
      await a.refreshTags()
      await a.refreshTags()
    })
  } finally {
    await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '0'])
  }
  // close() sends the queue whatever the backoff, then what waits to be given back.
  const sent = await capture(() => close())
  const meta = 'obxonce:tags:{obxonce}:meta'
  assert.equal(
    await redisCommand(redis.port, ['HGET', meta, 'ver']),
    '2',
    `one version per revalidation:\n${[...lines, ...sent].join('\n')}`,
  )
  for (const tag of ['once-first', 'once-second']) {
    const record = await redisCommand(redis.port, ['HGET', 'obxonce:tags:{obxonce}:state', tag])
    assert.ok(record !== null, `${tag} reached Redis`)
  }
})

// A full outbox drops its oldest revalidation to make room. Before, that revalidation held on
// its own instance only (`it took effect on this instance only`), although Redis answered reads
// throughout and kept its state: the rest of the fleet served what it invalidated. The engine now
// hands its records to the merge that gives lost records back, sent once the queue has been.
/**
 * An instance whose outbox holds one revalidation, following a state with an epoch (after
 * `known`): its refreshes are answered in part, so no whole state is compared with the mirror
 * (which would give a revalidation taken out of the outbox back anyway). Then Redis refuses
 * writes (OOM) until the test sets `maxmemory` back to 0.
 */
async function fullOutboxUnderOom(prefix, known) {
  const a = createUseCacheHandler({
    redisUrl: redis.url,
    prefix,
    deploymentId: 'd1',
    readTimeoutMs: 10_000,
    writeTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
    outboxCapacity: 1,
  })
  await a.updateTags([known])
  await settled(stats, 'refreshTags', () => a.refreshTags())
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'])
  await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '1'])
  return a
}

test('a revalidation pushed out of a full outbox reaches Redis once writes are accepted', async () => {
  const a = await fullOutboxUnderOom('obxfull', 'full-known')
  let lines
  try {
    lines = await capture(async () => {
      await a.updateTags(['full-dropped'])
      await a.updateTags(['full-sent'])
      await a.refreshTags()
    })
    assert.equal(stats().outbox.dropped, 1, `the outbox dropped one:\n${lines.join('\n')}`)
  } finally {
    await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '0'])
  }
  // close() sends the queue whatever the backoff, then what waits to be merged.
  const sent = await capture(() => close())
  for (const tag of ['full-sent', 'full-dropped']) {
    const record = await redisCommand(redis.port, ['HGET', 'obxfull:tags:{obxfull}:state', tag])
    assert.ok(record !== null, `${tag} reached Redis:\n${[...lines, ...sent].join('\n')}`)
  }
  const full = lines.filter((l) => /outbox full/.test(l))
  assert.equal(full.length, 1, lines.join('\n'))
  assert.match(
    full[0],
    /merged into Redis's tag state once the revalidations queued after it are sent/,
  )
})

// What a full outbox took out of its queue waits to be merged back after the queue: when the
// queue's last attempt at close() fails, the merge is not tried, and the line for records not
// given back counts and names it (the queued line names the revalidations still queued only).
test('close() with writes still refused reports a revalidation taken out of the full outbox as not given back', async () => {
  const a = await fullOutboxUnderOom('obxclose', 'close-known')
  let lines
  let closing
  try {
    lines = await capture(async () => {
      await a.updateTags(['close-out'])
      await a.updateTags(['close-queued'])
    })
    assert.equal(stats().outbox.dropped, 1, lines.join('\n'))
    closing = await capture(() => close())
  } finally {
    await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '0'])
  }
  const all = [...lines, ...closing].join('\n')
  const queued = closing.filter((l) => /closing with \d+ queued/.test(l))
  assert.equal(queued.length, 1, all)
  assert.match(queued[0], /closing with 1 queued revalidation\(s\)/, all)
  assert.match(queued[0], /logged at debug only while Redis refused writes: close-queued\)$/, all)
  const notBack = closing.filter((l) => /closing with lost tag records/.test(l))
  assert.equal(notBack.length, 1, all)
  assert.match(
    notBack[0],
    /\(1 waiting; not tried: the queued revalidations before them were not sent\): .*never sent there.*; among them: close-out$/,
    all,
  )
  for (const tag of ['close-out', 'close-queued']) {
    const record = await redisCommand(redis.port, ['HGET', 'obxclose:tags:{obxclose}:state', tag])
    assert.equal(record, null, `${tag} did not reach Redis`)
  }
})
