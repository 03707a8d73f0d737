// bench/fleet.mjs's one-at-a-time comparison (bench/lib/interleaved.mjs), on fake instances
// whose latency depends only on their place in the start order, as bench/PAGE-COST.md found
// (runs 12 to 17): in one fixed order the first-started variant looks slower; over blocks
// started in rotated orders no variant is favoured. And the start order of bench/page-cost.mjs
// and bench/page-cpu.mjs (bench/lib/page-report.mjs startOrder).
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { interleavedBlocks, p50Difference } from '../../bench/lib/interleaved.mjs'
import { startOrder } from '../../bench/lib/page-report.mjs'
import { pct, rng } from '../../bench/lib/stats.mjs'

const VARIANTS = [{ key: 'pull' }, { key: 'default' }, { key: 'push' }]

// Instances whose every request costs 1.2 ms for the first started in a block, 1.1 for the
// second, 1.0 for the third: the variant itself costs nothing.
function fakeFleet() {
  const started = [] // [block, key] in start order
  let running = 0
  let maxRunning = 0
  let place = 0
  let block = -1
  return {
    started,
    maxRunning: () => maxRunning,
    start: async (v, b) => {
      if (b !== block) [block, place] = [b, 0]
      started.push([b, v.key])
      running++
      maxRunning = Math.max(maxRunning, running)
      return { key: v.key, ms: 1.2 - 0.1 * place++ }
    },
    stop: async () => {
      running--
    },
    ask: async (inst) => inst.ms,
  }
}

const run = (fleet, blocks, rounds) =>
  interleavedBlocks({
    variants: VARIANTS,
    blocks,
    rounds,
    capMs: 60_000,
    warm: 2,
    start: fleet.start,
    stop: fleet.stop,
    ask: fleet.ask,
  })

const diff = (got, a, b) =>
  p50Difference(got.byKey[a], got.byKey[b], got.blockOf, { pct, random: rng(7) })

test('one block per variant: each starts first once, the rounds split and paired', async () => {
  const fleet = fakeFleet()
  const got = await run(fleet, 3, 10)
  assert.deepEqual(got.orders, [
    ['pull', 'default', 'push'],
    ['default', 'push', 'pull'],
    ['push', 'pull', 'default'],
  ])
  assert.deepEqual(
    fleet.started.map(([b, k]) => `${String(b)}${k}`),
    got.orders.flatMap((o, b) => o.map((k) => `${String(b)}${k}`)),
  )
  assert.equal(fleet.maxRunning(), 3, "a block's instances stopped before the next start")
  assert.deepEqual(got.blockOf, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
  for (const v of VARIANTS) assert.equal(got.byKey[v.key].length, 10)
  // The first-started place (1.2 ms) falls on each variant in one block of three.
  assert.deepEqual(
    diff(got, 'pull', 'default').perBlock.map((x) => Number(x.diff.toFixed(3))),
    [0.1, -0.2, 0.1],
  )
})

test('over rotated start orders the place favours no variant; in one order it does', async () => {
  const fixed = await run(fakeFleet(), 1, 300)
  assert.deepEqual(fixed.orders, [['pull', 'default', 'push']])
  const a = diff(fixed, 'push', 'default')
  assert.equal(Number(a.diff.toFixed(3)), -0.1, "one order: push 'faster' by its place alone")

  const blocks = await run(fakeFleet(), 3, 300)
  const b = diff(blocks, 'push', 'default')
  // Each variant's pooled latencies are the same mixture of the three places.
  assert.equal(Number(b.diff.toFixed(3)), 0)
  // Resampled within blocks, every draw keeps each start order's share: the interval is 0.
  assert.deepEqual(
    [b.lo, b.hi].map((x) => Number(x.toFixed(3))),
    [0, 0],
  )
  // The rounds' own differences too: averaged over the blocks' medians, not pooled (the pooled
  // median of -0.1, -0.1, +0.2 per block is -0.1).
  assert.equal(Number(b.paired.toFixed(3)), 0)
  assert.equal(Number(a.paired.toFixed(3)), -0.1)
})

test('the time cap is split among the blocks', async () => {
  const got = await interleavedBlocks({
    variants: VARIANTS,
    blocks: 3,
    rounds: 300,
    capMs: 0,
    warm: 0,
    start: async (v) => ({ key: v.key }),
    stop: async () => {},
    ask: async () => 1,
  })
  assert.deepEqual(got.blockOf, [], "no round starts after its block's share of the cap")
  await assert.rejects(run(fakeFleet(), 0, 10), /blocks must be ≥ 1/)
})

test("a block's instances warm at once, each by its own count of requests one at a time", async () => {
  // Each instance's warming requests one at a time (as a round asks it), the instances side by
  // side: warming thousands of requests one instance after the other would take minutes.
  const inFlight = new Map() // key -> its requests in flight
  let most = 0
  let mostPerInstance = 0
  const asked = new Map() // key -> its requests, warming and rounds
  const got = await interleavedBlocks({
    variants: VARIANTS,
    blocks: 1,
    rounds: 3,
    capMs: 60_000,
    warm: 5,
    start: async (v) => ({ key: v.key }),
    stop: async () => {},
    ask: async (inst) => {
      const mine = (inFlight.get(inst.key) ?? 0) + 1
      inFlight.set(inst.key, mine)
      const total = [...inFlight.values()].reduce((s, x) => s + x, 0)
      most = Math.max(most, total)
      mostPerInstance = Math.max(mostPerInstance, mine)
      asked.set(inst.key, (asked.get(inst.key) ?? 0) + 1)
      await new Promise((resolve) => setImmediate(resolve))
      inFlight.set(inst.key, (inFlight.get(inst.key) ?? 0) - 1)
      return 1
    },
  })
  assert.equal(most, 3, 'the three instances warm side by side')
  assert.equal(mostPerInstance, 1, 'each one request at a time')
  // 5 warming and 3 rounds each.
  assert.deepEqual(Object.fromEntries(asked), { pull: 8, default: 8, push: 8 })
  assert.deepEqual(got.blockOf, [0, 0, 0])
})

test('page-cost and page-cpu: a seeded shuffle by default, the seed named; list on request', () => {
  const items = ['push', 'push+aa', 'push+ab', 'floor', 'floor+aa', 'floor+ab']
  const drawn = startOrder(items, 'PAGECPU_SHUFFLE', undefined)
  const seed = /PAGECPU_SHUFFLE=(\d+) repeats it/.exec(drawn.how)?.[1]
  assert.ok(seed, drawn.how)
  assert.deepEqual(startOrder(items, 'PAGECPU_SHUFFLE', seed).order, drawn.order)
  assert.deepEqual([...drawn.order].sort(), [...items].sort())
  assert.ok(drawn.how.endsWith(drawn.order.join(', ')), 'the Method line names the order')

  // The seed of run 17 (bench/PAGE-COST.md, 10:19, PAGECPU_SHUFFLE=7, before the shuffle was
  // the default) gives the order that run reports.
  const run17 =
    'floor,push,push+uc-floor-get,floor+aa,push+aa,push+uc-floor-get+aa,floor+ab,push+ab,push+uc-floor-get+ab'
  assert.deepEqual(
    startOrder([...run17.split(',').entries()], 'PAGECPU_SHUFFLE', '7', ([, v]) => v).order.map(
      ([, v]) => v,
    ),
    'push+uc-floor-get+aa, push+ab, floor+aa, push, push+uc-floor-get, push+aa, floor+ab, push+uc-floor-get+ab, floor'.split(
      ', ',
    ),
  )
  const list = startOrder(items, 'PAGECPU_SHUFFLE', 'list')
  assert.deepEqual(list.order, items)
  assert.match(list.how, /PAGECPU_SHUFFLE=list/)
  assert.throws(() => startOrder(items, 'PAGECOST_SHUFFLE', 'x'), /PAGECOST_SHUFFLE=x/)
})
