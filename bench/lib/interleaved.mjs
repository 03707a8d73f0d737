// One request at a time to one instance per variant, in rounds, the order rotating every round:
// bench/fleet.mjs's quiet comparison (issue 17's interleaved targets).
//
// The order the instances are started in is not neutral: in bench/PAGE-COST.md (runs 12 to 17)
// an instance started later ran fewer GCs per request, a difference as large as the 0.2 ms
// looked for, and two variants 0.25 ms apart in a fixed order were ~0 apart once the order
// changed. So the rounds are split into blocks, each on fresh instances started in an order
// rotated by one from the block before: with as many blocks as variants, every variant starts
// first once (and last once), and the pooled rounds favour none.

/** `items` rotated left by `by`: the start order of block `by`. */
export const rotated = (items, by) => items.map((_, i) => items[(i + by) % items.length])

/**
 * `rounds` rounds in `blocks` blocks (the rounds and the time cap `capMs` split evenly among
 * them). Per block: `start(variant, block)` for each variant in the block's order, one after
 * the other, `warm` calls of `ask` on each (the instances side by side, each one call at a
 * time), the block's rounds (one `ask` per instance per
 * round, the order rotating every round), then `stop` on each. `ask(instance)` returns a
 * request's latency (ms).
 *
 * Returns { byKey: per variant key its latencies in pooled round order, blockOf: the block of
 * each pooled round, orders: per block the variant keys in start order }. The k-th latency of
 * every variant is of the same round, so differences pair by round.
 */
export async function interleavedBlocks({
  variants,
  blocks,
  rounds,
  capMs,
  warm,
  start,
  stop,
  ask,
}) {
  if (!Number.isInteger(blocks) || blocks < 1) throw new Error(`blocks must be ≥ 1, not ${blocks}`)
  const byKey = Object.fromEntries(variants.map((v) => [v.key, []]))
  const blockOf = []
  const orders = []
  for (let b = 0; b < blocks; b++) {
    const order = rotated(variants, b % variants.length)
    orders.push(order.map((v) => v.key))
    const blockRounds = Math.floor(rounds / blocks) + (b < rounds % blocks ? 1 : 0)
    const instances = []
    try {
      for (const v of order) instances.push(await start(v, b))
      // Side by side, each instance one request at a time: warming thousands of requests one
      // instance after the other would take minutes, and the JIT counts calls, not overlap.
      await Promise.all(
        instances.map(async (inst) => {
          for (let i = 0; i < warm; i++) await ask(inst)
        }),
      )
      const deadline = performance.now() + capMs / blocks
      for (let r = 0; r < blockRounds && performance.now() < deadline; r++) {
        for (let j = 0; j < order.length; j++) {
          const k = (r + j) % order.length
          byKey[order[k].key].push(await ask(instances[k]))
        }
        blockOf.push(b)
      }
    } finally {
      for (const inst of instances) await stop(inst)
    }
  }
  return { byKey, blockOf, orders }
}

/**
 * `a`'s p50 less `b`'s (latencies of the same rounds, `pct` a percentile of sorted values), with
 * a 95% bootstrap interval (seeded by `random`, so a report reads the same for the same data):
 * rounds resampled within each block (`blockOf[k]`: round k's), so every draw keeps the
 * blocks' shares, hence every start order's. Beside it, `paired`: the mean over the blocks of each block's
 * median of its rounds' own differences, and `perBlock`: each block's p50 and paired difference.
 */
export function p50Difference(a, b, blockOf, { pct, random }) {
  const p50 = (xs) =>
    pct(
      [...xs].sort((x, y) => x - y),
      50,
    )
  const n = Math.min(a.length, b.length, blockOf.length)
  const diff = p50(a.slice(0, n)) - p50(b.slice(0, n))
  const rounds = new Map() // block -> its rounds' indices
  for (let k = 0; k < n; k++) rounds.set(blockOf[k], [...(rounds.get(blockOf[k]) ?? []), k])
  const draws = []
  for (let i = 0; i < 1000; i++) {
    const ra = []
    const rb = []
    for (const ks of rounds.values()) {
      for (let j = 0; j < ks.length; j++) {
        const k = ks[Math.floor(random() * ks.length)]
        ra.push(a[k])
        rb.push(b[k])
      }
    }
    draws.push(p50(ra) - p50(rb))
  }
  draws.sort((x, y) => x - y)
  // The two requests of a round run back to back: the machine's drift between rounds cancels
  // in each difference. Each block's median of them, averaged over the blocks with equal
  // weight: the median of all rounds pooled is not neutral to start order (start-place costs
  // 1.2, 1.1, 1.0 ms give block medians -0.1, -0.1, +0.2 and a pooled median of -0.1).
  const perBlock = [...rounds].map(([block, ks]) => ({
    block,
    diff: p50(ks.map((k) => a[k])) - p50(ks.map((k) => b[k])),
    paired: p50(ks.map((k) => a[k] - b[k])),
  }))
  const paired = n ? perBlock.reduce((s, x) => s + x.paired, 0) / perBlock.length : NaN
  return { diff, lo: draws[25], hi: draws[974], n, paired, perBlock }
}
