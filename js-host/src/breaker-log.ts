/**
 * The circuit breaker's log lines and its failed probe's error, for both hosts: the Node guard
 * (guard.ts) and the workers entry's (worker-src/index.ts) hand each change of the breaker's
 * state the engine reports to {@link BreakerLog}, and reject a failed probe's command with a
 * {@link FailedProbeError}. Node-free, compiled into the worker bundle too
 * (docs/decisions/0027): one copy, so the two hosts cannot log an outage differently.
 */
import type { Logger } from './log.js'

/**
 * The circuit breaker's probe failed (a timeout or no connection): the breaker stays open, in
 * the same outage, which is logged as a debug line only (docs/failures.md, "Circuit breaker").
 * A fresh object, not the transport's error marked: node-redis may reject several commands
 * with one error object, and only the probe's failure is this. It keeps the failure's `code`
 * and message, so it is told apart as that failure is (a timeout stays a timeout), and the
 * failure itself is its `cause`. What a request's or the timer's command logs when it fails
 * goes to debug for it (log.ts `isFailedProbe`): the outage was logged when it began.
 */
export class FailedProbeError extends Error {
  readonly failedProbe = true
  readonly code: string | undefined
  constructor(cause: unknown) {
    const failure = cause instanceof Error ? cause : new Error(String(cause))
    super(failure.message, { cause })
    const code = (failure as Error & { code?: unknown }).code
    this.code = typeof code === 'string' ? code : undefined
    this.name = 'FailedProbeError'
  }
}

/** The binding's enums read here (each build has its own glue, so no declaration is named). */
export interface BreakerEnums {
  BreakerState: { readonly Closed: number; readonly Open: number; readonly HalfOpen: number }
  CommandResult: { readonly Timeout: number }
}

/** What is asked of the engine. */
export interface BreakerEngine {
  breakerState(now: number): number
  readonly breakerTrips: number
}

/**
 * A change of the breaker's state: it closed, it opened (a new outage), or it went back to open
 * because its probe failed (the same outage).
 */
export type BreakerChange = 'closed' | 'opened' | 'probe-failed'

/**
 * Logs a change of the breaker's state once per outage: its opening as an error, its closing as
 * info. A failed probe also changes the state (half-open to open) but starts no new outage (the
 * engine's trip count does not move), so it is a debug line only: during a long outage the
 * probes fail once per `breakerMaxOpenMs`.
 */
export class BreakerLog {
  /** The engine's trip count when the breaker's last opening was logged. */
  private tripsLogged = 0
  /** Probes that failed since the breaker last opened, for the debug line. */
  private failedProbes = 0
  private readonly stateNames: Record<number, string>

  constructor(
    private readonly engine: BreakerEngine,
    private readonly enums: BreakerEnums,
    private readonly log: Logger,
  ) {
    const { BreakerState } = enums
    this.stateNames = {
      [BreakerState.Closed]: 'closed',
      [BreakerState.Open]: 'open',
      [BreakerState.HalfOpen]: 'half-open',
    }
  }

  /**
   * The engine reported a change of the breaker's state (`Reported.BreakerChanged`) as it heard
   * `command` end with `result` (a `CommandResult`) at `t`: logs it, and says which it was.
   */
  changed(result: number, command: string, t: number): BreakerChange {
    const state = this.stateNames[this.engine.breakerState(t)] ?? 'unknown'
    if (state === 'closed') {
      this.failedProbes = 0
      this.log.info('redis circuit closed: Redis answers again, cache reads and writes resume')
      return 'closed'
    }
    const how = result === this.enums.CommandResult.Timeout ? 'a timeout' : 'a failure'
    const trips = this.engine.breakerTrips
    if (trips === this.tripsLogged) {
      this.failedProbes += 1
      this.log.debug(
        `redis circuit stays open after ${how} of the probe ${command} ` +
          `(${String(this.failedProbes)} failed probe(s) in this outage)`,
      )
      return 'probe-failed'
    }
    this.tripsLogged = trips
    this.failedProbes = 0
    const opened = trips === 1 ? 'once' : `${String(trips)} times`
    this.log.error(
      `redis circuit ${state} after ${how} of ${command} ` +
        `(opened ${opened} so far): until a probe succeeds, reads are served from this ` +
        `process's memory or miss, writes are kept in this process only, and revalidations ` +
        `are applied locally and queued`,
    )
    return 'opened'
  }
}
