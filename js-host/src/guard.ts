import { now } from './clock'
import type { Logger } from './log'
import { describe } from './log'
import type { OpKind, SendOptions, Transport } from './transport'
import { CircuitOpenError, RedisReplyError, RedisTimeoutError, withDeadline } from './transport'
import type { Engine } from './wasm'

/** Commands that only read; everything else gets the write budget. */
const READS = new Set(['GET', 'MGET', 'EXISTS', 'PTTL', 'TTL', 'STRLEN', 'GETRANGE', 'PING'])

const STATE_NAMES = ['closed', 'open', 'half-open'] as const

/**
 * Puts the engine's failure decisions in front of a transport: before each command the engine
 * says whether to send it (circuit breaker) and how long it may take (budget); afterwards it
 * hears how it went. The JS side only runs the timer and passes the verdicts along.
 */
export class GuardedTransport implements Transport {
  /** Called after a successful command while revalidations wait in the outbox. */
  onBacklog: (() => void) | undefined

  constructor(
    private readonly engine: Engine,
    private readonly inner: Transport,
    private readonly log: Logger,
  ) {}

  async send(argv: readonly (string | Buffer)[], options?: SendOptions): Promise<unknown> {
    const kind: OpKind =
      options?.kind ?? (READS.has(String(argv[0]).toUpperCase()) ? 'read' : 'write')
    const code = kind === 'read' ? 0 : 1
    const permit = this.engine.admit(code, now())
    if (permit === 0) throw new CircuitOpenError()
    const budget = this.engine.budgetMs(code)
    // The transport enforces the budget itself (node-redis drops the command); this outer
    // deadline also bounds a transport that ignores it, plus one wait for a connection.
    const outer = budget + this.engine.connectBudgetMs
    let result = 1
    try {
      const reply = await withDeadline(
        this.inner.send(argv, { kind, timeoutMs: budget }),
        outer,
        `redis ${String(argv[0])}`,
      )
      result = 0
      return reply
    } catch (err) {
      if (err instanceof RedisReplyError) result = 0
      else if (err instanceof RedisTimeoutError) result = 2
      throw err
    } finally {
      this.settle(permit, result, argv)
    }
  }

  private settle(permit: number, result: number, argv: readonly (string | Buffer)[]): void {
    const t = now()
    if (this.engine.report(permit, result, t)) {
      const state = STATE_NAMES[this.engine.breakerState(t)] ?? 'unknown'
      if (state === 'closed') {
        this.log.info('redis circuit closed: Redis answers again, cache reads and writes resume')
      } else {
        this.log.error(
          `redis circuit ${state} after ${result === 2 ? 'a timeout' : 'a failure'} of ${String(argv[0])} ` +
            `(opened ${String(this.engine.breakerTrips)} times so far): reads are misses and writes are skipped ` +
            `until a probe succeeds; revalidations are applied locally and queued`,
        )
      }
    }
    if (result === 0 && this.engine.outboxLength > 0 && this.onBacklog !== undefined) {
      try {
        this.onBacklog()
      } catch (err) {
        this.log.error(`outbox replay could not start: ${describe(err)}`)
      }
    }
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}
