import { currentTurn, now } from './clock'
import { optionsFromEnv, resolveOptions, type FleetcacheOptions } from './config'
import { joinTags } from './argv'
import { describe, shortList } from './log'
import { runtimeFor, type Runtime } from './runtime'
import {
  leaseToken,
  ReadMachines,
  readNow,
  tierHit,
  writeTexts,
  type Answer,
  type ReadHooks,
  type ReadIo,
} from './read-driver'
import { freeAnswer, logAnswerSafely, nodeReadIo, readConsumer } from './read-io'
import { abandon, writeIo } from './write-io'
import { writeEntry } from './write-driver'
import { bufferToStream, EarlyStream, streamToBuffer } from './streams'
import { engineFailure } from './tag-sync'
import type { Durations } from './tags'
import { wasm, type Interface, type ReadMachine } from './wasm'

/** Next 16's `'use cache'` entry (`next/dist/server/lib/cache-handlers/types`). */
export interface CacheEntry {
  value: ReadableStream<Uint8Array>
  tags: string[]
  stale: number
  timestamp: number
  expire: number
  revalidate: number
}

/** Next 16's `cacheHandlers` interface, as Next 16.4 calls it. */
export interface CacheHandler {
  get(cacheKey: string, softTags: string[]): Promise<CacheEntry | undefined>
  set(cacheKey: string, pendingEntry: Promise<CacheEntry>): Promise<void>
  refreshTags(): Promise<void>
  getExpiration(tags: string[]): Promise<number>
  updateTags(tags: string[], durations?: Durations): Promise<void>
}

export interface UseCacheHandlerOptions extends FleetcacheOptions {
  /**
   * Key space of this handler. Handlers with the same name share entries; `fleetcache/use-cache`
   * uses `default` for both `cacheHandlers.default` and `cacheHandlers.remote`. `[a-z-]{1,32}`.
   */
  name?: string | undefined
}

/** `Served.Miss`, read once (a property of the glue's enum object). */
const MISS = wasm.Served.Miss as number
/** `Source.Tier` and `Source.Kept`: the answer served a copy this process holds. */
const TIER = wasm.Source.Tier as number
const KEPT = wasm.Source.Kept as number
/** The answer of a tier hit answered in one call is not freed: its machine was only lent. */
const LENT = { release: (): void => undefined }

/** What a hit shows Next of an entry's bytes: the payload and the tags. */
interface Shown {
  readonly offset: number
  readonly payload: Uint8Array
  readonly tags: string[]
}

/**
 * What copies held in this process show, worked out at their first hit. A copy's bytes never
 * change, so neither do its payload and tags; it leaves with its bytes (held weakly). Every hit
 * gets the same tags array, as Next's own handler gives its stored one: Next only reads it.
 * Only short tag lists are kept, so an entry's memo stays a small part of its size.
 */
const shown = new WeakMap<Uint8Array, Shown>()
const SHOWN_TAGS_MAX_BYTES = 256

function shownOf(bytes: Uint8Array, answer: Answer): Shown {
  const memo = shown.get(bytes)
  if (memo !== undefined && memo.offset === answer.payloadOffset) return memo
  const s = {
    offset: answer.payloadOffset,
    payload: bytes.subarray(answer.payloadOffset),
    tags: answer.tags(),
  }
  if (answer.tagsBytes <= SHOWN_TAGS_MAX_BYTES) shown.set(bytes, s)
  return s
}

/** The entry Next gets for a served answer: its stream and tags, and the answer's lifetimes. */
function entryOf(
  value: ReadableStream<Uint8Array>,
  tags: string[],
  answer: { stale: number; timestamp: number; expire: number; revalidate: number },
): CacheEntry {
  const { stale, timestamp, expire, revalidate } = answer
  return { value, tags, stale, timestamp, expire, revalidate }
}

/**
 * One get's hooks into the read driver: one object with its methods on the prototype, where
 * hooks as closures would allocate four and a context for the get's variables.
 */
class GetHooks implements ReadHooks<never> {
  /** The stream built while the entry's `GET` travels (`sent`), when there is one. */
  early: EarlyStream | undefined = undefined

  constructor(
    private readonly machines: ReadMachines<ReadMachine>,
    private readonly machine: ReadMachine,
    private readonly pending: Map<string, PendingWrite>,
    private readonly cacheKey: string,
    readonly entryKey: string,
    /** Whether reads go to Redis (then `sent` builds the stream early). */
    private readonly redis: boolean,
    /** The clock the machine was made new at, in this turn (`ReadHooks.startedAt`). */
    readonly startedAt: number,
  ) {}

  release(): void {
    this.machines.release(this.machine)
  }

  ownWrite(): Promise<Buffer | null> | null {
    return this.pending.get(this.cacheKey)?.envelope ?? null
  }

  // After the read is sent: the stream for a hit is built while the reply travels.
  sent(): void {
    if (this.redis) this.early ??= new EarlyStream()
  }
}

/**
 * A write in flight: its envelope resolves as soon as it exists (null when nothing will be
 * stored), before the Redis write, so a reader never waits on the write's deadline. Undefined
 * once the write is over: the entry then lets go of the envelope, as `share`'s in-flight reads
 * let go of their replies (read-driver.ts; the same measurement: an entry removed from a map
 * that lives in V8's old generation stayed reachable until the next full collection, and
 * 60,000 writes of 10 KB at 16 in flight ran 15 full collections instead of 4 or 5).
 */
interface PendingWrite {
  envelope: Promise<Buffer | null> | undefined
}

class UseCacheHandler implements CacheHandler {
  /** Writes in flight, so a `get` of the same key sees them (Next's contract). */
  private readonly pending = new Map<string, PendingWrite>()
  /** Read machines done with, for the next reads (`reuseUseCache`), and entry keys. */
  private readonly machines: ReadMachines<ReadMachine>
  /** This handler's key space; built once, so the name is checked at construction. */
  private readonly iface: Interface
  /** What the read driver sends and awaits through (store, tier, Redis). */
  private readonly io: ReadIo

  constructor(
    private readonly rt: Runtime,
    name: string,
  ) {
    this.iface = wasm.Interface.useCache(name)
    this.io = nodeReadIo(rt)
    this.machines = new ReadMachines(this.io.binding)
  }

  async get(cacheKey: string, softTags: string[]): Promise<CacheEntry | undefined> {
    const { engine, log } = this.rt
    let hooks: GetHooks | undefined
    try {
      // Before any await: Next calls this inside the consumer's work-unit store. Throws
      // ERR_KEY_ILL_FORMED for a key with a lone surrogate: a miss and a log line.
      const soft = joinTags(softTags)
      const known = this.machines.remembered(cacheKey)
      const t = now()
      // A step of the wall clock since (a pause) asks for a pull first (docs/decisions/0036).
      this.rt.tags.noteClocks()
      const redis = this.rt.transport !== undefined
      // A hit from the tier or the embedded store, with no write of this process in flight:
      // one call into wasm and no read (`tierHit`), its checks a read's; else a read, below.
      if (known !== undefined && !this.pending.has(cacheKey)) {
        const hit = this.fromTier(cacheKey, known, soft, t)
        if (hit !== undefined) return hit
      }
      const machine = this.open(cacheKey, known, soft, t)
      hooks = new GetHooks(
        this.machines,
        machine,
        this.pending,
        cacheKey,
        known ?? this.machines.entryKey(cacheKey, machine),
        redis,
        t,
      )
      const read = readNow(engine, machine, this.io, hooks)
      // A read that needed no I/O (a hit from the tier or the embedded store) is answered in
      // this turn: taken as it is, it costs no microtask turn, as a hit of Next's own handler.
      const { answer, bytes, readError } = read instanceof Promise ? await read : read
      const early = hooks.early
      if (answer === undefined) {
        early?.discard()
        return undefined
      }
      try {
        logAnswerSafely(log, answer, 'get', cacheKey, readError)
        const served = bytes !== null && answer.served !== MISS
        if (!served) {
          early?.discard()
          return undefined
        }
        // Bytes held in this process (the tier's copy, the embedded store's) are the same
        // object hit after hit: what they show Next is worked out once.
        const { payload, tags } =
          !redis || answer.source === TIER || answer.source === KEPT
            ? shownOf(bytes, answer)
            : { payload: bytes.subarray(answer.payloadOffset), tags: answer.tags() }
        // A fresh stream for every get: Next consumes it.
        const value = early === undefined ? bufferToStream(payload) : early.fill(payload)
        return entryOf(value, tags, answer)
      } finally {
        // Never throws: the entry built above is returned.
        freeAnswer(log, answer, 'get', cacheKey)
      }
    } catch (err) {
      hooks?.early?.discard()
      log.error(`get failed, treated as a miss: ${describe(err)}`)
      return undefined
    }
  }

  /**
   * What the get of `cacheKey` returns for a fresh hit from the tier's copy of `entryKey` (or
   * the embedded store's), answered in one call into wasm with a pooled machine lent for its
   * areas (`tierHit`); or undefined, and the get reads as always (with the same machine, its
   * texts written already).
   */
  private fromTier(
    cacheKey: string,
    entryKey: string,
    soft: string,
    t: number,
  ): CacheEntry | undefined {
    const m = this.machines.take()
    if (m === undefined) return undefined
    let hit
    try {
      hit = tierHit(this.rt.engine, m, this.io, LENT, entryKey, soft, cacheKey, t)
    } catch (err) {
      // A trap leaves the machine unusable: dropped (`reuseFailed`); the read goes on.
      this.machines.reuseFailed(m, err)
      return undefined
    }
    try {
      if (hit === undefined) return undefined
      // No log lines: the engine answers so only with debugging off, and with no error.
      const { payload, tags } = shownOf(hit.bytes, hit.answer)
      return entryOf(bufferToStream(payload), tags, hit.answer)
    } finally {
      // Bookkeeping: what it throws costs the hit built above, or the read, nothing.
      try {
        this.machines.release(m)
      } catch (err) {
        this.rt.log.error(
          `get of ${cacheKey}: a read machine could not be released: ${describe(err)}`,
        )
      }
    }
  }

  /**
   * A read machine for `cacheKey`: a released one made new (with the entry key `known` for the
   * key, if any), else a new one. A method, not closures given to the pool: a get allocates
   * none for it.
   */
  private open(cacheKey: string, known: string | undefined, soft: string, t: number): ReadMachine {
    const { engine } = this.rt
    // Without one, the machine does not ask for it: one call into wasm fewer per read.
    const writeInFlight = this.pending.has(cacheKey)
    const m = this.machines.take()
    if (m !== undefined) {
      try {
        // The strings written in place: one call into wasm, where passing them makes four.
        if (writeTexts(this.io.binding, m, known ?? '', soft, cacheKey)) {
          m.reuseUseCacheTexts(
            engine,
            this.iface,
            known?.length ?? 0,
            soft.length,
            cacheKey.length,
            writeInFlight,
            readConsumer(),
            t,
          )
        } else {
          m.reuseUseCache(
            engine,
            this.iface,
            cacheKey,
            known,
            soft,
            writeInFlight,
            readConsumer(),
            t,
          )
        }
        return m
      } catch (err) {
        // A refused input leaves the machine as it was (back to the pool); a broken machine
        // is dropped and the read goes on with a new one.
        if (this.machines.reuseFailed(m, err)) throw err
      }
    }
    return wasm.ReadMachine.useCache(
      engine,
      this.iface,
      cacheKey,
      soft,
      writeInFlight,
      readConsumer(),
      leaseToken(),
      t,
    )
  }

  async set(cacheKey: string, pendingEntry: Promise<CacheEntry>): Promise<void> {
    let encoded: (value: Buffer | null) => void = () => undefined
    const written = new Promise<Buffer | null>((resolve) => {
      encoded = resolve
    })
    const slot: PendingWrite = { envelope: written }
    this.pending.set(cacheKey, slot)
    // Once the write has started, it removes the pending entry itself when it lands.
    let writing = false as boolean
    const { engine, log } = this.rt
    try {
      let machine: ReturnType<typeof wasm.WriteMachine.useCache> | undefined
      try {
        const entry = await pendingEntry
        const payload = await streamToBuffer(entry.value)
        const [t, wall] = [now(), Date.now()]
        machine = wasm.WriteMachine.useCache(
          engine,
          this.iface,
          cacheKey,
          joinTags(entry.tags),
          entry.timestamp,
          entry.revalidate,
          entry.expire,
          entry.stale,
          payload.byteLength,
          t,
          // A process whose clock a wall-clock step put ahead stamps the entry on the wall clock
          // (docs/decisions/0036).
          wall,
        )
        // The engine noted both clocks: a request compares against what it last saw.
        this.rt.tags.clocksTold(t, wall)
        await writeEntry(engine, machine, payload, {
          ...writeIo(this.rt),
          built: (value, landed) => {
            encoded(Buffer.from(value.buffer, value.byteOffset, value.byteLength))
            writing = true
            void landed.then(() => {
              this.over(cacheKey, slot)
            })
          },
        })
      } catch (err) {
        log.error(`set failed, entry not stored: ${describe(err)}`)
        // Others may be waiting for this process's regeneration: let them go.
        if (machine === undefined) void abandon(this.rt, this.iface, cacheKey)
      }
    } finally {
      if (!writing) this.over(cacheKey, slot)
      // Idempotent: a no-op when the envelope was handed out already.
      encoded(null)
    }
  }

  /** The write of `slot` is over: readers no longer see it. */
  private over(cacheKey: string, slot: PendingWrite): void {
    if (this.pending.get(cacheKey) === slot) this.pending.delete(cacheKey)
    slot.envelope = undefined
  }

  refreshTags(): Promise<void> {
    return this.rt.tags.refresh()
  }

  getExpiration(tags: string[]): Promise<number> {
    const t = now()
    try {
      return Promise.resolve(this.rt.engine.getExpiration(joinTags(tags), t))
    } catch (err) {
      // Nothing can be judged (a failed engine): as if the tags were revalidated now, so Next
      // discards what its own layers hold for them rather than serve it unjudged.
      this.rt.log.error(`getExpiration failed, answered as revalidated now: ${describe(err)}`)
      return Promise.resolve(t)
    }
  }

  async updateTags(tags: string[], durations?: Durations): Promise<void> {
    try {
      // Numbered with this run: the singular handler's report of the same revalidation, which
      // Next makes next in the same loop, skips its write (revalidationRecorded).
      await this.rt.tags.update(tags, durations, now(), currentTurn())
    } catch (err) {
      // Next's call must not resolve for a revalidation nobody got (logged where it was
      // thrown, or here).
      const failed = engineFailure(tags, err)
      if (failed !== undefined) {
        if (failed !== err) this.rt.log.error(failed.message)
        throw failed
      }
      this.rt.log.error(
        `revalidation of ${shortList(tags)} applied on this instance only, Redis not updated: ${describe(err)}`,
      )
    }
  }
}

/** A Next 16 `cacheHandlers` object. Options default to the environment of the running server. */
export function createUseCacheHandler(options?: UseCacheHandlerOptions): CacheHandler {
  let resolved
  if (options === undefined) {
    const env = optionsFromEnv()
    resolved = resolveOptions(env, env.deploymentSource)
  } else {
    resolved = resolveOptions(options)
  }
  return new UseCacheHandler(runtimeFor(resolved), options?.name ?? 'default')
}
