// The eviction-policy check at start (docs/operating.md, "Eviction policy"): a Redis that may
// evict the tag state is named in a warning, against a real redis-server set that way.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { after, before, test } from 'node:test'

import { createUseCacheHandler, close } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'

const require = createRequire(import.meta.url)
const { evictionWarning } = require('../dist/eviction-policy.js')

let redis

before(async () => {
  redis = await startRedis({ logDir: fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-evict-')) })
})

after(async () => {
  await close()
  await redis?.stop()
})

test('only an allkeys-* policy under a maxmemory is warned of', () => {
  const info = (policy, max) => `# Memory\r\nmaxmemory:${max}\r\nmaxmemory_policy:${policy}\r\n`
  for (const policy of ['allkeys-lru', 'allkeys-lfu', 'allkeys-random']) {
    assert.match(
      evictionWarning(info(policy, 1 << 30)) ?? '',
      new RegExp(`maxmemory-policy ${policy}`),
    )
    assert.equal(
      evictionWarning(info(policy, 0)),
      undefined,
      'nothing is evicted without a maxmemory',
    )
  }
  for (const policy of [
    'noeviction',
    'volatile-lru',
    'volatile-lfu',
    'volatile-ttl',
    'volatile-random',
  ])
    assert.equal(evictionWarning(info(policy, 1 << 30)), undefined, policy)
  assert.equal(evictionWarning(''), undefined, 'a reply without the fields says nothing')
})

/** The warnings logged while `fn` runs, until `done` holds of them or 5 s pass. */
async function warnings(fn, done) {
  const lines = []
  const { warn } = console
  console.warn = (...a) => lines.push(a.join(' '))
  try {
    await fn()
    const deadline = performance.now() + 5000
    while (!done(lines) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  } finally {
    console.warn = warn
  }
  return lines
}

let seq = 0
function instance(prefix) {
  seq += 1
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix,
    deploymentId: 'd1',
    maxTtlSeconds: 1000 + seq,
  })
}

test('a Redis that may evict the tag state is named at start; one that may not, not', async () => {
  const named = (lines) => lines.some((l) => l.includes('maxmemory-policy allkeys-lru'))
  await redis.command('CONFIG', 'SET', 'maxmemory', '1gb')
  await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru')
  const lines = await warnings(async () => {
    await instance('evict').refreshTags()
  }, named)
  assert.ok(named(lines), lines.join('\n'))
  await redis.command('CONFIG', 'SET', 'maxmemory-policy', 'volatile-lru')
  // The check's reply comes before any later command's on the same connection.
  const quiet = await warnings(
    async () => {
      const handler = instance('noevict')
      await handler.refreshTags()
      await handler.get('k', [])
    },
    () => true,
  )
  assert.ok(!quiet.some((l) => l.includes('maxmemory-policy')), quiet.join('\n'))
})
