// The tag state when Redis loses it or cannot be reached, against a real redis-server: a flush,
// a failover that reuses version numbers, a process that never loaded the state, an outage and
// the recovery after it (docs/failures.md, "Freshness"). Each instance is a runtime of its own
// on one Redis. The test stops and restarts only the redis-server it started, by PID.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { createUseCacheHandler, close, stats } from '../esm/index.mjs'
import { startRedis, startRedisOnPort } from '../../tests/support/redis.mjs'
import { tagPullMonitor } from '../../tests/support/observe.mjs'
import { now, text, useCacheEntry } from './helpers.mjs'

/**
 * Options of an instance that meets an outage (a stopped server: every command fails at once,
 * so no budget runs out; under load a short one ran out while Redis was up): the breaker opens
 * on the first failure and probes soon after.
 */
const OUTAGE = {
  readTimeoutMs: 10_000,
  writeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  breakerFailures: 1,
  breakerOpenMs: 200,
  breakerMaxOpenMs: 400,
}
let logDir
let redis

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-tag-state-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

let seq = 0
/** An instance: a runtime of its own (the odd maxTtlSeconds keeps runtimes apart). */
function instance(prefix, extra = {}) {
  seq += 1
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix,
    deploymentId: 'd1',
    maxTtlSeconds: 30 * 24 * 3600 - seq,
    leases: false,
    ...extra,
  })
}

const entry = (value, tags) => useCacheEntry(value, { tags, revalidate: 900, expire: 3600 })

/** Waits for `fn` to return a truthy value: at most `ms`, checking every 20 ms. */
async function until(fn, ms, what) {
  const deadline = performance.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The tag keys' values, to put back later as a failover to a lagging replica would. */
async function snapshot(prefix) {
  const keys = ['state', 'log', 'meta'].map((k) => `${prefix}:tags:{${prefix}}:${k}`)
  const { createClient, RESP_TYPES } = await import('redis')
  const client = await createClient({ url: redis.url })
    .withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
    .connect()
  const dumps = await Promise.all(keys.map((k) => client.dump(k)))
  return {
    async restore() {
      for (const [i, k] of keys.entries()) await client.restore(k, 0, dumps[i], { REPLACE: true })
      await client.quit()
    },
  }
}

/** Runs `fn` with console.log (where info lines go) captured; returns the captured lines. */
async function infoLines(fn) {
  const lines = []
  const { log } = console
  console.log = (...a) => lines.push(a.join(' '))
  try {
    await fn(lines)
  } finally {
    console.log = log
  }
  return lines
}

describe('tag state', () => {
  test('a flush does not bring invalidated tier copies back, and the fleet relearns what was lost', async () => {
    const A = instance('flush', { memoryBytes: 1 << 20 })
    const B = instance('flush')
    await A.refreshTags()
    await A.set('page', Promise.resolve(entry('old', ['products'])))
    await B.refreshTags()
    await B.updateTags(['products'])
    // A learns of B's revalidation; its tier copy is no longer fresh.
    await A.refreshTags()
    await redis.command('FLUSHALL')
    const lines = await infoLines(async (info) => {
      await A.refreshTags()
      assert.equal(await A.get('page', []), undefined, 'the tier copy stays invalidated')
      // A gave the lost record back: an instance that never heard of it learns it from Redis.
      const C = instance('flush')
      await until(
        async () => {
          await C.refreshTags()
          return (await C.getExpiration(['products'])) > 0
        },
        5000,
        'the lost revalidation to be back in Redis',
      )
      // Logged once A has the merge's reply, which may come after C's refresh.
      await until(
        () => info.some((l) => l.includes('gave 1 lost tag record(s) back to Redis (1 batch(es))')),
        5000,
        'the line saying so',
      )
    })
    assert.ok(!lines.some((l) => l.includes('meta hash')), lines.join('\n'))
  })

  test('a revalidation sent to a flushed Redis: the idle sender pulls after it and gives back what was lost', async () => {
    // Its update's reply names the new state: the pull it owes finds the state lacking the
    // record of B's revalidation and gives it back, with no request on A after its send.
    const A = instance('flushsend', { tagSync: 'pull' })
    const B = instance('flushsend', { tagSync: 'pull' })
    await A.refreshTags()
    await B.refreshTags()
    await B.updateTags(['products'])
    await A.refreshTags()
    assert.ok((await A.getExpiration(['products'])) > 0, 'A learned it')
    await redis.command('FLUSHALL')
    await A.updateTags(['other'])
    const C = instance('flushsend', { tagSync: 'pull' })
    await until(
      async () => {
        await C.refreshTags()
        return (await C.getExpiration(['products'])) > 0
      },
      5000,
      "A's pull after its send to give the lost revalidation back",
    )
  })

  test('a meta hash lost alone: a process that starts then judges by the records, and makes it anew', async () => {
    const A = instance('nometa')
    await A.refreshTags()
    await A.set('page', Promise.resolve(entry('old', ['products'])))
    await A.updateTags(['products'])
    const meta = 'nometa:tags:{nometa}:meta'
    // Deleted by hand (docs/troubleshooting.md) or evicted: the records stay.
    assert.equal(await redis.command('DEL', meta), 1)
    const lines = await infoLines(async (info) => {
      const C = instance('nometa')
      await C.refreshTags()
      assert.equal(await C.get('page', []), undefined, 'the invalidated entry is not served')
      assert.ok((await C.getExpiration(['products'])) > 0, 'C knows the revalidation')
      // C made the meta hash anew (a merge of no record): every process follows it in part again.
      await until(
        async () => (await redis.command('HGET', meta, 'epoch')) != null,
        5000,
        'a new epoch',
      )
      // Said as what it is, once C has the merge's reply: no record was lost, none given back.
      await until(
        () => info.some((l) => l.includes("made the tag state's lost meta hash anew in Redis")),
        5000,
        'the line saying so',
      )
    })
    assert.ok(!lines.some((l) => l.includes('lost tag record')), lines.join('\n'))
    await A.refreshTags()
    assert.equal(await A.get('page', []), undefined, 'A still judges by the records')
  })

  for (const lost of ['log', 'state']) {
    test(`the ${lost === 'log' ? 'version log' : 'state hash'} lost alone: a process behind still judges by the revalidation`, async () => {
      const prefix = `no${lost}`
      const A = instance(prefix)
      const B = instance(prefix)
      await A.refreshTags()
      await A.updateTags(['other'])
      await B.refreshTags()
      await A.set('page', Promise.resolve(entry('old', ['products'])))
      await A.updateTags(['products'])
      // A's pull confirms its update: nothing of its own left for a later pull to check.
      await A.refreshTags()
      // Deleted by hand or evicted (an allkeys-* policy): the meta hash keeps the versions.
      assert.equal(await redis.command('DEL', `${prefix}:tags:{${prefix}}:${lost}`), 1)
      // A lost state hash comes back from what A knows, once A has loaded what is left.
      if (lost === 'state') await A.refreshTags()
      await until(
        async () => {
          await B.refreshTags()
          return (await B.getExpiration(['products'])) > 0
        },
        5000,
        'B to know the revalidation',
      )
      assert.equal(await B.get('page', []), undefined, 'the invalidated entry is not served')
    })
  }

  test('a meta hash lost alone from a state of several pages, while Redis refuses writes: no load after load', async () => {
    const A = instance('nometa-big')
    await A.refreshTags()
    await A.set('page', Promise.resolve(entry('old', ['products'])))
    for (let b = 0; b < 25; b++) {
      await A.updateTags(Array.from({ length: 100 }, (_, i) => `t${b * 100 + i}`))
    }
    await A.updateTags(['products'])
    const meta = 'nometa-big:tags:{nometa-big}:meta'
    assert.equal(await redis.command('DEL', meta), 1)
    // Full under noeviction (docs/operating.md): reads answer, writes fail with OOM, so the
    // merge that would make the meta hash anew fails too, and retries.
    const monitor = await tagPullMonitor(redis)
    try {
      const C = instance('nometa-big')
      await redis.command('CONFIG', 'SET', 'maxmemory', '1')
      try {
        await C.refreshTags()
        assert.equal(await C.get('page', []), undefined, 'the invalidated entry is not served')
        // 2,500 records are three pages, and the catch-up refresh after them is answered in
        // full again (no epoch, nothing to check): an idle process loads the state again at
        // each of its retries, not once after another as fast as Redis answers.
        const idle = await monitor.pullsDuring(() => new Promise((r) => setTimeout(r, 2000)))
        assert.ok(idle < 40, `${String(idle)} tag pulls in 2 s of an idle process`)
        assert.equal(await C.get('page', []), undefined, 'still not served')
      } finally {
        await redis.command('CONFIG', 'SET', 'maxmemory', '0')
      }
      // Writes answer again: the meta hash is made anew, and the process follows it in part.
      await until(
        async () => (await redis.command('HGET', meta, 'epoch')) != null,
        5000,
        'a new epoch',
      )
      await until(
        async () => (await monitor.pullsDuring(() => C.refreshTags())) === 1,
        5000,
        'a refresh of one call',
      )
    } finally {
      monitor.close()
    }
  })

  test('a failover that reuses version numbers is detected; the lost revalidation comes back', async () => {
    const A = instance('failover', { memoryBytes: 1 << 20 })
    const B = instance('failover')
    await A.updateTags(['base'])
    await A.refreshTags()
    await B.refreshTags()
    await A.set('page', Promise.resolve(entry('old', ['lost'])))
    const before = await snapshot('failover')
    // A's revalidation reaches Redis, A's mirror moves past it...
    await A.updateTags(['lost'])
    await A.refreshTags()
    // ...then the replica that takes over never had it, and B reuses its version number.
    await before.restore()
    await B.updateTags(['other'])
    await A.refreshTags()
    assert.equal(await A.get('page', []), undefined, 'A still knows its own revalidation')
    assert.ok((await A.getExpiration(['other'])) > 0, 'A has what B did after the failover')
    await until(
      async () => {
        await B.refreshTags()
        return (await B.getExpiration(['lost'])) > 0
      },
      5000,
      'B to learn the revalidation the failover lost',
    )
  })

  test('past tagMirrorMaxTags a process judges folded tags no fresher, and gives their merge back after a loss', async () => {
    const foldedBefore = stats()?.tagsFolded ?? 0
    const writer = instance('bound')
    await writer.refreshTags()
    await writer.set('page', Promise.resolve(entry('old', ['t0'])))
    // A keeps 2 tag records exactly: its revalidations of t0..t5 fold the oldest.
    const A = instance('bound', { tagMirrorMaxTags: 2 })
    await A.refreshTags()
    for (let i = 0; i < 6; i++) await A.updateTags([`t${String(i)}`])
    await A.refreshTags()
    assert.ok((stats()?.tagsFolded ?? 0) > foldedBefore, 'stats() counts the folded records')
    assert.equal(await A.get('page', []), undefined, 'A still expires the page by folded t0')
    // Redis loses its tag state (the entry stays): A reloads it and gives back what it knows,
    // its folded records as one, which every tagged entry is judged by.
    const state = 'bound:tags:{bound}:state'
    await redis.command('DEL', state, 'bound:tags:{bound}:log', 'bound:tags:{bound}:meta')
    await until(
      async () => {
        await A.refreshTags()
        return (await redis.command('HEXISTS', state, '\x01folded')) === 1
      },
      5000,
      'the folded records to be given back',
    )
    // An instance that never heard of t0's revalidation: without the folded record, t0 is
    // unknown to it and the page made before the revalidation would be fresh.
    const C = instance('bound')
    await until(
      async () => {
        await C.refreshTags()
        return (await C.getExpiration(['t5'])) > 0
      },
      5000,
      'C to load the state A gave back',
    )
    assert.equal(await C.get('page', []), undefined, 'the page made before t0 is not served')
    assert.ok((await C.getExpiration(['t0'])) > 0, 'every tag expires entries made before it')
  })

  test('past tagMirrorMaxTags, a process over 1,024 versions behind gives nothing back, and expires nothing', async () => {
    const prefix = 'behind'
    const writer = instance(prefix)
    // The state exists before A starts, so A follows it from its first load. (A process whose
    // own first revalidation created the state, before it ever loaded one, cannot tell that
    // state from one that replaced another: it gives back what it folded, to be safe.)
    await writer.updateTags(['seed'])
    await writer.refreshTags()
    // An entry whose only tag is never revalidated, made before any revalidation below.
    await writer.set('untouched', Promise.resolve(entry('old', ['never-revalidated'])))
    const A = instance(prefix, { tagMirrorMaxTags: 2 })
    await A.refreshTags()
    for (let i = 0; i < 6; i++) await A.updateTags([`t${String(i)}`])
    await A.refreshTags()
    // Other processes revalidate 1,100 times while A does not refresh (a long pause): the id
    // of A's version is pruned and its next refresh is answered in full, though Redis lost
    // nothing.
    for (let i = 0; i < 1100; i++) await writer.updateTags(['busy'])
    await writer.refreshTags()
    for (let i = 0; i < 5; i++) await A.refreshTags()
    const state = `${prefix}:tags:{${prefix}}:state`
    assert.equal(
      await redis.command('HEXISTS', state, '\x01folded'),
      0,
      'A gave its folded records back to a Redis that holds every one of them',
    )
    // What that costs: every process judges every tagged entry by it.
    const C = instance(prefix)
    await C.refreshTags()
    await C.refreshTags()
    assert.notEqual(
      await C.get('untouched', []),
      undefined,
      'an entry no revalidation touched is expired for every process',
    )
  })

  test('a process that has not loaded the tag state serves nothing tagged as fresh', async () => {
    const writer = instance('unsynced')
    await writer.refreshTags()
    await writer.set('page', Promise.resolve(entry('old', ['t'])))
    await writer.updateTags(['t'])
    await writer.set('plain', Promise.resolve(entry('plain', [])))
    // A reader that cannot load the tag state: the refresh script is refused (NOPERM).
    await redis.command('ACL', 'SETUSER', 'notags', 'on', '>pw', '~unsynced:d1:*', '+@all')
    const reader = instance('unsynced', { redisUrl: redis.url.replace('//', '//notags:pw@') })
    await reader.refreshTags()
    assert.equal(await reader.get('page', []), undefined, 'a tagged entry is a miss')
    assert.equal(await reader.get('plain', ['_N_T_/p']), undefined, 'soft tags count as tags')
    const plain = await reader.get('plain', [])
    assert.ok(plain, 'an entry without any tag is served')
    assert.equal(await text(plain.value), 'plain')
    assert.ok((await reader.getExpiration(['_N_T_/p'])) > now(), 'every hit Next checks is dropped')
  })

  // docs/failures.md, "Before the tag state is loaded": while Redis answers, a tagged entry
  // made after such a process started is a miss too; while the breaker is open, the entries
  // it made itself since it started are judged by its own revalidations, and another
  // instance's, revalidated before the outage by a revalidation it never heard of, is not served.
  test('a process that has not loaded the tag state: during an outage its own entries serve, judged by its own revalidations, and no other', async () => {
    const fast = {
      ...OUTAGE,
      breakerOpenMs: 60_000,
      breakerMaxOpenMs: 60_000,
      memoryBytes: 1 << 20,
    }
    const writer = instance('unsynced-outage', fast)
    await writer.refreshTags()
    await redis.command('ACL', 'SETUSER', 'notags2', 'on', '>pw', '~unsynced-outage:d1:*', '+@all')
    const reader = instance('unsynced-outage', {
      ...fast,
      redisUrl: redis.url.replace('//', '//notags2:pw@'),
    })
    // The reader's first command: it started before the writer's entry was made.
    await reader.refreshTags()
    await new Promise((r) => setTimeout(r, 5))
    await writer.set('page', Promise.resolve(entry('old', ['t'])))
    assert.equal(await reader.get('page', []), undefined, 'a tagged entry is a miss')
    // One the reader makes itself, with a tag of its own.
    await reader.set('own', Promise.resolve(entry('mine', ['u'])))
    // The fleet revalidates `t` while Redis answers; the reader cannot hear of it.
    await writer.updateTags(['t'])
    const port = redis.port
    await redis.stop()
    try {
      // The breaker opens on the reader's first failed command.
      await reader.refreshTags()
      const during = await reader.get('page', [])
      assert.equal(
        during && (await text(during.value)),
        undefined,
        'an entry another instance made, revalidated before the outage, is not served',
      )
      const own = await reader.get('own', [])
      assert.equal(own && (await text(own.value)), 'mine', 'its own entry is served')
      // Its own revalidation of that tag is heard.
      await reader.updateTags(['u'])
      assert.equal(await reader.get('own', []), undefined, 'judged by its own revalidation')
    } finally {
      redis = await startRedisOnPort({ port, logDir })
    }
  })

  // docs/failures.md, "Redis loses tag state": a queued revalidation that never reaches Redis
  // (here dropped from a full outbox) is still written back once Redis has lost the state.
  test('a revalidation dropped from a full outbox is given back once Redis comes back empty', async () => {
    const fast = { ...OUTAGE, outboxCapacity: 1 }
    const A = instance('dropback', fast)
    const B = instance('dropback', fast)
    await A.refreshTags()
    await B.updateTags(['known'])
    await A.refreshTags()
    assert.ok((await A.getExpiration(['known'])) > 0, 'A follows a state with an epoch')
    const port = redis.port
    await redis.stop()
    try {
      await A.updateTags(['dropped'])
      // The outbox holds one: this one pushes `dropped` out, which holds on A only.
      await A.updateTags(['sent'])
    } finally {
      redis = await startRedisOnPort({ port, logDir })
    }
    // A gets no request: its probe, its outbox's replay and the pull that finds the state lost.
    const C = instance('dropback', fast)
    await until(
      async () => {
        await C.refreshTags()
        return (await C.getExpiration(['dropped'])) > 0
      },
      5000,
      'the dropped revalidation to be given back to Redis',
    )
    assert.ok((await C.getExpiration(['sent'])) > 0, 'the one queued reached Redis too')
  })

  test('after an outage: own copies give way to the fleet, and an idle instance catches up', async () => {
    // The outage is a stopped server: every command and connection fails at once, so no
    // budget runs out here, and under load a short one ran out while Redis was up.
    const fast = { ...OUTAGE, memoryBytes: 1 << 20 }
    const A = instance('outage', fast)
    const B = instance('outage', fast)
    await A.refreshTags()
    await B.refreshTags()
    const port = redis.port
    await redis.stop()
    try {
      // Redis down: A renders its own value and keeps it, and revalidates a tag.
      await A.set('page', Promise.resolve(entry('n=19', ['p'])))
      const during = await A.get('page', [])
      assert.equal(await text(during.value), 'n=19', 'served from this process during the outage')
      await A.updateTags(['queued'])
    } finally {
      redis = await startRedisOnPort({ port, logDir })
    }
    // Redis is back, empty: B renders the fleet's value.
    await until(
      async () => {
        await B.refreshTags()
        await B.set('page', Promise.resolve(entry('n=20', ['p'])))
        return (await redis.command('EXISTS', await entryKey('outage', 'page'))) === 1
      },
      5000,
      "B's write to land",
    )
    // A gets no request meanwhile: its probe notices Redis, and its queued revalidation goes out.
    await until(
      async () => (await redis.command('HGET', 'outage:tags:{outage}:state', 'queued')) !== null,
      5000,
      "A's queued revalidation to reach Redis with no request on A",
    )
    await B.refreshTags()
    assert.ok((await B.getExpiration(['queued'])) > 0)
    const got = await A.get('page', [])
    assert.equal(await text(got.value), 'n=20', "the fleet's value, not A's own")
  })
})

/** The Redis key of a 'use cache' entry, as the engine names it. */
async function entryKey(prefix, cacheKey) {
  const { createRequire } = await import('node:module')
  const require = createRequire(import.meta.url)
  const wasm = require('../wasm/node/fleetcache_wasm.js')
  return new wasm.Engine({ prefix, deployment: 'd1' }).entryKey(
    wasm.Interface.useCache('default'),
    cacheKey,
  )
}
