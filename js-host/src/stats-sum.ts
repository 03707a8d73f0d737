/**
 * The engine's counters as `stats()` reports them: one engine's snapshot, and the sum of
 * several (a process may run more than one runtime).
 */
import { now } from './clock'
import type { FleetcacheStats } from './stats'
import type { Engine } from './wasm'

/** The breaker's states, worst last; also the value of the `fleetcache.breaker.state` gauge. */
export const BREAKER_RANK = { closed: 0, 'half-open': 1, open: 2 } as const

/** Each engine's last snapshot, what `stats()` reports once the engine has failed. */
const lastSnapshot = new WeakMap<Engine, FleetcacheStats>()

/**
 * One engine's snapshot, as the core serialises it, with `engine: 'ok'`. Once a call into the
 * engine has trapped, every later call throws (docs/failures.md, "A trap in the engine"); a
 * snapshot takes no input, so a throw here is that failure: the last snapshot is reported
 * with `engine: 'failed'`, so a health check reading `stats()` sees it rather than an error.
 * `primeStats` takes the first snapshot when the engine is made, so there always is one.
 */
export function engineStats(engine: Engine): FleetcacheStats {
  let snapshot: FleetcacheStats
  try {
    snapshot = { ...(engine.stats(now()) as Omit<FleetcacheStats, 'engine'>), engine: 'ok' }
  } catch {
    const last = lastSnapshot.get(engine)
    if (last === undefined)
      throw new Error('fleetcache: the engine failed before its first snapshot')
    return { ...last, engine: 'failed' }
  }
  lastSnapshot.set(engine, snapshot)
  return snapshot
}

/** Takes an engine's first snapshot (`engineStats`): call it when the engine is made. */
export function primeStats(engine: Engine): void {
  engineStats(engine)
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
  out.engine = a.engine === 'failed' || b.engine === 'failed' ? 'failed' : 'ok'
  out.breaker.state =
    BREAKER_RANK[b.breaker.state] > BREAKER_RANK[a.breaker.state]
      ? b.breaker.state
      : a.breaker.state
  return out
}
