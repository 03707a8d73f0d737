// A revalidation Redis answers with an error that waiting fixes (OOM under `noeviction` at
// `maxmemory`, MISCONF when a snapshot cannot be written) stays queued, and the ones made after
// it queue behind it. The operator's only record of which revalidations have not reached the
// fleet is the line each one logged as it was queued (`close()` points to them: "the lines
// that queued them name their tags"); these were logged at debug only, so with debugging off
// no line named their tags. Against a real redis-server set to `maxmemory 1`.
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

test('each revalidation queued behind an OOM reply is logged with its tags', async () => {
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
  try {
    lines = await capture(async () => {
      await a.updateTags(['oom-first'])
      await a.updateTags(['oom-second'])
    })
    assert.equal(stats().outbox.length, 2, 'both wait in the outbox')
  } finally {
    await redisCommand(redis.port, ['CONFIG', 'SET', 'maxmemory', '0'])
  }
  for (const tag of ['oom-first', 'oom-second']) {
    const named = lines.filter((l) => l.includes(tag) && /queued/.test(l))
    assert.equal(named.length, 1, `one line names ${tag} as queued:\n${lines.join('\n')}`)
    assert.match(named[0], /Redis answered .*OOM/, 'the line says why')
  }
  // Redis takes writes again: close() sends the queue, whatever the backoff, and has nothing
  // to report as lost.
  const closing = await capture(() => close())
  assert.deepEqual(
    closing.filter((l) => /closing with/.test(l)),
    [],
    'the queue reached Redis at close',
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
