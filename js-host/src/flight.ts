import { setTimeout as sleep } from 'node:timers/promises'

import { now } from './clock'
import { describe } from './log'
import type { Runtime } from './runtime'
import { isCircuitOpen, runScript } from './transport'
import { wasm, type Interface } from './wasm'

/**
 * Single flight across the fleet (docs/single-flight.md). The engine decides every
 * step (who regenerates, what to present, how long to wait); this file only sends the lease
 * commands, runs the poll timer and hands the replies back.
 */

/** Step codes of the engine's lease flight (`leaseStart`, `leaseAcquired`, `leasePolled`). */
export const Step = {
  Serve: 0,
  ServeStale: 1,
  ServeAsFresh: 2,
  Acquire: 3,
  Poll: 4,
  Regenerate: 5,
  Fallback: 6,
  /** The holder let its lease go without writing: regenerate here at once. */
  Released: 7,
} as const

/** What a read found: the engine's code (0 fresh, 1 stale, 2 missing) and what to serve. */
export interface Judgement<V> {
  found: number
  /** Creation time of the entry read (NaN when none): a newer one means "read again". */
  timestamp: number
  /** The servable value, when there is one. */
  value: V | undefined
}

/** The end of a flight: the step that ended it and the judgement it ended on. */
export interface Landing<V> {
  step: number
  judgement: Judgement<V>
}

/** Upper bound on lease steps per request, whatever happens (the engine's own cap is higher). */
const MAX_STEPS = 1000

/**
 * Runs the lease protocol for one read whose first judgement is `first`, made at `started`.
 * `caches`: the read's consumer will store the answer in a server cache (consumer.ts), so the
 * engine treats a stale entry as a miss. A poll reads the entry and whether its lease still
 * exists in one script (`planLeasePoll`); `judge` judges the entry it read (null: none). A
 * lease command that fails is reported to the engine as "no answer", which then behaves as
 * if there were no leases (the request regenerates or serves stale itself); a poll that
 * fails rejects, like a read.
 */
export async function fly<V>(
  rt: Runtime,
  iface: Interface,
  cacheKey: string,
  first: Judgement<V>,
  started: number,
  caches: boolean,
  judge: (value: Buffer | null, t: number) => Judgement<V>,
): Promise<Landing<V>> {
  const { engine } = rt
  let judgement = first
  let step = engine.leaseStart(first.found, started, caches)
  for (let i = 0; i < MAX_STEPS; i++) {
    if (step === Step.Acquire) {
      const reply = await acquire(rt, iface, cacheKey, judgement.timestamp)
      step = engine.leaseAcquired(first.found, started, reply, now(), caches)
      continue
    }
    if (step === Step.Poll) {
      // Read both before awaiting: the engine's `last*` getters belong to the latest call.
      const delay = engine.lastDelayMs
      const polls = engine.lastPolls
      if (delay > 0) await sleep(delay, undefined, { ref: false })
      const [value, leased] = await poll(rt, iface, cacheKey)
      const t = now()
      judgement = judge(value, t)
      step = engine.leasePolled(first.found, started, polls, judgement.found, leased, t, caches)
      continue
    }
    return { step, judgement }
  }
  return { step: Step.Fallback, judgement }
}

/** Sends the lease request; the script's reply, or -1 when Redis did not answer. */
async function acquire(
  rt: Runtime,
  iface: Interface,
  cacheKey: string,
  seenTimestamp: number,
): Promise<number> {
  const { engine, transport, log } = rt
  if (transport === undefined) return -1
  try {
    const token = wasm.randomToken()
    const argv = engine.planLeaseAcquire(iface, cacheKey, token, seenTimestamp)
    const sentAt = now()
    // The lease budget (the engine's): an answer that comes late counts as none, and this
    // request would regenerate beside the holder.
    const reply = await runScript(transport, argv, (sha) => engine.scriptSource(sha), {
      kind: 'lease',
    })
    const code = typeof reply === 'number' ? reply : Number(reply)
    if (code === 1) {
      engine.leaseWon(iface, cacheKey, token, sentAt)
      renewWhileHeld(rt, iface, cacheKey, sentAt)
    }
    return Number.isFinite(code) ? code : -1
  } catch (err) {
    if (!isCircuitOpen(err)) log.debug(`lease request failed (${describe(err)}): no lease`)
    return -1
  }
}

/** Polls in flight, per runtime and key: followers of one key in one process share one. */
const polling = new WeakMap<Runtime, Map<string, Promise<[Buffer | null, boolean]>>>()

/**
 * A follower's poll: the entry (null when none) and whether its lease still exists. Concurrent
 * polls of one key in one process share one script call, as reads share one `GET`.
 */
function poll(rt: Runtime, iface: Interface, cacheKey: string): Promise<[Buffer | null, boolean]> {
  let pending = polling.get(rt)
  if (pending === undefined) {
    pending = new Map()
    polling.set(rt, pending)
  }
  const id = `${iface.segment}\0${cacheKey}`
  const shared = pending.get(id)
  if (shared !== undefined) return shared
  const sent = pollOnce(rt, iface, cacheKey)
  const map = pending
  map.set(id, sent)
  void sent.then(
    () => map.delete(id),
    () => map.delete(id),
  )
  return sent
}

async function pollOnce(
  rt: Runtime,
  iface: Interface,
  cacheKey: string,
): Promise<[Buffer | null, boolean]> {
  const { engine, transport } = rt
  if (transport === undefined) return [null, false]
  const argv = engine.planLeasePoll(iface, cacheKey)
  const reply = await runScript(transport, argv, (sha) => engine.scriptSource(sha), {
    kind: 'lease',
  })
  if (!Array.isArray(reply)) throw new Error('lease poll: unexpected reply')
  const [value, leased] = reply as unknown[]
  const entry = Buffer.isBuffer(value) ? value : null
  return [entry, Number(leased) === 1]
}

/**
 * Renews the lease on `cacheKey` won by the request sent at `wonAt` while this process holds
 * it, on an unref'd timer at the engine's interval. The engine ends it (no argv) once the
 * entry is written or the lease released, when it lapsed, or at its cap. Never rejects.
 */
function renewWhileHeld(rt: Runtime, iface: Interface, cacheKey: string, wonAt: number): void {
  const { engine, transport, log } = rt
  if (transport === undefined) return
  const tick = (): void => {
    let argv: string[]
    try {
      argv = engine.planLeaseRenew(iface, cacheKey, wonAt, now())
    } catch (err) {
      log.debug(`lease renewal not planned (${describe(err)}): it expires`)
      return
    }
    if (argv.length === 0) return
    const sentAt = now()
    runScript(transport, argv, (sha) => engine.scriptSource(sha), { kind: 'lease' }).then(
      (reply) => {
        const renewed = Number(reply) === 1
        engine.leaseRenewed(iface, cacheKey, wonAt, sentAt, renewed)
        if (renewed) schedule()
        else log.debug(`lease on ${cacheKey} no longer this process's: not renewed`)
      },
      (err: unknown) => {
        // Tried again at the next interval while the lease may still be alive.
        if (!isCircuitOpen(err)) log.debug(`lease renewal failed (${describe(err)})`)
        schedule()
      },
    )
  }
  const schedule = (): void => {
    setTimeout(tick, engine.leaseRenewEveryMs).unref()
  }
  schedule()
}

/**
 * Releases this process's lease on `cacheKey` when it holds one and will not write the
 * entry (nothing cacheable came out of the regeneration): the others stop waiting at once
 * instead of at their budget. Never rejects.
 */
export async function releaseLease(rt: Runtime, iface: Interface, cacheKey: string): Promise<void> {
  const { engine, transport, log } = rt
  try {
    const argv = engine.planLeaseRelease(iface, cacheKey)
    if (argv.length === 0 || transport === undefined) return
    await runScript(transport, argv, (sha) => engine.scriptSource(sha), { kind: 'write' })
  } catch (err) {
    // It expires on its own.
    if (!isCircuitOpen(err)) log.debug(`lease release failed (${describe(err)}): it expires`)
  }
}

/** True while the circuit breaker keeps this process off Redis (then the tier serves). */
export function redisDown(rt: Runtime, t: number): boolean {
  return rt.transport !== undefined && rt.engine.breakerState(t) !== 0
}
