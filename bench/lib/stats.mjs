// Timing helpers shared by the benchmarks: bounded loops, percentiles, medians over rounds.

export const pct = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/**
 * Runs `op` `ops` times from `inFlight` concurrent loops; returns throughput, latency
 * percentiles (µs) and the process's CPU time per op (µs, every thread: Redis I/O included).
 * Latency includes queueing behind the other loops, as a server's would.
 */
export async function measure(op, { ops, inFlight }) {
  const lat = new Float64Array(ops)
  let next = 0
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  async function loop() {
    for (;;) {
      const i = next++
      if (i >= ops) return
      const s = process.hrtime.bigint()
      await op(i)
      lat[i] = Number(process.hrtime.bigint() - s) / 1000
    }
  }
  await Promise.all(Array.from({ length: inFlight }, loop))
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const sorted = Array.from(lat).sort((a, b) => a - b)
  return {
    opsPerSec: ops / secs,
    p50: pct(sorted, 50),
    p99: pct(sorted, 99),
    cpuUs: (cpu.user + cpu.system) / ops,
  }
}

/** Per-call cost of a synchronous function, in ns: blocks of `k` calls, median block. */
export function measureSync(fn, { k = 1000, blocks = 50 } = {}) {
  for (let i = 0; i < k; i++) fn()
  const per = []
  for (let b = 0; b < blocks; b++) {
    const s = process.hrtime.bigint()
    for (let i = 0; i < k; i++) fn()
    per.push(Number(process.hrtime.bigint() - s) / k)
  }
  per.sort((a, b) => a - b)
  return { p50: pct(per, 50), p99: pct(per, 99) }
}

/**
 * Interleaves cases over `rounds` (order rotated each round, after one warm-up pass) so
 * drift on a shared machine hits all of them alike. Returns per-case medians and spread, and
 * each round's measure (`rounds`, in round order) for comparisons paired by round.
 */
export async function compare(cases, { rounds, ops, inFlight }) {
  const names = Object.keys(cases)
  for (const name of names) await measure(cases[name], { ops: Math.ceil(ops / 4), inFlight })
  const runs = Object.fromEntries(names.map((n) => [n, []]))
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(r + j) % names.length]
      runs[name].push(await measure(cases[name], { ops, inFlight }))
    }
  }
  return names.map((name) => {
    const rs = runs[name]
    return {
      name,
      opsPerSec: median(rs.map((x) => x.opsPerSec)),
      min: Math.min(...rs.map((x) => x.opsPerSec)),
      max: Math.max(...rs.map((x) => x.opsPerSec)),
      p50: median(rs.map((x) => x.p50)),
      p99: median(rs.map((x) => x.p99)),
      cpuUs: median(rs.map((x) => x.cpuUs)),
      rounds: rs.map(({ opsPerSec, p50, cpuUs }) => ({ opsPerSec, p50, cpuUs })),
    }
  })
}

/**
 * `a`'s `field` over `b`'s, round by round (cases of one `compare`: round i measures every
 * case in turn, in rotated order): the median of the per-round ratios and their min–max. Drift on a shared machine moves both sides of a round alike, which a ratio of the
 * two medians (each taken over every round) does not cancel.
 */
export function pairedRatio(a, b, field) {
  const ratios = a.rounds.map((r, i) => r[field] / b.rounds[i][field])
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) }
}

/** mulberry32: a small seeded PRNG, so a run draws the same numbers for the same seed. */
export function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
