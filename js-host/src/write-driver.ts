/**
 * The one driver of the core's write machine (docs/internals.md, "Request machines"): it sends
 * what each step asks for, hands the outcome back, and logs the lines the machine wrote. It
 * decides nothing. Node-free (Uint8Array, no `node:` imports): the Node adapters and the
 * workers entry both run it, each with its runtime's codec (compression.ts).
 */
import { splitArgv } from './argv.js'
import { isFailedProbe } from './log.js'
import { Unpacker } from './packed.js'

/** The binding's enums this driver compares against (the module's own objects). */
export interface WriteEnums {
  readonly WriteStepKind: {
    readonly Store: number
    readonly Release: number
    readonly Done: number
    readonly Compress: number
  }
  readonly WriteOutcome: { readonly Failed: number }
  readonly Failure: {
    readonly Timeout: number
    readonly ReplyError: number
    readonly NoConnection: number
    readonly CircuitOpen: number
    readonly HeldBack: number
  }
}

/**
 * The binding's `WriteMachine`, for an engine of type `E`: each call answers the next step,
 * packed (`read` decodes it; the binding's `WriteStep` says the layout).
 */
export interface WriteMachineView<E> {
  start(engine: E, now: number): Uint8Array
  compressed(engine: E, bytes: number, now: number): Uint8Array
  sent(engine: E, now: number): Uint8Array
  failed(engine: E, failure: number, now: number): Uint8Array
  free(): void
}

/** Where the driver's lines go. */
export interface WriteLog {
  debug(line: string): void
  warn(line: string): void
  error(line: string): void
}

/** What the host supplies: the store, the tier, a clock, a timer, logging. */
export interface WriteIo {
  readonly enums: WriteEnums
  /** The clock the engine's decisions use (ms on Next's scale). */
  now(): number
  /**
   * Writes `value` under `key` for `ttlMs` (until `until` on the engine's clock): `SET key value
   * PX ttlMs` when `argv` is empty, else the script `argv` with `value` appended, within
   * `budgetMs`. Rejects with the transport's error (its `code` says which failure it was).
   */
  store(
    key: string,
    value: Uint8Array,
    ttlMs: number,
    argv: string[],
    until: number,
    budgetMs: number,
  ): Promise<void>
  /** Runs a script planned by the engine (a lease release). Rejects like `store`. */
  script(argv: string[], budgetMs: number): Promise<void>
  /** Keeps this process's copy in the in-process tier (a no-op without one). */
  remember(key: string, value: Uint8Array, until: number, outageOnly: boolean): void
  /** The tier's copy never reached Redis: it serves only until Redis answers again. */
  markLocal(key: string): void
  /**
   * Resolves when `landed` does or after `ms`, whichever comes first, without keeping the
   * process alive; the timer goes when `landed` settles (it would otherwise hold the wait, and
   * what it closes over, for the whole budget). Absent: `writeEntry` waits for the write to
   * land, whatever it takes (a runtime that may end work left behind a response).
   */
  wait?: ((ms: number, landed: Promise<void>) => Promise<void>) | undefined
  /**
   * The envelope as this process's readers get it (plain, even when stored compressed), and
   * the promise of its write landing (never rejects).
   */
  built?: ((value: Uint8Array, landed: Promise<void>) => void) | undefined
  /**
   * The runtime's codec (compression.ts, `Codecs.compress`) for the Compress step. Absent:
   * the machine hears the codec failed, and the value is stored plain.
   */
  compress?: ((codec: number, level: number, data: Uint8Array) => Promise<Uint8Array>) | undefined
  /**
   * Whether this process's writes of one key reach Redis in the order they were planned (a
   * write's Store waits for every earlier one of its key to end: `takeTurn`). Unset in a host
   * whose requests must not await each other's I/O (workers).
   */
  ordersWrites?: boolean | undefined
  /** Text of an error for a log line. */
  describe(err: unknown): string
  readonly log: WriteLog
}

/** Per engine (one per runtime) and entry key, the end of the last write planned. */
const writing = new WeakMap<object, Map<string, Promise<void>>>()

/**
 * A turn for a write of `key` planned now: `ready` settles when every write of `key` planned
 * before it has ended; `done` ends this one. Without it a compressed write (its Compress step
 * runs before its Store) lands after a smaller write of the same key planned after it, and
 * Redis keeps the older value.
 */
function takeTurn(engine: object, key: string): { ready: Promise<void>; done: () => void } {
  let keys = writing.get(engine)
  if (keys === undefined) {
    keys = new Map()
    writing.set(engine, keys)
  }
  const ready = keys.get(key) ?? Promise.resolve()
  let end: () => void = () => undefined
  const mine = new Promise<void>((resolve) => {
    end = resolve
  })
  const map = keys
  map.set(key, mine)
  return {
    ready,
    done: () => {
      end()
      if (map.get(key) === mine) map.delete(key)
    },
  }
}

/** Upper bound on steps per write, whatever happens (a write takes at most three). */
const MAX_STEPS = 16

/** The machine's code for a transport error, by the error's `code`. */
export function failureOf(err: unknown, enums: WriteEnums): number {
  const code =
    typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  switch (code) {
    case 'ERR_REDIS_TIMEOUT':
      return enums.Failure.Timeout
    case 'ERR_REDIS_REPLY':
      return enums.Failure.ReplyError
    case 'ERR_REDIS_CIRCUIT_OPEN':
      return enums.Failure.CircuitOpen
    // Not sent by the transport's own bound, Redis answering (a lease is released apart).
    case 'ERR_REDIS_HELD_BACK':
      return enums.Failure.HeldBack
    default:
      return enums.Failure.NoConnection
  }
}

function concat(header: Uint8Array, payload: Uint8Array | readonly Uint8Array[]): Uint8Array {
  const parts = payload instanceof Uint8Array ? [payload] : payload
  let length = header.byteLength
  for (const p of parts) length += p.byteLength
  const out = new Uint8Array(length)
  out.set(header, 0)
  let offset = header.byteLength
  for (const p of parts) {
    out.set(p, offset)
    offset += p.byteLength
  }
  return out
}

/** A step's fields, as the binding packs them. */
interface Step {
  kind: number
  key: string
  header: Uint8Array
  codec: number
  level: number
  compressed: boolean
  ttlMs: number
  argv: string[]
  budgetMs: number
  waitMs: number
  keepUntil: number
  outageOnly: boolean
  outcome: number
  markLocal: boolean
  droppedTags: string
  log: string
  error: string
}

/**
 * Decodes a packed step (the binding's `WriteStep`, in its field order); a buffer of another
 * layout throws `PackedError`. Fields that do not apply to the step's kind are left as the
 * binding wrote them: 0, empty, false.
 */
function read(packed: Uint8Array): Step {
  const u = new Unpacker(packed)
  const step: Step = {
    kind: u.num(),
    key: u.text(),
    header: u.bytes(),
    codec: u.num(),
    level: u.num(),
    compressed: u.flag(),
    ttlMs: u.num(),
    argv: splitArgv(u.text()),
    budgetMs: u.num(),
    waitMs: u.num(),
    keepUntil: u.num(),
    outageOnly: u.flag(),
    outcome: u.num(),
    markLocal: u.flag(),
    droppedTags: u.text(),
    log: u.text(),
    error: u.text(),
  }
  u.end()
  return step
}

/**
 * Runs `machine` (created by the caller for `engine`; this takes ownership and frees it) to its
 * end, with `payload` the value's bytes after the header (one buffer, or the parts in order).
 * Resolves once the write has landed, or after the step's `waitMs` when `io.wait` is given (the
 * write then goes on); with `io.wait`, a write refused before anything is stored (whose only
 * step is a lease release) resolves at once, the release going on behind it. Never rejects:
 * every outcome is logged from the machine's lines.
 */
export async function writeEntry<E extends object>(
  engine: E,
  machine: WriteMachineView<E>,
  payload: Uint8Array | readonly Uint8Array[],
  io: WriteIo,
): Promise<void> {
  let first: Step
  try {
    first = read(machine.start(engine, io.now()))
  } catch (err) {
    machine.free()
    io.log.error(`write not planned, entry not stored: ${io.describe(err)}`)
    return
  }
  const kinds = io.enums.WriteStepKind
  const stores = first.kind === kinds.Store || first.kind === kinds.Compress
  const turn = stores && io.ordersWrites === true ? takeTurn(engine, first.key) : undefined
  const run = drive(engine, machine, first, payload, io, turn?.ready)
  // `drive` never rejects.
  if (turn !== undefined) void run.then(turn.done)
  if (io.wait === undefined) {
    await run
  } else if (first.kind === kinds.Store || first.kind === kinds.Compress) {
    await io.wait(first.waitMs, run)
  }
  // Else nothing is stored: what is left, a lease release, is no part of the caller's wait.
}

/** Steps the machine from `step` to its end. Never rejects. */
async function drive<E>(
  engine: E,
  machine: WriteMachineView<E>,
  step: Step,
  payload: Uint8Array | readonly Uint8Array[],
  io: WriteIo,
  ready?: Promise<void>,
): Promise<void> {
  const { enums, log } = io
  const kinds = enums.WriteStepKind
  let lastError: unknown
  let landed: (() => void) | undefined
  // The plain value once built (this process's copy), and the codec's output of it.
  let plain: Uint8Array | undefined
  let deflated: Uint8Array | undefined
  /** This process's own write is the newest value it knows: readers here need no round trip
   * (unless the machine keeps it for outages only). */
  const keep = (s: Step): Uint8Array => {
    const value = concat(s.header, payload)
    io.remember(s.key, value, s.keepUntil, s.outageOnly)
    if (io.built !== undefined) {
      io.built(
        value,
        new Promise<void>((resolve) => {
          landed = resolve
        }),
      )
    }
    return value
  }
  try {
    for (let i = 0; i < MAX_STEPS; i++) {
      if (step.kind === kinds.Done) {
        finish(step, lastError, io)
        return
      }
      if (step.kind === kinds.Compress) {
        plain = keep(step)
        let next: Uint8Array
        try {
          if (io.compress === undefined) throw new Error('no codec in this runtime')
          deflated = await io.compress(step.codec, step.level, plain.subarray(step.header.length))
          next = machine.compressed(engine, deflated.byteLength, io.now())
        } catch (err) {
          log.debug(`compression failed, the value is stored plain: ${io.describe(err)}`)
          next = machine.failed(engine, enums.Failure.NoConnection, io.now())
        }
        step = read(next)
        continue
      }
      let sent: Promise<void>
      if (step.kind === kinds.Store) {
        let value: Uint8Array
        if (step.compressed) {
          if (deflated === undefined) throw new Error('stored compressed before compressing')
          value = concat(step.header, deflated)
        } else {
          value = plain ?? keep(step)
        }
        // After every earlier write of this key (`takeTurn`); the caller's wait runs on.
        if (ready !== undefined) await ready
        sent = io.store(step.key, value, step.ttlMs, step.argv, step.keepUntil, step.budgetMs)
      } else {
        sent = io.script(step.argv, step.budgetMs)
      }
      let next: Uint8Array
      try {
        await sent
        next = machine.sent(engine, io.now())
      } catch (err) {
        lastError = err
        next = machine.failed(engine, failureOf(err, enums), io.now())
      }
      step = read(next)
    }
    log.error('write abandoned: the engine asked for too many steps')
  } catch (err) {
    log.error(`write failed, entry not stored: ${io.describe(err)}`)
  } finally {
    landed?.()
    machine.free()
  }
}

/** Applies and logs the end of a write. */
function finish(step: Step, lastError: unknown, io: WriteIo): void {
  const { log } = io
  if (step.markLocal && step.key !== '') io.markLocal(step.key)
  if (step.droppedTags !== '') log.warn(step.droppedTags)
  if (step.log !== '') log.debug(step.log)
  if (step.error !== '') {
    const failed = step.outcome === io.enums.WriteOutcome.Failed && lastError !== undefined
    const line = failed ? `${step.error}: ${io.describe(lastError)}` : step.error
    // The breaker's probe: it stays open in an outage already logged (docs/failures.md).
    if (failed && isFailedProbe(lastError)) log.debug(`${line} (the breaker's probe)`)
    else log.error(line)
  }
}
