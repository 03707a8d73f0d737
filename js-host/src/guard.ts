import { BreakerLog, FailedProbeError } from './breaker-log'
import { now } from './clock'
import type { Logger } from './log'
import { describe } from './log'
import { PACKAGE_VERSION } from './package-version'
import { telemetry, type CommandResult, type Telemetry } from './telemetry'
import type { OpKind, SendOptions, Transport } from './transport'
import { CircuitOpenError, RedisReplyError, RedisTimeoutError, withDeadline } from './transport'
import type * as Wasm from '../wasm/node/fleetcache_wasm'
import { wasm, type Engine } from './wasm'

/** A command's tracing span, when the application registered a TracerProvider. */
type CommandSpan = ReturnType<Telemetry['startSpan']>

/** Commands that only read; everything else gets the write budget. */
const READS = new Set(['GET', 'MGET', 'EXISTS', 'PTTL', 'TTL', 'STRLEN', 'GETRANGE', 'PING'])

const { CommandKind, CommandResult: Result, Reported } = wasm

/**
 * Set on `globalThis` when a failure of the application's OpenTelemetry SDK was logged: once per
 * process and package version, since every command records (a broken exporter would add a line
 * to each). On `globalThis`, not in this module: two copies of one version (Next's server and a
 * route's trace each loading the package) share one flag, as they share the version's
 * telemetry (telemetry.ts); another version has its own SDK binding and logs its own line.
 */
const TELEMETRY_FAILURE_LOGGED = Symbol.for(
  `fleetcache.telemetry-failure-logged@${PACKAGE_VERSION}`,
)

/** Telemetry's name of how the command ended. */
const RESULT_NAMES: Record<number, CommandResult> = {
  [Result.Reply]: 'ok',
  [Result.NoAnswer]: 'connection-error',
  [Result.Timeout]: 'timeout',
  [Result.ErrorReply]: 'reply-error',
}

/**
 * Bytes of an entry moved by a command, for the size histogram: GET replies, the entry a
 * script read (`entryReply`: the first element of a lease poll's or a page read's reply),
 * SET values, and the value a script writes (page and route writes go through entry_write.lua
 * on a single Redis, lease writes through lease_write.lua): store.ts `sendWithValue` appends
 * it as the one Buffer argument, last; the tag scripts' arguments are strings.
 */
function entryBytes(
  argv: readonly (string | Buffer)[],
  reply: unknown,
  entryReply: boolean,
): number | undefined {
  const cmd = argv[0]
  if (cmd === 'GET') return Buffer.isBuffer(reply) ? reply.byteLength : undefined
  if (entryReply) {
    const read: unknown = Array.isArray(reply) ? reply[0] : undefined
    return Buffer.isBuffer(read) ? read.byteLength : undefined
  }
  const v = cmd === 'SET' ? argv[2] : cmd === 'EVALSHA' || cmd === 'EVAL' ? argv.at(-1) : undefined
  return Buffer.isBuffer(v) ? v.byteLength : undefined
}

/**
 * Puts the engine's failure decisions in front of a transport: before each command the engine
 * says whether to send it (circuit breaker) and how long it may take (budget); afterwards it
 * hears how it went. The JS side only runs the timer and passes the verdicts along.
 */
export class GuardedTransport implements Transport {
  /** Called after a successful command while revalidations wait in the outbox. */
  onBacklog: (() => void) | undefined
  /** Called when the breaker leaves the closed state. */
  onTrip: (() => void) | undefined
  /** OpenTelemetry, when the application has it; undefined costs one check per command. */
  private readonly telemetry: Telemetry | undefined = telemetry()

  /**
   * The budgets by `CommandKind` and the connect budget: fixed at the engine's construction,
   * read once here rather than by a call into the module per command.
   */
  private readonly budgets: readonly number[]
  private readonly connectBudgetMs: number
  /** The breaker's lines, shared with the workers entry. */
  private readonly breaker: BreakerLog
  /**
   * Set by `settle` when the command just reported was a probe that failed, read (and cleared)
   * by its `send` in the same turn: a field, not a value returned through `settle` and
   * `ended`, which every command's reply passes.
   */
  private probeFailed = false

  constructor(
    private readonly engine: Engine,
    private readonly inner: Transport,
    private readonly log: Logger,
  ) {
    const budgets: number[] = []
    for (const kind of [CommandKind.Read, CommandKind.Write, CommandKind.Lease])
      budgets[kind] = engine.budgetMs(kind)
    this.budgets = budgets
    this.connectBudgetMs = engine.connectBudgetMs
    this.breaker = new BreakerLog(engine, wasm, log)
  }

  /**
   * Not an `async` function: the reply is handed on by one `then`, where an async function
   * and its `await` made two promises per command (every Redis command goes through here).
   * A throw before the command is sent rejects, as an async function's would.
   */
  send(argv: readonly (string | Buffer)[], options?: SendOptions): Promise<unknown> {
    let permit: number
    let t0: number
    let sent: Promise<unknown>
    const tel = this.telemetry
    let span: CommandSpan | undefined
    try {
      const kind: OpKind =
        options?.kind ?? (READS.has(String(argv[0]).toUpperCase()) ? 'read' : 'write')
      const code =
        kind === 'read'
          ? CommandKind.Read
          : kind === 'lease'
            ? CommandKind.Lease
            : CommandKind.Write
      const held = this.inner.holdsBack?.(argv)
      if (held !== undefined) return Promise.reject(held)
      t0 = now()
      permit = this.engine.admit(code, t0)
      // Refused commands are counted by the breaker itself (`rejected`).
      if (permit === 0 && options?.force !== true) return Promise.reject(new CircuitOpenError())
      const budget = this.budgets[code] ?? this.engine.budgetMs(code)
      // A transport that enforces the budget itself abandons the command at its deadline (it
      // is not cancelled: node-redis keeps it queued); this outer deadline bounds one that does
      // not, plus one wait for a connection.
      const outer = budget + this.connectBudgetMs
      span = tel === undefined ? undefined : this.startSpan(tel, argv, t0)
      try {
        const inner = this.inner.send(argv, { kind, timeoutMs: budget, startedAt: t0 })
        sent =
          this.inner.enforcesDeadlines === true
            ? inner
            : withDeadline(inner, outer, `redis ${String(argv[0])}`)
      } catch (err) {
        this.ended(permit, Result.NoAnswer, argv, t0, span, undefined, false)
        throw this.failure(err)
      }
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
    return sent.then(
      (reply) => {
        this.ended(permit, Result.Reply, argv, t0, span, reply, options?.entryReply === true)
        return reply
      },
      (err: unknown) => {
        const result =
          err instanceof RedisReplyError
            ? Result.ErrorReply
            : err instanceof RedisTimeoutError
              ? Result.Timeout
              : Result.NoAnswer
        this.ended(permit, result, argv, t0, span, undefined, false)
        throw this.failure(err)
      },
    )
  }

  /**
   * What a failed command rejects with: its error, or for the breaker's probe (`probeFailed`,
   * set as the engine heard it) a {@link FailedProbeError}, so its caller's line goes to
   * debug: the outage was logged when it began.
   */
  private failure(err: unknown): unknown {
    if (!this.probeFailed) return err
    this.probeFailed = false
    return new FailedProbeError(err)
  }

  /** A command's end: the engine hears it (`settle`), then telemetry when there is some. */
  private ended(
    permit: number,
    result: Wasm.CommandResult,
    argv: readonly (string | Buffer)[],
    t0: number,
    span: CommandSpan | undefined,
    reply: unknown,
    entryReply: boolean,
  ): void {
    const t = this.settle(permit, result, argv)
    const tel = this.telemetry
    if (tel !== undefined) {
      // The reply is the caller's whatever the SDK does with its record.
      try {
        tel.recordCommand(
          String(argv[0]),
          RESULT_NAMES[result] ?? 'connection-error',
          (t - t0) / 1000,
          result === Result.Reply ? entryBytes(argv, reply, entryReply) : undefined,
          span,
        )
      } catch (err) {
        this.telemetryFailed(err)
      }
    }
  }

  /**
   * The command's span, or none when the SDK throws: the engine admitted the command already,
   * so it is sent, and the engine hears how it went (`report`), as for any other.
   */
  private startSpan(tel: Telemetry, argv: readonly (string | Buffer)[], t0: number): CommandSpan {
    try {
      return tel.startSpan(String(argv[0]), t0)
    } catch (err) {
      this.telemetryFailed(err)
      return undefined
    }
  }

  /** An OpenTelemetry SDK call threw: said once per process and package version. */
  private telemetryFailed(err: unknown): void {
    const g = globalThis as unknown as Record<symbol, boolean | undefined>
    if (g[TELEMETRY_FAILURE_LOGGED] === true) return
    g[TELEMETRY_FAILURE_LOGGED] = true
    this.log.error(
      `OpenTelemetry failed recording a Redis command (${describe(err)}); the command's result is kept, and further failures are not logged`,
    )
  }

  /** Reports the outcome to the engine; returns the time it did so. */
  private settle(
    permit: number,
    result: Wasm.CommandResult,
    argv: readonly (string | Buffer)[],
  ): number {
    const t = now()
    this.probeFailed = false
    const reported = this.engine.report(permit, result, t)
    if ((reported & Reported.BreakerChanged) !== 0) {
      const change = this.breaker.changed(result, String(argv[0]), t)
      if (change !== 'closed') this.onTrip?.()
      this.probeFailed = change === 'probe-failed'
    }
    // Any answer, error replies included, means Redis is reachable: send what waits.
    const answered = result === Result.Reply || result === Result.ErrorReply
    if (answered && (reported & Reported.Backlog) !== 0 && this.onBacklog !== undefined) {
      try {
        this.onBacklog()
      } catch (err) {
        this.log.error(`outbox replay could not start: ${describe(err)}`)
      }
    }
    return t
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}
