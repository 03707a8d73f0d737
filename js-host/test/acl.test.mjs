// Least privilege (issue 8): the handlers work as a Redis ACL user limited to the key prefix
// and the commands fleetcache sends (the `ACL SETUSER` line of docs/operating.md), and a wrong
// password or a missing permission gives a clear error line and an uncached, working handler.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { now, text, useCacheEntry } from './helpers.mjs'

const PREFIX = 'acltest'

/**
 * The rules of docs/operating.md's `ACL SETUSER` line, after `on >password`: keep both in step.
 */
export const ACL_RULES = [
  'resetkeys',
  `~${PREFIX}:*`,
  'resetchannels',
  '-@all',
  '+hello',
  '+auth',
  '+ping',
  '+select',
  '+get',
  '+set',
  '+evalsha',
  '+eval',
  '+del',
  '+getrange',
  '+hget',
  '+hgetall',
  '+hset',
  '+hsetnx',
  '+hdel',
  '+hincrby',
  '+zadd',
  '+zrange',
  '+zrangebyscore',
  '+zrem',
  '+cluster|slots',
]

let redis
let seq = 0

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-acl-'))
  redis = await startRedis({ logDir })
  await redis.command('ACL', 'SETUSER', 'fc', 'on', '>s3cret', ...ACL_RULES)
  // The same rules without GET: reads are refused, everything else allowed.
  await redis.command(
    'ACL',
    'SETUSER',
    'fcnoget',
    'on',
    '>s3cret',
    ...ACL_RULES.filter((r) => r !== '+get'),
  )
  await redis.command('ACL', 'LOG', 'RESET')
})

after(async () => {
  await close()
  await redis?.stop()
})

function options(user, extra = {}) {
  seq += 1
  return {
    redisUrl: `redis://${user}@127.0.0.1:${redis.port}`,
    prefix: PREFIX,
    deploymentId: 'd1',
    memoryBytes: 0,
    connectTimeoutMs: 1000 + seq,
    ...extra,
  }
}

const entry = (value, tags = ['acl']) => useCacheEntry(value, { tags })

/** Runs `fn` with console.error/warn captured; returns the captured lines. */
async function capture(fn) {
  const lines = []
  const { error, warn } = console
  console.error = (...a) => lines.push(a.join(' '))
  console.warn = (...a) => lines.push(a.join(' '))
  try {
    await fn()
  } finally {
    console.error = error
    console.warn = warn
  }
  return lines
}

describe('ACL user limited to the prefix and fleetcache’s commands', () => {
  test('use-cache: set, get on another instance, leases, tag revalidation; nothing denied', async () => {
    const a = createUseCacheHandler(options('fc:s3cret'))
    const b = createUseCacheHandler(options('fc:s3cret'))
    const lines = await capture(async () => {
      assert.equal(await a.get('k1', []), undefined, 'a miss: a takes the lease')
      await a.set('k1', Promise.resolve(entry('as acl user', ['t-acl'])))
      await b.refreshTags()
      const got = await b.get('k1', [])
      assert.ok(got, 'b reads what a wrote')
      assert.equal(await text(got.value), 'as acl user')
      await a.updateTags(['t-acl'])
      await b.refreshTags()
      assert.equal(await b.get('k1', []), undefined, 'the tag expiry reached b')
    })
    assert.deepEqual(lines, [], 'no error lines')
    assert.deepEqual(await redis.command('ACL', 'LOG'), [], 'Redis denied nothing')
  })

  test('incremental: set, get, revalidateTag', async () => {
    const H = createIncrementalCacheHandler(options('fc:s3cret'))
    const h = () => new H({})
    const v = {
      kind: 'APP_ROUTE',
      body: Buffer.from('route'),
      status: 200,
      headers: { 'x-next-cache-tags': 'acl-route' },
    }
    const ctx = {
      kind: 'APP_ROUTE',
      isRoutePPREnabled: false,
      isFallback: false,
      cacheControl: { revalidate: 60, expire: 3600 },
    }
    await h().set('/acl/route', v, ctx)
    assert.ok(await h().get('/acl/route', { kind: 'APP_ROUTE' }))
    await h().revalidateTag(['acl-route'])
    assert.equal(await h().get('/acl/route', { kind: 'APP_ROUTE' }), null)
    assert.deepEqual(await redis.command('ACL', 'LOG'), [], 'Redis denied nothing')
  })

  test('a wrong password: a clear error line, gets are quick misses, sets do not throw', async () => {
    const c = createUseCacheHandler(options('fc:wrong'))
    const lines = await capture(async () => {
      const t0 = now()
      assert.equal(await c.get('k-wrong', []), undefined)
      await c.set('k-wrong', Promise.resolve(entry('x')))
      assert.equal(await c.get('k-wrong', []), undefined)
      assert.ok(now() - t0 < 3000, `took ${Math.round(now() - t0)} ms`)
      await sleep(50)
    })
    const auth = lines.filter((l) => /WRONGPASS/.test(l))
    assert.ok(auth.length >= 1, `a WRONGPASS line among:\n${lines.join('\n')}`)
    assert.ok(
      auth.every((l) => !l.includes('\n')),
      'one line each',
    )
  })

  test('a missing permission: the NOPERM error is logged, the read is a miss', async () => {
    const d = createUseCacheHandler(options('fcnoget:s3cret', { leases: false }))
    const lines = await capture(async () => {
      await d.set('k-noget', Promise.resolve(entry('x')))
      assert.equal(await d.get('k-noget', []), undefined)
    })
    const denied = lines.filter((l) => /NOPERM/.test(l))
    assert.ok(denied.length >= 1, `a NOPERM line among:\n${lines.join('\n')}`)
    assert.ok(
      denied.some((l) => /get/i.test(l)),
      'it names the command',
    )
  })
})
