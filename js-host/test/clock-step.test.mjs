// A process whose clock runs behind the wall clock: Next stamps entries and revalidations on
// `performance.timeOrigin + performance.now()`, which follows the monotonic clock from the
// process's start, so a wall-clock step after that start (an NTP step, a machine resumed after a
// pause) leaves the process that far behind the fleet. Its revalidations must still reach every
// entry the fleet wrote before them (docs/failures.md, "Clocks"), on a real redis-server.
//
// The step is made by moving `Date.now` (the wall clock fleetcache compares with) ahead of
// Next's scale in this process; "another instance with a right clock" is an entry whose
// timestamp is on the wall clock, handed to `set` as Next on that instance would.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import {
  capture,
  fetchValue,
  instanceOptions,
  now,
  requestInstances,
  startTestRedis,
  text,
  useCacheEntry,
} from './helpers.mjs'

/** How far this process's clock is behind the wall clock while the tests run. */
const STEP_MS = 5000
/** How long before a revalidation the other instance wrote its entry (well inside the step). */
const WRITTEN_BEFORE_MS = 1000

let redis
const realDateNow = Date.now
/** The wall clock's distance ahead of this process's clock (negative: the process is ahead). */
let wallAhead = STEP_MS

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-clock-step-'))
  redis = await startTestRedis({ logDir })
  // Before any handler exists: each runtime takes the wall clock when it is made.
  Date.now = () => realDateNow() + wallAhead
})

after(async () => {
  Date.now = realDateNow
  await close()
  await redis?.stop()
})

const child = fileURLToPath(new URL('./clock-step-child.mjs', import.meta.url))

const options = () => instanceOptions(redis, 'clockstep')
const useCache = () => createUseCacheHandler(options())
const incremental = () => requestInstances(createIncrementalCacheHandler, redis, 'clockstep')

/**
 * An entry the other instance (clock right) wrote `WRITTEN_BEFORE_MS` ago, tagged `tag`,
 * stored and seen fresh by `reader` before the revalidation.
 */
async function writtenElsewhere(writer, reader, key, tag) {
  const timestamp = Date.now() - WRITTEN_BEFORE_MS
  assert.ok(timestamp > now(), 'the entry is stamped after this process clock reads')
  await writer.set(key, Promise.resolve(useCacheEntry(`v-${key}`, { tags: [tag], timestamp })))
  await reader.refreshTags()
  const before = await reader.get(key, [])
  assert.ok(before, 'served before the revalidation')
  assert.equal(await text(before.value), `v-${key}`)
  assert.equal(before.revalidate, 900, 'fresh before the revalidation')
  return timestamp
}

/**
 * Decision 0005 on this process's clock as it is now: each revalidation, as Next reports it to
 * both handlers (`updateTags`, then the singular handler's `revalidateTag` in the same turn),
 * makes one `TAG_UPDATE`: an expiry now, a profile whose `expire` outlasts the step, and one
 * whose `expire` is shorter than it (cut to an expiry at once where the clock runs ahead).
 */
async function writesRedisOnce(prefix) {
  const opts = options()
  const useCache = createUseCacheHandler(opts)
  const Inc = createIncrementalCacheHandler(opts)
  const version = async () =>
    Number((await redis.command('HGET', 'clockstep:tags:{clockstep}:meta', 'ver')) ?? 0)
  for (const [tag, durations] of [
    [`${prefix}-expire`, undefined],
    [`${prefix}-profile`, { expire: 300 }],
    [`${prefix}-short`, { expire: 3 }],
  ]) {
    const before = await version()
    await capture(() =>
      Promise.all([
        useCache.updateTags([tag], durations),
        new Inc({ dev: false, revalidatedTags: [] }).revalidateTag([tag], durations),
      ]),
    )
    assert.equal(
      (await version()) - before,
      1,
      `TAG_UPDATE calls for ${tag}, as Next reports it to both handlers`,
    )
  }
}

describe('revalidations of a process whose clock is behind the wall clock', () => {
  test('updateTags reaches an entry another instance wrote before it (expire now)', async () => {
    const [behind, other] = [useCache(), useCache()]
    const written = await writtenElsewhere(other, other, 'k-expire', 'step-expire')
    await capture(() => behind.updateTags(['step-expire']))
    await other.refreshTags()
    assert.equal(await other.get('k-expire', []), undefined, 'still served after the revalidation')
    assert.ok(
      (await other.getExpiration(['step-expire'])) >= written,
      'the tag expired no earlier than the entry was written',
    )
    assert.equal(await behind.get('k-expire', []), undefined, 'served by the revalidating process')
  })

  test("a profile revalidation ('max') makes such an entry stale", async () => {
    const [behind, other] = [useCache(), useCache()]
    await writtenElsewhere(other, other, 'k-max', 'step-max')
    await capture(() => behind.updateTags(['step-max'], { expire: 31536000 }))
    await other.refreshTags()
    const got = await other.get('k-max', [])
    assert.ok(got, 'still served (stale)')
    // Next on the serving instance regenerates past timestamp + revalidate, on its own clock.
    assert.ok(
      now() > got.timestamp + got.revalidate * 1000,
      `served as fresh after the revalidation (timestamp ${got.timestamp}, revalidate ${got.revalidate})`,
    )
    assert.equal(await text(got.value), 'v-k-max')
  })

  test("the singular handler's revalidateTag reaches it too", async () => {
    const Behind = incremental()
    const other = useCache()
    await writtenElsewhere(other, other, 'k-inc', 'step-inc')
    await capture(() => Behind().revalidateTag(['step-inc']))
    await other.refreshTags()
    assert.equal(await other.get('k-inc', []), undefined, 'still served after the revalidation')
  })

  test('what it costs: the entries any process as far behind writes in the step after it are regenerated', async () => {
    // `alike` is behind by as much (the same machine): Next there stamps its entries on this
    // clock. With no process on the wall clock to write them again, a whole fleet behind alike
    // regenerates its entries of the tags for the step after each revalidation
    // (docs/failures.md, "Clocks").
    const [behind, alike] = [useCache(), useCache()]
    await capture(() => behind.updateTags(['step-cost']))
    const soon = now() + WRITTEN_BEFORE_MS
    const late = now() + STEP_MS + WRITTEN_BEFORE_MS
    for (const [key, timestamp] of [
      ['k-soon', soon],
      ['k-late', late],
    ]) {
      await alike.set(
        key,
        Promise.resolve(useCacheEntry(`v-${key}`, { tags: ['step-cost'], timestamp })),
      )
    }
    await behind.refreshTags()
    assert.equal(
      await behind.get('k-soon', []),
      undefined,
      'an entry written a second after the revalidation is served',
    )
    const got = await behind.get('k-late', [])
    assert.ok(got, 'an entry written past the step after the revalidation is not served')
    assert.equal(got.revalidate, 900, 'an entry written past the step is not fresh')
  })

  test('one revalidation seen by updateTags and revalidateTag writes Redis once', async () => {
    // Decision 0005 from a process behind: `updateTags` records it at the wall clock, and the
    // singular handler's report of it comes on this process's clock, 5 s earlier.
    await writesRedisOnce('pair')
  })

  test('the step is logged as before', async () => {
    const behind = useCache()
    const lines = await capture(() => behind.updateTags(['step-log']))
    assert.ok(
      lines.some((l) => /5\.0 s behind the wall clock/.test(l)),
      `no clock line in ${JSON.stringify(lines)}`,
    )
  })
})

describe('revalidations of a process whose clock is ahead of the wall clock', () => {
  before(() => {
    wallAhead = -STEP_MS
  })
  after(() => {
    wallAhead = STEP_MS
  })

  test('keep its own clock: they reach the entries it stamped before them', async () => {
    const [ahead, other] = [useCache(), useCache()]
    // Stamped by Next on this process's clock, a second before the revalidation: after the
    // wall clock's reading, which a revalidation stamped at the wall clock would miss.
    const timestamp = now() - WRITTEN_BEFORE_MS
    assert.ok(timestamp > Date.now(), 'the entry is stamped after the wall clock reads')
    await ahead.set(
      'k-ahead',
      Promise.resolve(useCacheEntry('v-ahead', { tags: ['step-ahead'], timestamp })),
    )
    await other.refreshTags()
    assert.ok(await other.get('k-ahead', []), 'served before the revalidation')
    const lines = await capture(() => ahead.updateTags(['step-ahead']))
    assert.ok(
      lines.some((l) => /5\.0 s ahead of the wall clock/.test(l)),
      `no clock line in ${JSON.stringify(lines)}`,
    )
    await other.refreshTags()
    assert.equal(await other.get('k-ahead', []), undefined, 'still served after the revalidation')
  })

  test('one revalidation seen by updateTags and revalidateTag writes Redis once', async () => {
    // Decision 0005 from a process ahead: `updateTags` records a later `expire` counted from
    // the wall clock, 5 s less than Next reported it; the singular handler reports it as given.
    await writesRedisOnce('pair-ahead')
  })
})

const fetchSetCtx = (tag) => ({ fetchCache: true, tags: [tag], fetchIdx: 0 })
const fetchGetCtx = (tag) => ({ kind: 'FETCH', revalidate: 60, tags: [tag], softTags: [] })

describe('entries of a process whose clock is ahead of the wall clock', () => {
  before(() => {
    wallAhead = -STEP_MS
  })
  after(() => {
    wallAhead = STEP_MS
  })

  /**
   * A revalidation of `tags` by another process whose clocks agree with this process's wall
   * clock (both moved as this one's `Date.now` is), made after the entries of each test.
   */
  async function revalidatedElsewhere(tags) {
    const { redisUrl, ...opts } = options()
    await promisify(execFile)(
      process.execPath,
      [child, redisUrl, JSON.stringify(opts), JSON.stringify(tags), String(-STEP_MS)],
      { timeout: 60_000 },
    )
  }

  test("a 'use cache' entry it wrote is reached by a revalidation the fleet makes after it", async () => {
    const [ahead, reader] = [useCache(), useCache()]
    // Stamped by Next on this process's clock, a second before the revalidation.
    const timestamp = now() - WRITTEN_BEFORE_MS
    await ahead.set(
      'k-ahead-uc',
      Promise.resolve(useCacheEntry('v-ahead-uc', { tags: ['ahead-uc'], timestamp })),
    )
    await reader.refreshTags()
    assert.ok(await reader.get('k-ahead-uc', []), 'served before the revalidation')
    await revalidatedElsewhere(['ahead-uc'])
    await reader.refreshTags()
    assert.equal(await reader.get('k-ahead-uc', []), undefined, 'still served after it')
  })

  test('a singular value it wrote is reached too', async () => {
    const Ahead = incremental()
    await Ahead().set('fetch-ahead', fetchValue(['ahead-inc']), fetchSetCtx('ahead-inc'))
    const before = await Ahead().get('fetch-ahead', fetchGetCtx('ahead-inc'))
    assert.equal(before?.value?.kind, 'FETCH', 'served before the revalidation')
    await revalidatedElsewhere(['ahead-inc'])
    assert.equal(
      await incremental()().get('fetch-ahead', fetchGetCtx('ahead-inc')),
      null,
      'still served after it',
    )
  })
})
