/**
 * The engine's counters as `stats()` reports them: one engine's snapshot, and the sum of
 * several (a process may run more than one runtime).
 */
import { now } from './clock'
import type { FleetcacheStats } from './stats'
import type { Engine } from './wasm'

/** The breaker's states, worst last; also the value of the `fleetcache.breaker.state` gauge. */
export const BREAKER_RANK = { closed: 0, 'half-open': 1, open: 2 } as const

/** One engine's snapshot, as the core serialises it. */
export function engineStats(engine: Engine): FleetcacheStats {
  return engine.stats(now()) as FleetcacheStats
}

/**
 * Adds two snapshots field by field. The breaker state is the worse of the two, so a process
 * with two runtimes reports an open breaker when either is open.
 */
export function addStats(a: FleetcacheStats, b: FleetcacheStats): FleetcacheStats {
  const sum = (x: unknown, y: unknown): unknown => {
    if (typeof x === 'number' && typeof y === 'number') return x + y
    if (typeof x === 'object' && x !== null && typeof y === 'object' && y !== null) {
      const out: Record<string, unknown> = {}
      for (const k of Object.keys(x)) {
        out[k] = sum((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k])
      }
      return out
    }
    return x
  }
  const out = sum(a, b) as FleetcacheStats
  out.breaker.state =
    BREAKER_RANK[b.breaker.state] > BREAKER_RANK[a.breaker.state]
      ? b.breaker.state
      : a.breaker.state
  return out
}
