/**
 * The one host driver of the core's read machine (docs/internals.md, "Request machines"): it
 * steps a `ReadMachine` one input at a time, sends what the machine asks for through `io`, runs
 * its timers and hands the replies back. Every decision (source order, judging, the lease
 * flight, what Next is told, what the tier keeps) is the machine's; this file only moves bytes.
 *
 * Node-free on purpose (Uint8Array, no `node:` imports, no Buffer): the workers entry compiles
 * this same file (js-host/tsconfig.worker.json), so both Next adapters and the workers entry
 * make the same decisions. The binding's enums come in `io.binding`, from whichever build of
 * the glue (Node or web) the host loaded: the step codes have no TypeScript copy.
 */
import { storedCompressed } from './compression.js'
import { splitArgv } from './argv.js'
import { Unpacker } from './packed.js'
import { describe, isFailedProbe, type Logger } from './log.js'

/** The binding's enums the driver reads steps with (numeric, as wasm-bindgen exports them). */
export interface Binding {
  readonly ReadStepKind: {
    readonly Refresh: number
    readonly OwnWrite: number
    readonly PeekTier: number
    readonly PeekFallback: number
    readonly Get: number
    readonly NeedMore: number
    readonly Acquire: number
    readonly Wait: number
    readonly Poll: number
    readonly Answer: number
    readonly PageRead: number
  }
  readonly TierAction: { readonly None: number; readonly Keep: number; readonly Drop: number }
  readonly Failure: {
    readonly Timeout: number
    readonly ReplyError: number
    readonly NoConnection: number
    readonly CircuitOpen: number
    readonly HeldBack: number
  }
  readonly Source: {
    readonly None: number
    readonly OwnWrite: number
    readonly Tier: number
    readonly Redis: number
    readonly Poll: number
    readonly Kept: number
  }
  readonly Served: { readonly Miss: number }
  readonly RenewStepKind: { readonly Wait: number; readonly Send: number; readonly Done: number }
  /** Slots of a read machine's fields area (the binding's `ReadField`). */
  readonly ReadField: {
    readonly BudgetMs: number
    readonly Need: number
    readonly DelayMs: number
    readonly Tier: number
    readonly KeepUntil: number
    readonly OutageOnly: number
    readonly Source: number
    readonly Served: number
    readonly Regenerates: number
    readonly HoldsLease: number
    readonly PayloadOffset: number
    readonly Timestamp: number
    readonly Revalidate: number
    readonly Expire: number
    readonly Stale: number
    readonly LastModified: number
    readonly HasCacheControl: number
    readonly CacheRevalidate: number
    readonly CacheExpire: number
    readonly ValueKind: number
    readonly ValueFlags: number
    readonly Segments: number
    readonly HasLog: number
    readonly HasError: number
    readonly TookTier: number
    readonly TagsAt: number
    readonly TagsLen: number
    readonly PartsAt: number
    readonly PartsLen: number
    readonly PageGen: number
    readonly Order: number
    readonly AsksTier: number
    readonly HeaderKept: number
    readonly OwnStart: number
    readonly OwnFreshAt: number
    readonly OwnFreshDue: number
    readonly WrittenBack: number
    readonly WrittenBackMade: number
    readonly HoldsBack: number
  }
  /** The module's linear memory, where the machines' fields areas live. */
  wasmMemory(): { readonly buffer: ArrayBufferLike }
}

/**
 * The binding's `ReadMachine`: every input is a method answering the next step's kind; the
 * step's numbers are in the machine's fields area (`fields`, slots `ReadField`), its strings
 * come from the methods below, called only when the step needs them.
 */
export interface ReadMachine<E> {
  /** The entry's key: the key `Get` reads and the tier's key. */
  readonly entryKey: string
  /** Byte address of the fields area in the module's memory. */
  fields(): number
  start(engine: E, now: number): number
  /** `start`, with the tier's bytes offered: taken when the tier is asked first (`TookTier`). */
  startWithTier(engine: E, prefix: Uint8Array | undefined, totalLen: number, now: number): number
  /**
   * `startWithTier` with none offered, for a host with `getNow`: the store's bytes given as
   * the `Get`'s reply in the same call (`TookTier` 2) while the engine's index holds the entry.
   */
  startWithHeld(engine: E, prefix: Uint8Array | undefined, totalLen: number, now: number): number
  refreshed(engine: E, now: number): number
  ownWrite(engine: E, bytes: Uint8Array | undefined, now: number): number
  tier(engine: E, prefix: Uint8Array | undefined, totalLen: number, now: number): number
  fallback(engine: E, prefix: Uint8Array | undefined, totalLen: number, now: number): number
  /**
   * `joined`: the `GET` was another read's (`share`); `order` then that `GET`'s step's `Order`
   * (the read is ordered as the command it shares).
   */
  reply(
    engine: E,
    prefix: Uint8Array | undefined,
    totalLen: number,
    joined: boolean,
    order: number,
    now: number,
  ): number
  polled(
    engine: E,
    prefix: Uint8Array | undefined,
    totalLen: number,
    leased: boolean,
    joined: boolean,
    order: number,
    now: number,
  ): number
  leaseReply(engine: E, code: number, now: number): number
  failed(engine: E, failure: number, now: number): number
  timer(engine: E, now: number): number
  undecodable(engine: E, now: number): number
  /** `Acquire`, `Poll`: the script argv, NUL-joined (`splitArgv`). */
  argv(): string
  log(): string
  error(): string
  renewal(engine: E): RenewMachine<E> | undefined
  free(): void
}

/**
 * A read's answer: the numbers copied out of the machine's fields area, the strings read from
 * the machine on demand. The caller frees it (which frees the machine) once read.
 */
export interface Answer {
  readonly source: number
  readonly served: number
  readonly regenerates: boolean
  readonly holdsLease: boolean
  readonly payloadOffset: number
  /** `'use cache'` presentation. */
  readonly timestamp: number
  readonly revalidate: number
  readonly expire: number
  readonly stale: number
  /** Singular-handler presentation; `cacheRevalidate` NaN means `false`, `cacheExpire` NaN absent. */
  readonly lastModified: number
  readonly hasCacheControl: boolean
  readonly cacheRevalidate: number
  readonly cacheExpire: number
  readonly valueKind: number
  readonly valueFlags: number
  readonly segments: number
  /** The tags' length in bytes, joined (what `tags()` reads). */
  readonly tagsBytes: number
  /**
   * Singular handler: what the answer leaves for the request's write of the key (core
   * `ReadAnswer::own`), NaN for each it does not give: a read after which Next regenerates
   * (`ownStart`), a fresh answer Next may call due (`ownFreshAt`, `ownFreshDue`), and the
   * creation time a write of the served value back must carry (`writtenBack`) with when that
   * value was made (`writtenBackMade`, which its tags keep judging it by).
   */
  readonly ownStart: number
  readonly ownFreshAt: number
  readonly ownFreshDue: number
  readonly writtenBack: number
  readonly writtenBackMade: number
  tags(): string[]
  parts(): Uint32Array
  /** Debug lines (`\n`-separated), `''` when none: no call into wasm then. */
  log(): string
  /** Error lines, `''` when none: no call into wasm then. */
  error(): string
  free(): void
}

/**
 * The read machine's line for a `GET` or a poll that failed for want of an answer
 * (read_machine.rs `failed_miss` and the poll's failure; a probe fails only so): the last of an
 * answer's error lines, since the read ends there.
 */
const READ_FAILED =
  / failed, treated as a miss: (?:redis read|lease poll) of .+ failed \((?:timeout|no connection)\)$/

/**
 * The answer's own lines, for every host (the workers entry drops debug lines): what it found
 * (debug) and what was wrong (error). When a `GET` or a poll failed (`readError`), the
 * machine's line about it gets the error's own text. A read whose command was the breaker's
 * probe, and failed, says so at debug: the breaker stays open in an outage already logged, and
 * in a long one each probe would add an error line. Only that line: the answer's others are
 * about what the read found before (a copy this process holds of another kind, say), which
 * the outage has nothing to do with, and stay errors.
 */
export function logAnswer(log: Logger, answer: Answer, readError?: unknown): void {
  const detail = readError === undefined ? '' : ` [${describe(readError)}]`
  const error = answer.error()
  const line = log.debugEnabled || error !== '' ? answer.log() : ''
  if (line !== '') log.debug(error === '' ? line + detail : line)
  if (error === '') return
  if (isFailedProbe(readError)) {
    const cut = error.lastIndexOf('\n')
    const failed = error.slice(cut + 1)
    if (READ_FAILED.test(failed)) {
      if (cut >= 0) log.error(error.slice(0, cut))
      if (log.debugEnabled) log.debug(`${failed}${detail} (the breaker's probe)`)
      return
    }
  }
  log.error(error + detail)
}

/** One step of a renewal machine, as `renewStep` decodes it (the binding's `RenewStep`). */
export interface RenewStep {
  readonly kind: number
  readonly delayMs: number
  /** `Send`: the script argv. */
  readonly argv: string[]
  readonly budgetMs: number
  /** `Done`: a debug line, `''` when none. */
  readonly log: string
}

/**
 * Decodes a renewal step the binding packed (its `RenewStep`, in its field order); a buffer of
 * another layout throws `PackedError`.
 */
export function renewStep(packed: Uint8Array): RenewStep {
  const u = new Unpacker(packed)
  const step = {
    kind: u.num(),
    delayMs: u.num(),
    argv: splitArgv(u.text()),
    budgetMs: u.num(),
    log: u.text(),
  }
  u.end()
  return step
}

/** The renewal machine of a lease this process holds (the binding's `RenewMachine`). */
export interface RenewMachine<E> {
  /** Each call answers the next step, packed (`renewStep`). */
  start(engine: E, now: number): Uint8Array
  timer(engine: E, now: number): Uint8Array
  /** `reply`: the renewal script's integer reply (1: renewed). */
  sent(engine: E, reply: number, now: number): Uint8Array
  failed(engine: E, failure: number, now: number): Uint8Array
  free(): void
}

/** A Redis reply as the transports give it (bulk strings as bytes, nil as null). */
export type Reply = unknown

/** What the host supplies: clock, timers, the tier's bytes and the Redis commands. */
export interface ReadIo {
  readonly binding: Binding
  /** The clock every input is stamped with (Next's scale: `performance.timeOrigin + now()`). */
  now(): number
  /** Resolves after `ms`; must not keep a process alive on its own. */
  sleep(ms: number): Promise<void>
  /** Starts (or joins) a tag refresh; never rejects. */
  refresh(): Promise<void>
  /** The in-process tier's bytes for `key`, whatever the engine's index says of them. */
  tierBytes(key: string): Uint8Array | null
  /**
   * Keeps `bytes` in the tier until `until` (for outages only when `outageOnly`; a page copy
   * bound to page generation `pageGen` when it is not 0), brought by the command sent under
   * `order` (the step's `Order`: the tier's index orders them against this process's writes).
   */
  remember(
    key: string,
    bytes: Uint8Array,
    until: number,
    outageOnly: boolean,
    pageGen: number,
    order: number,
  ): void
  /** Drops `key` from the tier. */
  forget(key: string): void
  /** The stored entry, or null; rejects with an error carrying a `code` (see `failureOf`). */
  get(key: string, budgetMs: number): Promise<Uint8Array | null>
  /**
   * The stored entry as it is now, for a store that holds it in this process (the embedded
   * store): a `Get` step then takes it in the same turn, with no `get`, no sharing and no await.
   * What it returns is what `get` would have resolved to, read at the same moment.
   */
  getNow?: ((key: string) => Uint8Array | null) | undefined
  /**
   * With `getNow`: the store's bytes for `key` as held now, without marking them used (the
   * machine does, through the engine's index, when it takes them: `startWithHeld`).
   */
  held?: ((key: string) => Uint8Array | null) | undefined
  /**
   * Whether reads of one key may share a `GET` or a poll in flight (only one issued after the
   * read began or in the same turn, under the same count of announcements: `share`). Unset in
   * a host whose requests must not await each other's I/O.
   */
  shares?: boolean | undefined
  /**
   * Tag announcements applied so far (following by push): a `GET` or poll in flight is shared
   * only by reads that ask under the count it went out under (`share`). Absent: 0.
   */
  announcementsHeard?: (() => number) | undefined
  /**
   * Runs a script argv of the lease protocol (`kind` `'lease'`) or a page read (`'read'`:
   * page_read.lua, in place of a `GET`); rejects like `get`. `readsEntry`: the reply is
   * `[entry or nil, ...]` (a lease poll, a page read), an entry read from Redis as a `GET`'s
   * reply is, for the host's entry-size histogram.
   */
  script(
    argv: string[],
    budgetMs: number,
    kind?: 'read' | 'lease',
    readsEntry?: boolean,
  ): Promise<Reply>
  /** A debug line of the driver's own or of the renewal machine (the answer's come with it). */
  debug(line: string): void
  /**
   * The plain envelope of a stored value whose header says compressed (compression.ts,
   * `inflateStored`); rejects with an error carrying a `code` when it cannot be inflated.
   * Absent: such values reach the machine as they are, which judges them unreadable.
   */
  inflate?: ((stored: Uint8Array) => Promise<Uint8Array>) | undefined
}

/** How one read ended: the machine's `Answer` step, and the bytes its `source` names. */
export interface ReadResult<T> {
  /** The answer (the caller reads it, then frees it); undefined when none came. */
  answer: Answer | undefined
  /** The bytes the answer serves from (`payloadOffset` on), null for a miss. */
  bytes: Uint8Array | null
  /** `decode`'s value for those bytes, when the answer serves one. */
  value: T | undefined
  /**
   * Why the entry could not be read, when a `GET` or a poll failed (the open breaker's refusal
   * excepted: it was logged once when it opened). The caller logs it in its own words: a miss
   * is an error line, a copy this process held served instead a debug line.
   */
  readError: unknown
}

/**
 * Converts a served answer into the caller's shape; undefined when the bytes cannot be
 * decoded (the machine then hears `Undecodable`, and continues as for a corrupt entry).
 */
export type Decode<T> = (answer: Answer, bytes: Uint8Array) => T | undefined

/** What one request adds to the host's io. */
export interface ReadHooks<T> {
  decode?: Decode<T> | undefined
  /** The entry's `GET` has been sent (a hit's stream can be built while the reply travels). */
  sent?: (() => void) | undefined
  /** This process's write in flight of the request's cache key, or null when there is none. */
  ownWrite?: (() => Promise<Uint8Array | null> | null) | undefined
  /**
   * Called instead of `machine.free()` once the answer is freed (or no answer came): a host
   * that pools machines takes it back for its next read. A machine that threw is freed.
   */
  release?: (() => void) | undefined
  /**
   * The machine's `entryKey` as the host memoised it for this cache key (a pure function of
   * the interface and the key): saves reading the string back out of wasm on every read.
   */
  entryKey?: string | undefined
  /**
   * The clock the caller read when it made the machine new, in the same turn: the start is
   * stamped with it too, so a hit reads the clock once (a read costs about 0.1 µs, as much as
   * Next's own handler spends on a hit's bookkeeping).
   */
  startedAt?: number | undefined
  /**
   * The step kind the machine's reuse started the read with (`reuseIncrementalTexts` given a
   * `tierLen`), and `offered` the tier's copy it offered (`tierCopyKept`); `started` undefined:
   * the read is started here, as always.
   */
  started?: number | undefined
  offered?: Uint8Array | null | undefined
}

/**
 * Bytes of an entry given to the machine at first: enough for nearly every header, so the
 * payload never crosses into wasm; `NeedMore` asks for exactly what is missing.
 */
const HEADER_WINDOW = 4096

/**
 * Tier (and embedded-store) copies whose header the engine's index keeps, as a step said
 * (`HeaderKept`): offered again, they go without their prefix, neither copied into wasm nor
 * decoded there. Held weakly: a copy replaced or dropped leaves with its bytes. Only a hint:
 * an index that no longer keeps the header asks for the prefix (`NeedMore`).
 */
const headerKept = new WeakSet<Uint8Array>()

/** The prefix to offer with `bytes`: none when the index keeps their header. */
function offer(bytes: Uint8Array | null): Uint8Array | undefined {
  return bytes === null || headerKept.has(bytes) ? undefined : head(bytes, HEADER_WINDOW)
}

/**
 * The tier's copy of `entryKey` a reuse may start the read with (`reuseIncrementalTexts`'s
 * `tierLen`), which offers it without its prefix: only a copy whose header the index keeps, so
 * the start takes the same step as `startWithTier` with `offer`'s prefix. Null without one, or
 * for a host whose store is in this process (its bytes go as `startWithHeld` gives them).
 */
export function tierCopyKept(io: ReadIo, entryKey: string): Uint8Array | null {
  if (io.getNow !== undefined) return null
  const bytes = io.tierBytes(entryKey)
  return bytes !== null && headerKept.has(bytes) ? bytes : null
}

/** Upper bound on steps per request whatever happens (the machine's own flight cap is lower). */
const MAX_STEPS = 1000

/** Upper bound on renewal steps (the machine ends renewal at its cap long before). */
const MAX_RENEW_STEPS = 100_000

/** This process's random part of lease tokens (drawn once) and the count after it. */
let tokenBase: string | undefined
let tokenSeq = 0

/**
 * A lease token for a new read machine: unique across the fleet (a random 96-bit part drawn
 * once per process, then a count), without a call into wasm or a random draw per request. A
 * reused machine derives its later reads' tokens from it (the binding's `reuseUseCache`).
 */
export function leaseToken(): string {
  if (tokenBase === undefined) {
    const bytes = new Uint8Array(12)
    globalThis.crypto.getRandomValues(bytes)
    tokenBase = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
  }
  tokenSeq = (tokenSeq + 1) % 0x1_0000_0000
  return tokenBase + tokenSeq.toString(16).padStart(8, '0')
}

/** Released read machines a host keeps: about its reads in flight at once. */
const MACHINE_POOL = 64
/**
 * Entry keys a host remembers: a pure function of its interface and the cache key; hashing one
 * in wasm costs a few µs, a Map hit a tenth of that. Only short keys are remembered, so the
 * memo stays small.
 */
const KEY_MEMO_ENTRIES = 4096
const KEY_MEMO_MAX_LENGTH = 512

/**
 * What a host's pool needs of a read machine: its entry key, its fields area (`HoldsBack`), its
 * parking and its release.
 */
export interface PooledMachine {
  readonly entryKey: string
  fields(): number
  park(): void
  free(): void
}

/**
 * One host's read machines done with and entry keys remembered, shared by the `'use cache'`
 * and singular handlers and the workers entry: a reused machine keeps its JS object, fields
 * area and buffers, so a read allocates no machine and registers no finalizer, and a
 * remembered entry key spares hashing the cache key again (docs/internals.md, "Read machine").
 */
export class ReadMachines<M extends PooledMachine> {
  private readonly spare: M[] = []
  private readonly keys = new Map<string, string>()

  /**
   * `binding`: the module whose machines are pooled, for their `HoldsBack` slot (without one,
   * as in the driver's own tests, machines are pooled as they are).
   */
  constructor(private readonly binding?: Binding) {}

  /**
   * A machine for a read of `cacheKey`: a released one made new by `reuse`, which gets the
   * entry key remembered for `cacheKey` (undefined: the machine derives it), else `fresh()`.
   * A reuse that throws is handled by `reuseFailed`: a refused input rethrown, a broken machine
   * replaced by `fresh()`.
   */
  open(
    cacheKey: string,
    fresh: () => M,
    reuse: (machine: M, entryKey: string | undefined) => void,
  ): M {
    const pooled = this.spare.pop()
    if (pooled === undefined) return fresh()
    try {
      reuse(pooled, this.keys.get(cacheKey))
    } catch (err) {
      if (this.reuseFailed(pooled, err)) throw err
      return fresh()
    }
    return pooled
  }

  /**
   * After `machine`'s reuse threw `err`: true when the binding refused the input (a coded
   * error: the machine is unchanged and back in the pool, the caller rethrows); false when the
   * machine itself is broken (dropped: the caller makes a new one). Only a trap leaves a
   * machine so: a trap unwinds no Rust frame, so wasm-bindgen's borrow of the machine is never
   * released, and from then on every call on it throws (docs/failures.md, "A trap in the
   * engine"). Pooled again, it would be the next read's too, and every read's after it.
   */
  reuseFailed(machine: M, err: unknown): boolean {
    if (codeOf(err) !== undefined) {
      this.spare.push(machine)
      return true
    }
    this.drop(machine)
    return false
  }

  /** The entry key remembered for `cacheKey`, or undefined. */
  remembered(cacheKey: string): string | undefined {
    return this.keys.get(cacheKey)
  }

  /** The entry key `machine` reads for `cacheKey`: remembered, else read from it once. */
  entryKey(cacheKey: string, machine: M): string {
    let key = this.keys.get(cacheKey)
    if (key === undefined) {
      key = machine.entryKey
      if (cacheKey.length <= KEY_MEMO_MAX_LENGTH) {
        if (this.keys.size >= KEY_MEMO_ENTRIES) this.keys.clear()
        this.keys.set(cacheKey, key)
      }
    }
    return key
  }

  /**
   * A released machine for the caller to make new itself (`open` without its two closures), or
   * undefined (make one). A machine whose reuse throws goes to `reuseFailed`.
   */
  take(): M | undefined {
    return this.spare.pop()
  }

  /**
   * Takes back a machine whose read is over (`ReadHooks.release`), or frees it. One whose last
   * step said it holds more than an idle machine may (`HoldsBack`: a long cache key, an entry
   * with many tags) is parked first, so the pool keeps a few KiB per machine whatever was read
   * last: read from the fields area, so an ordinary read makes no call for it.
   */
  release(machine: M): void {
    if (this.spare.length >= MACHINE_POOL) {
      this.drop(machine)
      return
    }
    const b = this.binding
    if (b !== undefined && fieldsOf(b)[baseOf(machine) + b.ReadField.HoldsBack] === 1) {
      try {
        machine.park()
      } catch {
        // Left borrowed by a trap (`reuseFailed`): not pooled.
        this.drop(machine)
        return
      }
    }
    this.spare.push(machine)
  }

  /** Frees `machine`; one a trap left borrowed cannot be, and is left to the module. */
  private drop(machine: M): void {
    try {
      machine.free()
    } catch {
      // Still borrowed: its memory stays with the module (one machine), nothing else holds it.
    }
  }
}

/** The `code` of an error, if it has a string one. */
function codeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const c = (err as { code?: unknown }).code
  return typeof c === 'string' ? c : undefined
}

/** The machine's `Failure` for an error an io call rejected with, by its `code`. */
export function failureOf(binding: Binding, err: unknown): number {
  switch (codeOf(err)) {
    case 'ERR_REDIS_TIMEOUT':
      return binding.Failure.Timeout
    case 'ERR_REDIS_REPLY':
      return binding.Failure.ReplyError
    case 'ERR_REDIS_CIRCUIT_OPEN':
      return binding.Failure.CircuitOpen
    // Not sent by the transport's own bound, Redis answering (a lease is released apart).
    case 'ERR_REDIS_HELD_BACK':
      return binding.Failure.HeldBack
    default:
      return binding.Failure.NoConnection
  }
}

/** An error for a debug line: its `code` first when it has one. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const c = codeOf(err)
  return c === undefined ? err.message : `${c}: ${err.message}`
}

/**
 * The read clock: ticks at the end of each turn (microtask checkpoint) in which a `GET` or poll
 * was issued. A read notes it when it begins and joins only requests issued at that reading or
 * later (`share`).
 */
let sentClock = 0
let tickQueued = false

/** The read clock for a request issued now; the clock ticks once this turn's work is done. */
function issuedAt(): number {
  if (!tickQueued) {
    tickQueued = true
    queueMicrotask(() => {
      tickQueued = false
      sentClock++
    })
  }
  return sentClock
}

/** A request in flight that reads of the same key may join, and when it went out. */
interface InFlight<V> {
  /** Undefined once settled (`share`). */
  reply: Promise<V> | undefined
  readonly sent: number
  /**
   * The number the engine issued it under (the step's `Order`): a read that joins it is given
   * this one, so what it keeps is ordered as the command it shares (docs/failures.md, "The
   * copy an outage serves").
   */
  readonly order: number
  /** The announcements heard when it went out (`ReadIo.announcementsHeard`). */
  readonly heard: number
  /** The map it is in flight in, under `id`. */
  readonly pending: Map<string, InFlight<V>>
  readonly id: string
}

/** `GET`s in flight, per engine (one per runtime) and entry key. */
const getting = new WeakMap<object, Map<string, InFlight<Uint8Array | null>>>()
/** Polls in flight, per engine and argv: followers of one key share one. */
const polling = new WeakMap<object, Map<string, InFlight<[Uint8Array | null, boolean]>>>()

/**
 * `send()`, or the same request already in flight if it was issued after the read that asks
 * began or in the same turn (`began`: the read clock then), and under the same count of
 * announcements (`heard`); with whether it joined one, and the number (`order`, the step's
 * `Order`) of the one whose reply it gets. Never one issued in an earlier turn:
 * it may have reached Redis before a write that resolved before this read began, and a read
 * that begins after a write resolved gets that write (decision 0021, in
 * docs/decisions/0021-page-entries-out-of-the-tier.md). One issued this turn has not left the
 * process: node-redis writes the commands of a turn at the next `setImmediate`, after the clock
 * ticked. Never one issued before an announcement this process applied since: it may have
 * missed the announced write, and the read would bind its answer to the count it asked under
 * (docs/decisions/0031-page-entries-in-the-tier-by-push.md).
 */
function share<V>(
  table: WeakMap<object, Map<string, InFlight<V>>>,
  engine: object,
  id: string,
  began: number,
  heard: number,
  order: number,
  send: () => Promise<V>,
): [Promise<V>, boolean, number] {
  const pending = inFlightOf(table, engine)
  const shared = pending.get(id)
  if (shared?.reply !== undefined && joins(shared, began, heard)) {
    return [shared.reply, true, shared.order]
  }
  const sent = issuedAt()
  const reply = send()
  const inFlight = issue(pending, id, reply, sent, heard, order)
  const done = (): void => {
    settle(inFlight)
  }
  reply.then(done, done)
  return [reply, false, order]
}

/** The requests in flight of `engine` in `table`. */
function inFlightOf<V>(
  table: WeakMap<object, Map<string, InFlight<V>>>,
  engine: object,
): Map<string, InFlight<V>> {
  let pending = table.get(engine)
  if (pending === undefined) {
    pending = new Map()
    table.set(engine, pending)
  }
  return pending
}

/** Whether a read that began at `began` under `heard` announcements may join `shared` (`share`). */
function joins(shared: InFlight<unknown>, began: number, heard: number): boolean {
  return shared.sent >= began && shared.heard === heard
}

/** `reply`, issued at `sent`, as the request in flight for `id`; `settle` it once it settles. */
function issue<V>(
  pending: Map<string, InFlight<V>>,
  id: string,
  reply: Promise<V>,
  sent: number,
  heard: number,
  order: number,
): InFlight<V> {
  const inFlight: InFlight<V> = { reply, sent, heard, order, pending, id }
  pending.set(id, inFlight)
  return inFlight
}

/** `inFlight` settled: no read joins it any more. */
function settle(inFlight: InFlight<unknown>): void {
  const { pending, id } = inFlight
  if (pending.get(id) === inFlight) pending.delete(id)
  // The entry lets go of the settled promise, and so of the reply it holds (an entry, a
  // view into node-redis's socket read of up to 64 KiB). The map lives as long as the
  // process, in V8's old generation, and an entry removed from it stayed reachable for the
  // minor collections until the next full one: the replies were promoted, and 300,000 hits
  // of 10 KB at 16 in flight ran 85 full collections where a raw GET's loop runs 12 (12
  // with this line, and 24.0 instead of 29.6 us of CPU per hit).
  inFlight.reply = undefined
}

/**
 * A follower's poll: the entry (null when none) and whether its lease still exists, from one
 * script call, whether this call joined one already in flight, and that one's number (`share`). Concurrent polls of one key
 * in one process share it (`share`), as reads share one `GET`. A page read (`kind` `'read'`,
 * page_read.lua) has the same shape: the entry, and whether the page-write sequence was at the
 * write its argv names.
 */
function poll(
  engine: object,
  io: ReadIo,
  argv: string,
  budgetMs: number,
  began: number,
  order: number,
  kind: 'read' | 'lease',
): [Promise<[Uint8Array | null, boolean]>, boolean, number] {
  const send = (): Promise<[Uint8Array | null, boolean]> =>
    io.script(splitArgv(argv), budgetMs, kind, true).then((reply): [Uint8Array | null, boolean] => {
      if (!Array.isArray(reply)) {
        const what = kind === 'read' ? 'page read' : 'lease poll'
        throw Object.assign(new Error(`${what}: unexpected reply`), { code: 'ERR_REDIS_REPLY' })
      }
      const [value, leased] = reply as unknown[]
      return [value instanceof Uint8Array ? value : null, Number(leased) === 1]
    })
  if (io.shares !== true) return [send(), false, order]
  const heard = io.announcementsHeard?.() ?? 0
  return share(polling, engine, argv, began, heard, order, send)
}

/** Which input the last bytes went in with: `NeedMore` gives them again the same way. */
const enum Given {
  None,
  OwnWrite,
  Tier,
  Fallback,
  Reply,
  Polled,
}

/** An envelope's magic, "FLCE", and where its `header_len` is (docs/internals.md, "Entry envelope"). */
const MAGIC = [0x46, 0x4c, 0x43, 0x45] as const
const HEADER_LEN_AT = 8
/** The envelope's fixed header: no header is shorter (`FIXED_HEADER_LEN` in envelope.rs). */
const FIXED_HEADER_LEN = 48

/**
 * The first bytes of `bytes` the machine is given, as a plain view (the glue copies it into
 * wasm and keeps nothing, so no Buffer, costlier to make, is needed): an envelope's header as
 * its `header_len` says, when that is shorter than `n`, so no payload byte crosses; else the
 * first `n` (all of them when shorter). The machine judges what it is given: a `header_len`
 * that lies gets it a prefix it refuses or one it asks more of (`NeedMore`), as any prefix.
 */
function head(bytes: Uint8Array, n: number): Uint8Array {
  let len = n
  if (
    bytes.byteLength > HEADER_LEN_AT + 3 &&
    bytes[0] === MAGIC[0] &&
    bytes[1] === MAGIC[1] &&
    bytes[2] === MAGIC[2] &&
    bytes[3] === MAGIC[3]
  ) {
    const at = HEADER_LEN_AT
    const headerLen =
      ((bytes[at] ?? 0) |
        ((bytes[at + 1] ?? 0) << 8) |
        ((bytes[at + 2] ?? 0) << 16) |
        ((bytes[at + 3] ?? 0) << 24)) >>>
      0
    if (headerLen >= FIXED_HEADER_LEN && headerLen < n) len = headerLen
  }
  return bytes.byteLength <= len ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, len)
}

/** Decodes the tags an answer leaves in the module's memory. */
const utf8 = new TextDecoder()
/** Longer tag lists are decoded by `utf8` (one native call beats a long loop of concatenations). */
const ASCII_TAGS_MAX_BYTES = 256

/** Views of a module's memory (as f64 and as bytes), made again only after the memory grew. */
interface MemoryViews {
  readonly memory: { readonly buffer: ArrayBufferLike }
  f: Float64Array
  u: Uint8Array
}

/** One pair of views per loaded binding (the Node and web glue are different modules). */
const views = new WeakMap<Binding, MemoryViews>()
/** The binding asked for last and its views: one process nearly always loads one binding. */
let lastBinding: Binding | undefined
let lastViews: MemoryViews | undefined

/** The views of `binding`'s memory, current (a grown memory has a new buffer). */
function viewsOf(binding: Binding): MemoryViews {
  let v = binding === lastBinding ? lastViews : views.get(binding)
  if (v === undefined) {
    const memory = binding.wasmMemory()
    v = { memory, f: new Float64Array(memory.buffer), u: new Uint8Array(memory.buffer) }
    views.set(binding, v)
  } else if (v.f.length === 0) {
    // Detached: the memory grew (its new buffer is read only then, the getter costs a call).
    v.f = new Float64Array(v.memory.buffer)
    v.u = new Uint8Array(v.memory.buffer)
  }
  lastBinding = binding
  lastViews = v
  return v
}

/** The f64 view of `binding`'s memory, current. */
function fieldsOf(binding: Binding): Float64Array {
  return viewsOf(binding).f
}

/** Each machine's fields area (slot index in the f64 view): fixed for the machine's life. */
const bases = new WeakMap<object, number>()

/** `machine`'s fields area, asked of the machine once (the address is 8-aligned). */
function baseOf(machine: { fields(): number }): number {
  let base = bases.get(machine)
  if (base === undefined) {
    base = machine.fields() / 8
    bases.set(machine, base)
  }
  return base
}

/** Bytes of a machine's texts area (the binding's `texts`; `TEXT_BYTES` in read.rs). */
const TEXTS_BYTES = 2048

/**
 * Each machine's texts area (byte address, fixed for the machine's life) and the three strings
 * written there last, one after the other. Every write of a texts area goes through
 * `writeTexts` and the binding only reads it, so the area holds them until the next write.
 */
interface TextArea {
  readonly at: number
  a: string
  b: string
  c: string
}
const textAreas = new WeakMap<object, TextArea>()

/**
 * Writes `a`, `b` and `c` one after the other into `machine`'s texts area (the binding's
 * `reuseUseCacheTexts` and `reuseIncrementalTexts` read them there), when all are ASCII and fit;
 * false otherwise, with the area's contents then meaningless (the caller passes the strings as
 * arguments instead). ASCII only, so each string's length is its byte length and a cache key
 * written is well-formed: a lone surrogate stays for the binding's own check. The same three as
 * the last written (a pooled machine reading the same key again) are there already: nothing is
 * written.
 */
export function writeTexts(
  binding: Binding,
  machine: { texts(): number },
  a: string,
  b: string,
  c: string,
): boolean {
  if (a.length + b.length + c.length > TEXTS_BYTES) return false
  let area = textAreas.get(machine)
  if (area === undefined) {
    // Three empty strings describe any contents: they read no byte.
    area = { at: machine.texts(), a: '', b: '', c: '' }
    textAreas.set(machine, area)
  }
  if (area.a === a && area.b === b && area.c === c) return true
  const u = viewsOf(binding).u
  let at = putAscii(u, area.at, a)
  if (at >= 0) at = putAscii(u, at, b)
  if (at >= 0) at = putAscii(u, at, c)
  if (at < 0) {
    area.a = area.b = area.c = ''
    return false
  }
  area.a = a
  area.b = b
  area.c = c
  return true
}

/** Writes ASCII `s` at `at`; the address after it, or -1 at its first other character. */
function putAscii(u: Uint8Array, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i)
    if (code > 0x7f) return -1
    u[at + i] = code
  }
  return at + s.length
}

/** The answer's numbers, copied out of the fields area; strings from the machine on demand. */
class MachineAnswer<E> implements Answer {
  readonly source: number
  readonly served: number
  readonly regenerates: boolean
  readonly holdsLease: boolean
  readonly payloadOffset: number
  readonly timestamp: number
  readonly revalidate: number
  readonly expire: number
  readonly stale: number
  readonly lastModified: number
  readonly hasCacheControl: boolean
  readonly cacheRevalidate: number
  readonly cacheExpire: number
  readonly valueKind: number
  readonly valueFlags: number
  readonly segments: number
  readonly tagsBytes: number
  readonly ownStart: number
  readonly ownFreshAt: number
  readonly ownFreshDue: number
  readonly writtenBack: number
  readonly writtenBackMade: number
  private readonly hasLog: boolean
  private readonly hasError: boolean
  private readonly tagsAt: number
  private readonly partsAt: number
  private readonly partsLen: number

  constructor(
    private readonly machine: ReadMachine<E>,
    private readonly read: { release(): void },
    private readonly binding: Binding,
    f: Float64Array,
    base: number,
  ) {
    const F = binding.ReadField
    this.source = f[base + F.Source] ?? 0
    this.served = f[base + F.Served] ?? 0
    this.regenerates = f[base + F.Regenerates] === 1
    this.holdsLease = f[base + F.HoldsLease] === 1
    this.payloadOffset = f[base + F.PayloadOffset] ?? 0
    this.timestamp = f[base + F.Timestamp] ?? 0
    this.revalidate = f[base + F.Revalidate] ?? 0
    this.expire = f[base + F.Expire] ?? 0
    this.stale = f[base + F.Stale] ?? 0
    this.lastModified = f[base + F.LastModified] ?? 0
    this.hasCacheControl = f[base + F.HasCacheControl] === 1
    this.cacheRevalidate = f[base + F.CacheRevalidate] ?? Number.NaN
    this.cacheExpire = f[base + F.CacheExpire] ?? Number.NaN
    this.valueKind = f[base + F.ValueKind] ?? 0
    this.valueFlags = f[base + F.ValueFlags] ?? 0
    this.segments = f[base + F.Segments] ?? 0
    this.hasLog = f[base + F.HasLog] === 1
    this.hasError = f[base + F.HasError] === 1
    this.tagsAt = f[base + F.TagsAt] ?? 0
    this.tagsBytes = f[base + F.TagsLen] ?? 0
    this.partsAt = f[base + F.PartsAt] ?? 0
    this.partsLen = f[base + F.PartsLen] ?? 0
    this.ownStart = f[base + F.OwnStart] ?? Number.NaN
    this.ownFreshAt = f[base + F.OwnFreshAt] ?? Number.NaN
    this.ownFreshDue = f[base + F.OwnFreshDue] ?? Number.NaN
    this.writtenBack = f[base + F.WrittenBack] ?? Number.NaN
    this.writtenBackMade = f[base + F.WrittenBackMade] ?? Number.NaN
  }

  tags(): string[] {
    const len = this.tagsBytes
    if (len === 0) return []
    // In place in the module's memory (the machine's buffer, until its next step): no call.
    const u = viewsOf(this.binding).u
    const at = this.tagsAt
    if (len > ASCII_TAGS_MAX_BYTES) return this.decodeTags(u, at, len)
    // Tags are nearly always a few short ASCII strings: cut here, they cost a hit about half
    // of what a `TextDecoder` call and a split do (~0.25 µs, bench/cmp.mjs tier hit), read
    // from the memory's view with no view of their own made.
    const tags: string[] = []
    let tag = ''
    for (let i = at; i < at + len; i++) {
      const c = u[i] ?? 0
      if (c >= 0x80) return this.decodeTags(u, at, len)
      if (c === 0) {
        tags.push(tag)
        tag = ''
      } else {
        tag += String.fromCharCode(c)
      }
    }
    tags.push(tag)
    return tags
  }

  /** The tags at `at` decoded as UTF-8 (long or non-ASCII ones). */
  private decodeTags(u: Uint8Array, at: number, len: number): string[] {
    return utf8.decode(u.subarray(at, at + len)).split('\0')
  }

  parts(): Uint32Array {
    // Read in place like the tags, and copied: the caller may keep it past a call into wasm.
    const at = this.partsAt
    return new Uint32Array(fieldsOf(this.binding).buffer, at, this.partsLen).slice()
  }

  log(): string {
    return this.hasLog ? this.machine.log() : ''
  }

  error(): string {
    return this.hasError ? this.machine.error() : ''
  }

  free(): void {
    this.read.release()
  }
}

/** A pooled read machine with the binding's `'use cache'` hit in one call (`tierHitTexts`). */
export interface TierHitMachine<E> extends ReadMachine<E> {
  texts(): number
  tierHitTexts(
    engine: E,
    entryLen: number,
    softLen: number,
    keyLen: number,
    totalLen: number,
    held: boolean,
    now: number,
  ): boolean
}

/**
 * A `'use cache'` hit from the tier, or from the embedded store (`io.getNow`), in one call into
 * wasm without a read: the binding's `tierHitTexts`, for a read of `cacheKey` (entry key
 * `entryKey`, soft tags `soft` NUL-joined) with no write of this process in flight, at `now`.
 * The answer (its `free` is `read.release`) and the bytes it serves, or undefined where the
 * engine does not serve them fresh (its checks are a read's) or they are stored compressed:
 * the caller then reads as always (`readNow`), with `machine` unchanged.
 */
export function tierHit<E extends object>(
  engine: E,
  machine: TierHitMachine<E>,
  io: ReadIo,
  read: { release(): void },
  entryKey: string,
  soft: string,
  cacheKey: string,
  now: number,
): { answer: Answer; bytes: Uint8Array } | undefined {
  // The embedded store's bytes, as `begin` gives them with the start (`startWithHeld`).
  const held = io.getNow !== undefined
  const bytes = held ? (io.held?.(entryKey) ?? null) : io.tierBytes(entryKey)
  if (bytes === null || (held && io.inflate !== undefined && storedCompressed(bytes))) {
    return undefined
  }
  if (!writeTexts(io.binding, machine, entryKey, soft, cacheKey)) return undefined
  const { binding } = io
  const len = bytes.byteLength
  if (
    !machine.tierHitTexts(engine, entryKey.length, soft.length, cacheKey.length, len, held, now)
  ) {
    return undefined
  }
  const answer = new MachineAnswer(machine, read, binding, fieldsOf(binding), baseOf(machine))
  return { answer, bytes }
}

/**
 * Drives `machine` to its answer. Rule R1: once the machine asked for a tag refresh, the
 * refresh is awaited before any bytes are handed to it, so a judgement never runs on a mirror
 * older than the request. The caller frees the answer, which frees the machine (the machine is
 * freed here when no answer came). When the answer says this process holds the lease, its
 * renewal runs in the background (`renew`). Rejects only when the machine itself throws (a key
 * that is not well-formed, say).
 */
export function readEntry<E extends object, T = never>(
  engine: E,
  machine: ReadMachine<E>,
  io: ReadIo,
  hooks: ReadHooks<T> = {},
): Promise<ReadResult<T>> {
  try {
    const done = readNow(engine, machine, io, hooks)
    return done instanceof Promise ? done : Promise.resolve(done)
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)))
  }
}

/**
 * `readEntry`, with a read that needed no I/O (a hit from the tier or the embedded store)
 * answered as it is, not wrapped in a promise: a caller that awaits only a promise spares such
 * a read a microtask turn and the promise. Throws where `readEntry` rejects at once.
 */
export function readNow<E extends object, T = never>(
  engine: E,
  machine: ReadMachine<E>,
  io: ReadIo,
  hooks: ReadHooks<T> = {},
): ReadResult<T> | Promise<ReadResult<T>> {
  return new Read(engine, machine, io, hooks).begin()
}

/**
 * One read being driven: its state in fields and its steps as methods, so a read allocates one
 * object, not a closure per step kind. Synchronous until a step must be awaited (a hit from the
 * tier never is): an await per step costs a hit more than its calls into wasm.
 */
class Read<E extends object, T> {
  private readonly binding: Binding
  /** The fields area's slot index in the f64 view (the address is 8-aligned). */
  private readonly base: number
  private readonly entryKey: string
  private refreshing: Promise<void> | undefined = undefined
  /** The last bytes given, how and under which key (the tier action of the next step is theirs). */
  private given = Given.None
  private givenBytes: Uint8Array | null = null
  private givenKey = ''
  private leased = false
  /** The last `GET` or poll joined another read's (the machine then keeps no page copy). */
  private joined = false
  /** The number of the command joined (`share`); read only when `joined`. */
  private joinedOrder = 0
  /** The `GET` this read issued and others may join, until it settles (`getEntry`). */
  private issued: InFlight<Uint8Array | null> | undefined = undefined
  /** The read clock when this read began: it joins only requests sent after (`share`). */
  private readonly began = sentClock
  private readError: unknown = undefined
  /** The bytes each source gave, for the answer's `source`. */
  private own: Uint8Array | null = null
  private kept: Uint8Array | null = null
  private redis: Uint8Array | null = null
  private polled: Uint8Array | null = null
  private steps = 0

  constructor(
    private readonly engine: E,
    private readonly machine: ReadMachine<E>,
    private readonly io: ReadIo,
    private readonly hooks: ReadHooks<T>,
  ) {
    this.binding = io.binding
    this.base = baseOf(machine)
    this.entryKey = hooks.entryKey ?? machine.entryKey
  }

  /** The caller's `release`, else the machine freed. */
  release(): void {
    if (this.hooks.release !== undefined) this.hooks.release()
    else this.machine.free()
  }

  begin(): ReadResult<T> | Promise<ReadResult<T>> {
    const { engine, machine, io } = this
    let kind: number
    const { started } = this.hooks
    if (started !== undefined) {
      // Started by the machine's reuse, in the same turn: the tier's copy was offered as below.
      if (fieldsOf(this.binding)[this.base + this.binding.ReadField.TookTier] === 1) {
        this.given = Given.Tier
        this.givenBytes = this.kept = this.hooks.offered ?? null
        this.givenKey = this.entryKey
      }
      return this.run(started)
    }
    const t = this.hooks.startedAt ?? io.now()
    try {
      // The machine says whether its start asks for the tier (`AsksTier`, the core's
      // `read_asks_tier_first`): then the tier's bytes go with the start, one call into wasm
      // fewer; otherwise (a refresh first: pulling the tag state, a Redis Cluster) they would
      // be looked up and copied for nothing, and the tier is asked for later if at all.
      const { AsksTier, TookTier } = this.binding.ReadField
      if (fieldsOf(this.binding)[this.base + AsksTier] !== 1) {
        kind = machine.start(engine, t)
      } else {
        const held = io.getNow === undefined ? undefined : io.held?.(this.entryKey)
        const bytes = held ?? null
        if (held !== undefined && !this.compressed(held)) {
          // A store in this process (it has no tier): its bytes go with the start as the
          // `Get`'s reply, one call into wasm for a hit, as from the tier. Compressed bytes are
          // read as `getHeld` reads them.
          kind = machine.startWithHeld(engine, offer(bytes), bytes?.byteLength ?? 0, t)
          const took = fieldsOf(this.binding)[this.base + TookTier]
          if (took === 2) {
            this.joined = false
            this.given = Given.Reply
            this.givenBytes = this.redis = bytes
            this.givenKey = this.entryKey
            this.hooks.sent?.()
          } else if (took === 1) {
            this.given = Given.Tier
            this.givenKey = this.entryKey
          }
        } else {
          const offered = io.tierBytes(this.entryKey)
          kind = machine.startWithTier(engine, offer(offered), offered?.byteLength ?? 0, t)
          if (fieldsOf(this.binding)[this.base + TookTier] === 1) {
            this.given = Given.Tier
            this.givenBytes = this.kept = offered
            this.givenKey = this.entryKey
          }
        }
      }
    } catch (err) {
      machine.free()
      throw err
    }
    return this.run(kind)
  }

  /** Steps from `kind` to the answer, synchronously until a step returns a promise. */
  private run(kind: number): ReadResult<T> | Promise<ReadResult<T>> {
    const { engine, machine, io, hooks, binding, base } = this
    const { ReadStepKind: K, TierAction, Source, Served, ReadField: F } = binding
    try {
      for (; this.steps < MAX_STEPS; this.steps++) {
        // Read after the call that wrote it: a call may have grown the memory.
        let f = fieldsOf(binding)
        // What the tier does with the bytes just given (a servable Redis reply is kept, say);
        // none given, nothing to do.
        if (this.givenBytes !== null && this.givenKey !== '') {
          if (f[base + F.HeaderKept] === 1) headerKept.add(this.givenBytes)
          const tier = f[base + F.Tier]
          if (tier === TierAction.Keep) {
            io.remember(
              this.givenKey,
              this.givenBytes,
              f[base + F.KeepUntil] ?? 0,
              f[base + F.OutageOnly] === 1,
              f[base + F.PageGen] ?? 0,
              f[base + F.Order] ?? 0,
            )
          } else if (tier === TierAction.Drop) {
            io.forget(this.givenKey)
          }
          // Both call into wasm (the index's insert allocates), which may grow the memory:
          // the view the answer and the next step are read from must be a current one.
          f = fieldsOf(binding)
        }
        if (kind === K.Answer) {
          const answer = new MachineAnswer(machine, this, binding, f, base)
          const source = answer.served === Served.Miss ? Source.None : answer.source
          const bytes =
            source === Source.OwnWrite
              ? this.own
              : source === Source.Tier || source === Source.Kept
                ? this.kept
                : source === Source.Redis
                  ? this.redis
                  : source === Source.Poll
                    ? this.polled
                    : null
          let value: T | undefined = undefined
          if (bytes !== null && hooks.decode !== undefined) {
            value = hooks.decode(answer, bytes)
            if (value === undefined) {
              // The step after `undecodable` may drop these bytes from the tier (the machine
              // has forgotten the key in its index): they stay the bytes its tier action is about.
              this.given = Given.None
              this.givenBytes = bytes
              this.givenKey = this.entryKey
              kind = machine.undecodable(engine, io.now())
              continue
            }
          }
          startRenewal(engine, machine, io, answer)
          return { answer, bytes, value, readError: this.readError }
        }
        if (kind === K.Get && io.getNow === undefined) {
          // The reply's step and the steps after it run in the reply's own turn (`getEntry`).
          this.steps++
          return this.getEntry(f)
        }
        const next = this.advance(kind, f)
        if (typeof next !== 'number') {
          this.steps++
          return next.then(
            (k) => this.run(k),
            (err: unknown) => {
              machine.free()
              throw err
            },
          )
        }
        kind = next
      }
      io.debug(`read of ${this.entryKey} ended after ${String(MAX_STEPS)} steps: miss`)
      this.release()
      return { answer: undefined, bytes: null, value: undefined, readError: this.readError }
    } catch (err) {
      machine.free()
      throw err
    }
  }

  /** Gives bytes to the machine, after the pending refresh if there is one (rule R1). */
  private give(how: Given, bytes: Uint8Array | null, key: string): number | Promise<number> {
    const refreshing = this.refreshing
    return refreshing === undefined
      ? this.giveNow(how, bytes, key)
      : refreshing.then(() => this.giveNow(how, bytes, key))
  }

  /** The tier's bytes as held now, given to the machine. */
  private peekTier(): number {
    this.kept = this.io.tierBytes(this.entryKey)
    return this.giveNow(Given.Tier, this.kept, this.entryKey)
  }

  private giveNow(how: Given, bytes: Uint8Array | null, key: string): number {
    this.given = how
    this.givenBytes = bytes
    this.givenKey = key
    // The tier's bytes go as `startWithTier` offers them: without a prefix when the index keeps
    // their header.
    return this.feed(
      how === Given.Tier ? offer(bytes) : bytes === null ? undefined : head(bytes, HEADER_WINDOW),
    )
  }

  private feed(prefix: Uint8Array | undefined): number {
    const { engine, machine } = this
    const total = this.givenBytes?.byteLength ?? 0
    const t = this.io.now()
    switch (this.given) {
      case Given.OwnWrite:
        // Whole: the binding takes this process's own envelope as it is.
        return machine.ownWrite(engine, this.givenBytes ?? undefined, t)
      case Given.Tier:
        return machine.tier(engine, prefix, total, t)
      case Given.Fallback:
        return machine.fallback(engine, prefix, total, t)
      case Given.Reply:
        return machine.reply(engine, prefix, total, this.joined, this.joinedOrder, t)
      case Given.Polled:
        return machine.polled(engine, prefix, total, this.leased, this.joined, this.joinedOrder, t)
      case Given.None:
        throw new Error('read machine asked for more bytes before any were given')
    }
  }

  /**
   * Whether bytes from Redis are stored compressed and this host can inflate them: what Redis
   * holds compressed, the machine and the tier get plain (the inflation overlaps the tag
   * refresh); a plain value costs no await.
   */
  private compressed(stored: Uint8Array | null): stored is Uint8Array {
    return stored !== null && this.io.inflate !== undefined && storedCompressed(stored)
  }

  /**
   * The plain envelope of compressed bytes. A value that cannot be inflated goes as it is: the
   * machine judges it unreadable, and the inflation's error is the read's.
   */
  private async inflated(stored: Uint8Array): Promise<Uint8Array> {
    try {
      return await (this.io.inflate?.(stored) ?? stored)
    } catch (err) {
      this.readError = err
      return stored
    }
  }

  private failed(err: unknown): number {
    return this.machine.failed(this.engine, failureOf(this.binding, err), this.io.now())
  }

  /**
   * `Get`: reads the entry, then gives its bytes (or the failure) to the machine and drives it
   * on (`run`) in the same reaction: a promise and a microtask turn fewer per Redis read than a
   * step handed back to `run` to chain (the other steps that wait).
   */
  private getEntry(f: Float64Array): Promise<ReadResult<T>> {
    const { io } = this
    // `Get` reads the entry key (the binding's contract): no key string crosses again.
    let reading: Promise<Uint8Array | null>
    try {
      const budgetMs = f[this.base + this.binding.ReadField.BudgetMs] ?? 0
      const key = this.entryKey
      const order = f[this.base + this.binding.ReadField.Order] ?? 0
      if (io.shares === true) {
        // `share`, with the request settled by this read's own reaction to it (`settled`): no
        // closure, promise or reaction of its own. The reactions of the reads that join it
        // come after this one, as they came after `share`'s.
        const heard = io.announcementsHeard?.() ?? 0
        const pending = inFlightOf(getting, this.engine)
        const shared = pending.get(key)
        if (shared?.reply !== undefined && joins(shared, this.began, heard)) {
          reading = shared.reply
          this.joined = true
          this.joinedOrder = shared.order
        } else {
          const sent = issuedAt()
          reading = io.get(key, budgetMs)
          this.issued = issue(pending, key, reading, sent, heard, order)
          this.joined = false
          this.joinedOrder = order
        }
      } else {
        this.joined = false
        reading = io.get(key, budgetMs)
      }
    } catch (err) {
      reading = Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
    this.hooks.sent?.()
    // One `then`, not an async function and its await: a promise fewer per Redis read.
    return reading.then(
      (bytes) => {
        this.settled()
        return this.onward(this.repliedOrFree(bytes))
      },
      (err: unknown) => {
        this.settled()
        if (codeOf(err) !== 'ERR_REDIS_CIRCUIT_OPEN') this.readError = err
        return this.onward(this.failedOrFree(err))
      },
    )
  }

  /** The `GET` this read issued for others to join, if any, has settled (`settle`). */
  private settled(): void {
    const issued = this.issued
    if (issued === undefined) return
    this.issued = undefined
    settle(issued)
  }

  /** `replied`, with the machine freed when it throws (as `run` frees it for a step's). */
  private repliedOrFree(bytes: Uint8Array | null): number | Promise<number> {
    try {
      return this.replied(bytes)
    } catch (err) {
      this.machine.free()
      throw err
    }
  }

  /** The failed `Get` given (after a pending refresh, rule R1); the machine freed on a throw. */
  private failedOrFree(err: unknown): number | Promise<number> {
    try {
      const refreshing = this.refreshing
      return refreshing === undefined ? this.failed(err) : refreshing.then(() => this.failed(err))
    } catch (thrown) {
      this.machine.free()
      throw thrown
    }
  }

  /** Drives the machine on from a step's outcome, as `run` does after a step that waited. */
  private onward(next: number | Promise<number>): ReadResult<T> | Promise<ReadResult<T>> {
    if (typeof next === 'number') return this.run(next)
    return next.then(
      (k) => this.run(k),
      (err: unknown) => {
        this.machine.free()
        throw err
      },
    )
  }

  /** The `Get`'s bytes (from Redis or a store in this process) given, inflated if compressed. */
  private replied(bytes: Uint8Array | null): number | Promise<number> {
    this.redis = bytes
    if (!this.compressed(bytes)) return this.give(Given.Reply, bytes, this.entryKey)
    return this.inflated(bytes).then((plain) => {
      this.redis = plain
      return this.give(Given.Reply, plain, this.entryKey)
    })
  }

  /**
   * `Get` from a store in this process: the entry given in this turn (after a pending refresh,
   * rule R1, as any bytes). A store whose bytes are compressed is read as `getEntry` reads.
   */
  private getHeld(getNow: (key: string) => Uint8Array | null): number | Promise<number> {
    this.joined = false
    let held: Uint8Array | null
    try {
      held = getNow(this.entryKey)
    } catch (err) {
      this.readError = err
      const refreshing = this.refreshing
      return refreshing === undefined ? this.failed(err) : refreshing.then(() => this.failed(err))
    }
    this.hooks.sent?.()
    return this.replied(held)
  }

  /** `Acquire`: sends the lease request, then gives its reply (or the failure) to the machine. */
  private async acquire(budgetMs: number): Promise<number> {
    const { engine, machine, io } = this
    let reply: Reply
    try {
      reply = await io.script(splitArgv(machine.argv()), budgetMs)
    } catch (err) {
      // The machine then behaves as if there were no leases (regenerates or serves stale),
      // and says so in its answer's log.
      return this.failed(err)
    }
    const code = typeof reply === 'number' ? reply : Number(reply)
    return machine.leaseReply(engine, Number.isFinite(code) ? code : -1, io.now())
  }

  /**
   * `Poll`: polls the entry and its lease (`PageRead`: reads the page entry and whether the
   * page-write sequence is at the write named), then gives what came (or the failure).
   */
  private async pollEntry(
    budgetMs: number,
    order: number,
    kind: 'read' | 'lease',
  ): Promise<number> {
    let entry: Uint8Array | null
    try {
      const [polled, joined, joinedOrder] = poll(
        this.engine,
        this.io,
        this.machine.argv(),
        budgetMs,
        this.began,
        order,
        kind,
      )
      this.joined = joined
      this.joinedOrder = joinedOrder
      ;[entry, this.leased] = await polled
    } catch (err) {
      if (codeOf(err) !== 'ERR_REDIS_CIRCUIT_OPEN') this.readError = err
      return this.failed(err)
    }
    this.polled = this.compressed(entry) ? await this.inflated(entry) : entry
    return this.give(Given.Polled, this.polled, this.entryKey)
  }

  /** Sends what step `kind` asks for; `f` is the view its numbers were read from. */
  private advance(kind: number, f: Float64Array): number | Promise<number> {
    const { engine, machine, io, hooks, base } = this
    const { ReadStepKind: K, ReadField: F } = this.binding
    switch (kind) {
      case K.Refresh:
        // Not awaited here: the refresh runs beside the reads; R1 awaits it before judging.
        this.refreshing = io.refresh()
        return machine.refreshed(engine, io.now())
      case K.OwnWrite: {
        const pending = hooks.ownWrite?.() ?? null
        if (pending === null) return this.give(Given.OwnWrite, null, '')
        return pending.then((bytes) => {
          this.own = bytes
          return this.give(Given.OwnWrite, bytes, '')
        })
      }
      case K.PeekTier: {
        // The bytes are taken when they are given (after a pending refresh), not when asked:
        // the index marks the machine judges them by (a page copy bound to the announcements,
        // docs/decisions/0031) must be those of the copy held then.
        const refreshing = this.refreshing
        if (refreshing === undefined) return this.peekTier()
        return refreshing.then(() => this.peekTier())
      }
      case K.PeekFallback: {
        const held = io.tierBytes(this.entryKey)
        if (held !== null) this.kept = held
        return this.give(Given.Fallback, held, this.entryKey)
      }
      case K.Get: {
        const getNow = io.getNow
        // Without a store in this process `run` sends the `GET` itself (`getEntry`).
        if (getNow === undefined) throw new Error('read driver: Get step without a store here')
        return this.getHeld(getNow)
      }
      case K.NeedMore:
        return this.feed(this.givenBytes?.subarray(0, f[base + F.Need] ?? 0))
      case K.Acquire:
        return this.acquire(f[base + F.BudgetMs] ?? 0)
      case K.Wait:
        return io.sleep(f[base + F.DelayMs] ?? 0).then(() => machine.timer(engine, io.now()))
      case K.Poll:
        return this.pollEntry(f[base + F.BudgetMs] ?? 0, f[base + F.Order] ?? 0, 'lease')
      case K.PageRead:
        return this.pollEntry(f[base + F.BudgetMs] ?? 0, f[base + F.Order] ?? 0, 'read')
      default:
        throw new Error(`read machine step ${String(kind)} unknown to this driver`)
    }
  }
}

/** Starts the renewal of a lease the answer holds, in the background. */
function startRenewal<E extends object>(
  engine: E,
  machine: ReadMachine<E>,
  io: ReadIo,
  answer: Answer,
): void {
  if (!answer.holdsLease) return
  const renewal = machine.renewal(engine)
  if (renewal !== undefined) void renew(engine, renewal, io)
}

/**
 * Renews the lease this process holds while it regenerates, at the machine's interval, until
 * the machine says it is over (the entry written or the lease released, lapsed, or at its
 * cap). Never rejects; frees the machine.
 */
export async function renew<E>(engine: E, machine: RenewMachine<E>, io: ReadIo): Promise<void> {
  const { RenewStepKind: R } = io.binding
  try {
    let step = renewStep(machine.start(engine, io.now()))
    for (let i = 0; i < MAX_RENEW_STEPS; i++) {
      const kind = step.kind
      if (kind === R.Done) {
        const line = step.log
        if (line !== '') io.debug(line)
        return
      }
      let next: Uint8Array
      if (kind === R.Wait) {
        await io.sleep(step.delayMs)
        next = machine.timer(engine, io.now())
      } else {
        try {
          const reply = await io.script(step.argv, step.budgetMs)
          next = machine.sent(engine, Number(reply), io.now())
        } catch (err) {
          // Tried again at the next interval while the lease may still be alive.
          next = machine.failed(engine, failureOf(io.binding, err), io.now())
        }
      }
      step = renewStep(next)
    }
  } catch (err) {
    io.debug(`lease renewal stopped (${describeError(err)}): it expires`)
  } finally {
    machine.free()
  }
}
