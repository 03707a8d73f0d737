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
  }
  readonly TierAction: { readonly None: number; readonly Keep: number; readonly Drop: number }
  readonly Failure: {
    readonly Timeout: number
    readonly ReplyError: number
    readonly NoConnection: number
    readonly CircuitOpen: number
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
}

/**
 * One step of a read machine: the binding's `ReadStep`, as far as the driver reads it (the
 * adapters read the answer's presentation from the binding's own type).
 */
export interface ReadStep {
  readonly kind: number
  readonly key: string
  readonly argv: string[]
  readonly budgetMs: number
  readonly need: number
  readonly delayMs: number
  readonly tier: number
  readonly keepUntil: number
  readonly outageOnly: boolean
  readonly source: number
  readonly served: number
  readonly holdsLease: boolean
  free(): void
}

/** The binding's `ReadMachine`: every input is a method, every method answers one step. */
export interface ReadMachine<E, S extends ReadStep = ReadStep> {
  /** The entry's key: the tier's key for `PeekTier`, `PeekFallback` and the tier actions. */
  readonly entryKey: string
  start(engine: E, now: number): S
  refreshed(engine: E, now: number): S
  ownWrite(engine: E, bytes: Uint8Array | undefined, now: number): S
  tier(engine: E, prefix: Uint8Array | undefined, totalLen: number, now: number): S
  fallback(engine: E, prefix: Uint8Array | undefined, totalLen: number, now: number): S
  reply(engine: E, prefix: Uint8Array | undefined, totalLen: number, now: number): S
  polled(
    engine: E,
    prefix: Uint8Array | undefined,
    totalLen: number,
    leased: boolean,
    now: number,
  ): S
  leaseReply(engine: E, code: number, now: number): S
  failed(engine: E, failure: number, now: number): S
  timer(engine: E, now: number): S
  undecodable(engine: E, now: number): S
  renewal(engine: E): RenewMachine<E> | undefined
  free(): void
}

/** One step of a renewal machine (the binding's `RenewStep`). */
export interface RenewStep {
  readonly kind: number
  /** `Done`: a debug line, `''` when none. */
  readonly log: string
  readonly delayMs: number
  readonly argv: string[]
  readonly budgetMs: number
  free(): void
}

/** The renewal machine of a lease this process holds (the binding's `RenewMachine`). */
export interface RenewMachine<E> {
  start(engine: E, now: number): RenewStep
  timer(engine: E, now: number): RenewStep
  sent(engine: E, renewed: boolean, now: number): RenewStep
  failed(engine: E, failure: number, now: number): RenewStep
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
  /** Keeps `bytes` in the tier until `until` (for outages only when `outageOnly`). */
  remember(key: string, bytes: Uint8Array, until: number, outageOnly: boolean): void
  /** Drops `key` from the tier. */
  forget(key: string): void
  /** The stored entry, or null; rejects with an error carrying a `code` (see `failureOf`). */
  get(key: string, budgetMs: number): Promise<Uint8Array | null>
  /** Runs a script argv of the lease protocol; rejects like `get`. */
  script(argv: string[], budgetMs: number): Promise<Reply>
  /** A debug line of the driver's own or of the renewal machine (the answer's come with it). */
  debug(line: string): void
}

/** How one read ended: the machine's `Answer` step, and the bytes its `source` names. */
export interface ReadResult<T, S extends ReadStep = ReadStep> {
  /** The `Answer` step (the caller reads it, then frees it); undefined when none came. */
  answer: S | undefined
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
export type Decode<T, S extends ReadStep = ReadStep> = (
  answer: S,
  bytes: Uint8Array,
) => T | undefined

/** What one request adds to the host's io. */
export interface ReadHooks<T, S extends ReadStep = ReadStep> {
  decode?: Decode<T, S> | undefined
  /** The entry's `GET` has been sent (a hit's stream can be built while the reply travels). */
  sent?: (() => void) | undefined
  /** This process's write in flight of the request's cache key, or null when there is none. */
  ownWrite?: (() => Promise<Uint8Array | null> | null) | undefined
}

/**
 * Bytes of an entry given to the machine at first: enough for nearly every header, so the
 * payload never crosses into wasm; `NeedMore` asks for exactly what is missing.
 */
const HEADER_WINDOW = 4096

/** Upper bound on steps per request whatever happens (the machine's own flight cap is lower). */
const MAX_STEPS = 1000

/** Upper bound on renewal steps (the machine ends renewal at its cap long before). */
const MAX_RENEW_STEPS = 100_000

/** This process's random part of lease tokens (drawn once) and the count after it. */
let tokenBase: string | undefined
let tokenSeq = 0

/**
 * A lease token for a new read: unique per read across the fleet (a random 96-bit part drawn
 * once per process, then a count), without a call into wasm or a random draw per request.
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

/** Polls in flight, per engine (one per runtime) and argv: followers of one key share one. */
const polling = new WeakMap<object, Map<string, Promise<[Uint8Array | null, boolean]>>>()

/**
 * A follower's poll: the entry (null when none) and whether its lease still exists, from one
 * script call. Concurrent polls of one key in one process share it, as reads share one `GET`.
 */
function poll(
  engine: object,
  io: ReadIo,
  argv: string[],
  budgetMs: number,
): Promise<[Uint8Array | null, boolean]> {
  let pending = polling.get(engine)
  if (pending === undefined) {
    pending = new Map()
    polling.set(engine, pending)
  }
  const id = argv.join('\0')
  const shared = pending.get(id)
  if (shared !== undefined) return shared
  const sent = io.script(argv, budgetMs).then((reply): [Uint8Array | null, boolean] => {
    if (!Array.isArray(reply)) {
      throw Object.assign(new Error('lease poll: unexpected reply'), { code: 'ERR_REDIS_REPLY' })
    }
    const [value, leased] = reply as unknown[]
    return [value instanceof Uint8Array ? value : null, Number(leased) === 1]
  })
  const map = pending
  map.set(id, sent)
  const done = (): void => {
    if (map.get(id) === sent) map.delete(id)
  }
  sent.then(done, done)
  return sent
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

/**
 * Drives `machine` to its answer. Rule R1: once the machine asked for a tag refresh, the
 * refresh is awaited before any bytes are handed to it, so a judgement never runs on a mirror
 * older than the request. The machine is freed here; the caller frees `answer`. When the
 * answer says this process holds the lease, its renewal runs in the background (`renew`).
 * Rejects only when the machine itself throws (a key that is not well-formed, say).
 */
export async function readEntry<E extends object, S extends ReadStep, T = never>(
  engine: E,
  machine: ReadMachine<E, S>,
  io: ReadIo,
  hooks: ReadHooks<T, S> = {},
): Promise<ReadResult<T, S>> {
  const { ReadStepKind: K, TierAction, Source, Served } = io.binding
  let refreshing: Promise<void> | undefined
  // The last bytes given, how and under which key (the tier action of the next step is theirs).
  let given = Given.None
  let givenBytes = null as Uint8Array | null
  let givenKey = ''
  let leased = false
  let readError: unknown = undefined
  // The bytes each source gave, for the answer's `source`.
  let own = null as Uint8Array | null
  let kept = null as Uint8Array | null
  let redis = null as Uint8Array | null
  let polled = null as Uint8Array | null
  const entryKey = machine.entryKey

  const give = async (how: Given, bytes: Uint8Array | null, key: string): Promise<S> => {
    if (refreshing !== undefined) await refreshing
    given = how
    givenBytes = bytes
    givenKey = key
    return feed(bytes === null ? undefined : bytes.subarray(0, HEADER_WINDOW))
  }
  const feed = (prefix: Uint8Array | undefined): S => {
    const total = givenBytes?.byteLength ?? 0
    const t = io.now()
    switch (given) {
      case Given.OwnWrite:
        // Whole: the binding takes this process's own envelope as it is.
        return machine.ownWrite(engine, givenBytes ?? undefined, t)
      case Given.Tier:
        return machine.tier(engine, prefix, total, t)
      case Given.Fallback:
        return machine.fallback(engine, prefix, total, t)
      case Given.Reply:
        return machine.reply(engine, prefix, total, t)
      case Given.Polled:
        return machine.polled(engine, prefix, total, leased, t)
      case Given.None:
        throw new Error('read machine asked for more bytes before any were given')
    }
  }
  const failed = (err: unknown): S => machine.failed(engine, failureOf(io.binding, err), io.now())

  try {
    let step = machine.start(engine, io.now())
    for (let i = 0; i < MAX_STEPS; i++) {
      // What the tier does with the bytes just given (a servable Redis reply is kept, say);
      // none given, nothing to do, and no crossing into wasm to ask.
      if (givenBytes !== null && givenKey !== '') {
        const tier = step.tier
        if (tier === TierAction.Keep) {
          io.remember(givenKey, givenBytes, step.keepUntil, step.outageOnly)
        } else if (tier === TierAction.Drop) {
          io.forget(givenKey)
        }
      }
      const kind = step.kind
      if (kind === K.Answer) {
        const source = step.served === Served.Miss ? Source.None : step.source
        const bytes =
          source === Source.OwnWrite
            ? own
            : source === Source.Tier || source === Source.Kept
              ? kept
              : source === Source.Redis
                ? redis
                : source === Source.Poll
                  ? polled
                  : null
        if (bytes !== null && hooks.decode !== undefined) {
          const value = hooks.decode(step, bytes)
          if (value === undefined) {
            step.free()
            given = Given.None
            givenBytes = null
            step = machine.undecodable(engine, io.now())
            continue
          }
          return finish(engine, machine, io, { answer: step, bytes, value, readError })
        }
        return finish<E, S, T>(engine, machine, io, {
          answer: step,
          bytes,
          value: undefined,
          readError,
        })
      }
      const next = await advance(step)
      step.free()
      step = next
    }
    step.free()
    io.debug(`read of ${entryKey} ended after ${MAX_STEPS} steps: miss`)
    return finish<E, S, T>(engine, machine, io, {
      answer: undefined,
      bytes: null,
      value: undefined,
      readError,
    })
  } catch (err) {
    machine.free()
    throw err
  }

  async function advance(step: S): Promise<S> {
    switch (step.kind) {
      case K.Refresh:
        // Not awaited here: the refresh runs beside the reads; R1 awaits it before judging.
        refreshing = io.refresh()
        return machine.refreshed(engine, io.now())
      case K.OwnWrite: {
        const pending = hooks.ownWrite?.() ?? null
        own = pending === null ? null : await pending
        return give(Given.OwnWrite, own, '')
      }
      case K.PeekTier:
        kept = io.tierBytes(entryKey)
        return give(Given.Tier, kept, entryKey)
      case K.PeekFallback: {
        const held = io.tierBytes(entryKey)
        if (held !== null) kept = held
        return give(Given.Fallback, held, entryKey)
      }
      case K.Get: {
        let reading: Promise<Uint8Array | null>
        try {
          reading = io.get(step.key, step.budgetMs)
        } catch (err) {
          reading = Promise.reject(err instanceof Error ? err : new Error(String(err)))
        }
        hooks.sent?.()
        try {
          redis = await reading
        } catch (err) {
          if (codeOf(err) !== 'ERR_REDIS_CIRCUIT_OPEN') readError = err
          if (refreshing !== undefined) await refreshing
          return failed(err)
        }
        return give(Given.Reply, redis, step.key)
      }
      case K.NeedMore:
        return feed(givenBytes?.subarray(0, step.need))
      case K.Acquire: {
        let reply: Reply
        try {
          reply = await io.script(step.argv, step.budgetMs)
        } catch (err) {
          // The machine then behaves as if there were no leases (regenerates or serves stale),
          // and says so in its answer's log.
          return failed(err)
        }
        const code = typeof reply === 'number' ? reply : Number(reply)
        return machine.leaseReply(engine, Number.isFinite(code) ? code : -1, io.now())
      }
      case K.Wait:
        await io.sleep(step.delayMs)
        return machine.timer(engine, io.now())
      case K.Poll: {
        let entry: Uint8Array | null
        try {
          ;[entry, leased] = await poll(engine, io, step.argv, step.budgetMs)
        } catch (err) {
          if (codeOf(err) !== 'ERR_REDIS_CIRCUIT_OPEN') readError = err
          return failed(err)
        }
        polled = entry
        return give(Given.Polled, entry, entryKey)
      }
      default:
        throw new Error(`read machine step ${String(step.kind)} unknown to this driver`)
    }
  }
}

/** Ends a read: starts the renewal of a lease the answer holds, frees the machine. */
function finish<E extends object, S extends ReadStep, T>(
  engine: E,
  machine: ReadMachine<E, S>,
  io: ReadIo,
  result: ReadResult<T, S>,
): ReadResult<T, S> {
  try {
    if (result.answer?.holdsLease === true) {
      const renewal = machine.renewal(engine)
      if (renewal !== undefined) void renew(engine, renewal, io)
    }
  } finally {
    machine.free()
  }
  return result
}

/**
 * Renews the lease this process holds while it regenerates, at the machine's interval, until
 * the machine says it is over (the entry written or the lease released, lapsed, or at its
 * cap). Never rejects; frees the machine.
 */
export async function renew<E>(engine: E, machine: RenewMachine<E>, io: ReadIo): Promise<void> {
  const { RenewStepKind: R } = io.binding
  try {
    let step = machine.start(engine, io.now())
    for (let i = 0; i < MAX_RENEW_STEPS; i++) {
      const kind = step.kind
      if (kind === R.Done) {
        const line = step.log
        if (line !== '') io.debug(line)
        step.free()
        return
      }
      let next: RenewStep
      if (kind === R.Wait) {
        await io.sleep(step.delayMs)
        next = machine.timer(engine, io.now())
      } else {
        try {
          const reply = await io.script(step.argv, step.budgetMs)
          next = machine.sent(engine, Number(reply) === 1, io.now())
        } catch (err) {
          // Tried again at the next interval while the lease may still be alive.
          next = machine.failed(engine, failureOf(io.binding, err), io.now())
        }
      }
      step.free()
      step = next
    }
    step.free()
  } catch (err) {
    io.debug(`lease renewal stopped (${describeError(err)}): it expires`)
  } finally {
    machine.free()
  }
}
