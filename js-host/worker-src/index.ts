/**
 * fleetcache for workers-style runtimes (workerd / Cloudflare Workers, Next's edge runtime, Deno,
 * browsers): the same wasm engine as the Node package, instantiated from a `WebAssembly.Module`
 * or bytes (no `fs`), with an in-process store, or a transport the host supplies
 * (docs/transport.md). ESM, no Node APIs.
 *
 * `createCache` returns an object with the shape of Next 16's `'use cache'` handler (`get`, `set`,
 * `refreshTags`, `getExpiration`, `updateTags`). Its `get` steps the core's read machine with the
 * Node handlers' read driver (`./read-driver.js`), so it makes the same decisions (leases with a
 * transport, stale presentation by who the answer is for, judged by their `./consumer-rule.js`);
 * tag synchronisation is their own module (`./tag-sync.js`), and `set` runs their write driver
 * (`./write-driver.js`). The Node handlers add node-redis, the in-process tier and the in-flight
 * write map.
 */
import * as binding from '../wasm/web/fleetcache_wasm.js'
import {
  bounds,
  Consumer,
  defaults,
  Engine,
  initSync,
  Interface,
  Outcome,
  ReadMachine,
  Served,
  WriteMachine,
} from '../wasm/web/fleetcache_wasm.js'
import { joinTags } from './argv.js'
import { BreakerLog, FailedProbeError, type BreakerChange } from './breaker-log.js'
import { inflateStored, streamCodecs } from './compression.js'
import { willServerCache, type WorkUnitStorage } from './consumer-rule.js'
import { describe, prefixed, type Logger } from './log.js'
import { leaseToken, logAnswer, ReadMachines, readEntry, type ReadIo } from './read-driver.js'
import { TagSync } from './tag-sync.js'
import { CircuitOpenError, RedisTimeoutError } from './transport-errors.js'
import { writeEntry, type WriteIo } from './write-driver.js'

/** The compiled engine, or its bytes (`fleetcache/wasm`). Compiling bytes needs a runtime that allows it. */
export type WasmSource = WebAssembly.Module | BufferSource

/** Redis replies as the engine expects them (https://github.com/fleetcache/fleetcache/blob/main/docs/transport.md). */
export type Reply = null | number | string | Uint8Array | Reply[]

/**
 * Executes Redis commands for the engine. Bulk-string replies must be `Uint8Array`s (binary
 * safe), nil replies `null`. Reject with an error whose `code` is `ERR_REDIS_REPLY` (and whose
 * message is Redis's, e.g. `NOSCRIPT ...`) when Redis answered with an error, `ERR_REDIS_TIMEOUT`
 * when `timeoutMs` passed, anything else when Redis could not be reached.
 */
export interface Transport {
  send(
    argv: readonly (string | Uint8Array)[],
    options: { kind: 'read' | 'write'; timeoutMs: number },
  ): Promise<Reply>
}

/** Next 16's `'use cache'` entry. */
export interface CacheEntry {
  value: ReadableStream<Uint8Array>
  tags: string[]
  stale: number
  timestamp: number
  expire: number
  revalidate: number
}

export interface WorkerCacheOptions {
  /** The engine: a `WebAssembly.Module` (what a `.wasm` import gives) or its bytes. */
  module: WasmSource
  /** Where entries and tag state live. Default: an in-process store in this isolate. */
  transport?: Transport | undefined
  /** First segment of every key. Default: the core's (`defaults()`). */
  prefix?: string | undefined
  /** This deployment's namespace. Default empty (the engine uses a fixed segment). */
  deploymentId?: string | undefined
  /** Key space, as `cacheHandlers` names (`default`, `remote`, ...). Default `default`. */
  name?: string | undefined
  /** Byte budget of the in-process store. Default: the core's (`defaults()`). */
  memoryBytes?: number | undefined
  /** Largest entry stored, in bytes. Default: the core's (`defaults()`). */
  maxEntryBytes?: number | undefined
  /** Cap on any entry's lifetime, in seconds. Default: the core's (`defaults()`). */
  maxTtlSeconds?: number | undefined
  /**
   * Entries with a payload of at least this many bytes are stored compressed (with a
   * transport; never in memory); `false` or 0 stores every entry plain. Default: the core's
   * (`defaults()`). Entries written compressed by the Node handlers are read either way.
   */
  compressMinBytes?: number | false | undefined
  /**
   * The clock, in milliseconds since the epoch, read for every decision (lifetimes, tag
   * revalidations, the breaker, the outbox's backoff). Default: `performance.timeOrigin +
   * performance.now()`, the scale Next stamps entries with (as the Node handlers use).
   */
  now?: (() => number) | undefined
  /**
   * One line per cache decision, passed to `onLog` at `debug`, as the Node handlers' `debug`
   * option prints them. Default off: the engine then builds none.
   */
  debug?: boolean | undefined
  /**
   * Next's `workUnitAsyncStorage`, what
   * `next/dist/server/app-render/work-unit-async-storage.external` exports, for a host that
   * bundles Next with the worker and can import it: each read then asks it who the answer is
   * for, by the Node handlers' rule (https://github.com/fleetcache/fleetcache/blob/main/docs/single-flight.md). A read that serves a response (a
   * store of type `request`, among others) may get a stale entry, and, as a lease follower, a
   * stale entry as fresh; a read whose answer may be stored (a prerender, a `'use cache'` scope
   * whose consumer caches, a type the rule does not know, a `getStore` that throws) never gets
   * a stale entry. Nor does a read that sees no store: Next 16.2 and later run every
   * `'use cache'` read in a work unit, so the storage given is likely not the copy Next runs in
   * (`onError` hears it once). Default: none, and every read is taken to be stored.
   */
  workUnitAsyncStorage?: WorkUnitStorage | undefined
}

/**
 * The core's settings: `defaults()` gives every setting's default and `bounds()` the limits the
 * engine checks them against. Call after the module is instantiated (`createEngine`).
 */
export { bounds, defaults, Engine, Interface, Outcome }

/**
 * What the guard throws instead of sending while the engine's circuit breaker is open (`code`
 * `ERR_REDIS_CIRCUIT_OPEN`): the Node handlers' class itself (`src/transport-errors.ts`).
 */
export { CircuitOpenError }

/** What `workUnitAsyncStorage` must have: Next's storage's `getStore`. */
export type { WorkUnitStorage }

/** This runtime's codecs for compressed entries (the web platform's streams). */
const codecs = streamCodecs(binding.Codec)

/** What `script` rejects with in memory: the read machine hears "no lease". */
function noRedis(): Error {
  return Object.assign(new Error('no transport: no leases'), { code: 'ERR_NO_REDIS' })
}

/** Wall-clock milliseconds on Next's scale (see `WorkerCacheOptions.now`). */
function performanceNow(): number {
  return performance.timeOrigin + performance.now()
}

/**
 * Instantiates the wasm engine once per isolate (later calls reuse it; the module argument is
 * then ignored) and creates an engine. Throws an `Error` with a `code` on invalid settings.
 */
export function createEngine(
  module: WasmSource,
  config: Omit<
    WorkerCacheOptions,
    'module' | 'transport' | 'name' | 'now' | 'workUnitAsyncStorage'
  > = {},
): Engine {
  initSync({ module })
  // Only the settings given: every default is the engine's own, as in Node.
  const settings: Record<string, string | number | boolean> = {}
  if (config.prefix !== undefined) settings.prefix = config.prefix
  if (config.deploymentId !== undefined) settings.deployment = config.deploymentId
  if (config.maxEntryBytes !== undefined) settings.maxEntryBytes = config.maxEntryBytes
  if (config.maxTtlSeconds !== undefined) settings.maxTtlSeconds = config.maxTtlSeconds
  if (config.memoryBytes !== undefined) settings.memoryBytes = config.memoryBytes
  if (config.compressMinBytes !== undefined) {
    settings.compressMinBytes = config.compressMinBytes === false ? 0 : config.compressMinBytes
  }
  // Without it the read machines write no debug line (as in Node, runtime.ts).
  if (config.debug === true) settings.debug = true
  return new Engine(settings)
}

interface Store {
  get(key: string, now: number): Promise<Uint8Array | null>
  /**
   * Writes `value` until `expiresAt` (`ttlMs` from the write's planning): a plain `SET` when
   * `argv` is empty, else the engine's script with `value` appended. Rejects on failure.
   */
  write(
    key: string,
    value: Uint8Array,
    ttlMs: number,
    argv: string[],
    expiresAt: number,
  ): Promise<void>
}

/** Bytes in a Map; the engine's index decides recency, lifetime and eviction under the budget. */
export class MemoryStore implements Store {
  private readonly bytes = new Map<string, Uint8Array>()
  constructor(private readonly engine: Engine) {}

  get(key: string, now: number): Promise<Uint8Array | null> {
    if (!this.engine.memoryTouch(key, now)) {
      this.bytes.delete(key)
      return Promise.resolve(null)
    }
    return Promise.resolve(this.bytes.get(key) ?? null)
  }

  write(
    key: string,
    value: Uint8Array,
    _ttlMs: number,
    _argv: string[],
    expiresAt: number,
  ): Promise<void> {
    const evicted = this.engine.memoryInsert(key, value.byteLength, expiresAt, 0)
    this.bytes.set(key, value)
    if (evicted !== '') for (const k of evicted.split('\0')) this.bytes.delete(k)
    return Promise.resolve()
  }
}

function code(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
}

/**
 * Puts the engine's breaker and budgets in front of the host's transport: the engine admits
 * each command, gives its deadline, and hears how it ended. The breaker's lines are the Node
 * guard's (`BreakerLog`), and so is a failed probe's rejection (`FailedProbeError`: the lines
 * of the command that was the probe are debug lines, passed to `onLog` only with `debug` on).
 */
class Guarded {
  private readonly breaker: BreakerLog

  constructor(
    private readonly engine: Engine,
    private readonly inner: Transport,
    private readonly now: () => number,
    log: Logger,
  ) {
    this.breaker = new BreakerLog(engine, binding, log)
  }

  /** `lease`: the lease protocol, with the engine's lease budget (a write for the transport). */
  async send(
    argv: readonly (string | Uint8Array)[],
    kind: 'read' | 'write' | 'lease',
  ): Promise<Reply> {
    const { CommandKind, CommandResult } = binding
    const k =
      kind === 'read' ? CommandKind.Read : kind === 'lease' ? CommandKind.Lease : CommandKind.Write
    const permit = this.engine.admit(k, this.now())
    if (permit === 0) throw new CircuitOpenError()
    const timeoutMs = this.engine.budgetMs(k)
    let timer: ReturnType<typeof setTimeout> | undefined
    let reply: Reply
    try {
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(
            new RedisTimeoutError(
              `redis ${String(argv[0])} took longer than ${String(timeoutMs)} ms`,
            ),
          )
        }, timeoutMs + this.engine.connectBudgetMs)
      })
      const sent = this.inner.send(argv, { kind: kind === 'read' ? 'read' : 'write', timeoutMs })
      reply = await Promise.race([sent, deadline])
    } catch (err) {
      clearTimeout(timer)
      const result =
        code(err) === 'ERR_REDIS_REPLY'
          ? CommandResult.ErrorReply
          : code(err) === 'ERR_REDIS_TIMEOUT'
            ? CommandResult.Timeout
            : CommandResult.NoAnswer
      if (this.settle(permit, result, argv) === 'probe-failed') throw new FailedProbeError(err)
      throw err
    }
    clearTimeout(timer)
    this.settle(permit, CommandResult.Reply, argv)
    return reply
  }

  /** Reports how the command ended to the engine, and a change of the breaker's state it made. */
  private settle(
    permit: number,
    result: binding.CommandResult,
    argv: readonly (string | Uint8Array)[],
  ): BreakerChange | undefined {
    const t = this.now()
    const reported = this.engine.report(permit, result, t)
    if ((reported & binding.Reported.BreakerChanged) === 0) return undefined
    return this.breaker.changed(result, String(argv[0]), t)
  }

  /** An `EVALSHA` planned by the engine, loading the script on `NOSCRIPT`. */
  async script(
    argv: readonly (string | Uint8Array)[],
    kind: 'read' | 'write' | 'lease',
  ): Promise<Reply> {
    try {
      return await this.send(argv, kind)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      const sha = argv[1]
      const lua = typeof sha === 'string' ? this.engine.scriptSource(sha) : undefined
      if (lua === undefined) throw err
      return this.send(['EVAL', lua, ...argv.slice(2)], kind)
    }
  }
}

class TransportStore implements Store {
  constructor(private readonly guarded: Guarded) {}

  /** Rejects on failures, the open breaker's included: the read machine decides what follows. */
  async get(key: string): Promise<Uint8Array | null> {
    const reply = await this.guarded.send(['GET', key], 'read')
    if (reply === null) return null
    if (!(reply instanceof Uint8Array)) throw new Error('GET returned a non-binary reply')
    return reply
  }

  async write(key: string, value: Uint8Array, ttlMs: number, argv: string[]): Promise<void> {
    if (argv.length > 0) {
      await this.guarded.script([...argv, value], 'write')
      return
    }
    await this.guarded.send(
      ['SET', key, value, 'PX', String(Math.max(1, Math.round(ttlMs)))],
      'write',
    )
  }
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  let length = 0
  const reader = stream.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    chunks.push(value)
    length += value.byteLength
  }
  const out = new Uint8Array(length)
  let offset = 0
  for (const c of chunks) {
    out.set(c, offset)
    offset += c.byteLength
  }
  return out
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes)
      controller.close()
    },
  })
}

/** A `'use cache'`-shaped handler over the engine; errors become misses, as in Node. */
export class WorkerCache {
  readonly engine: Engine
  private readonly store: Store
  private readonly guarded: Guarded | undefined
  private readonly iface: Interface
  private readonly now: () => number
  /** Next's work-unit storage, the host's; null when not given: every read may be stored. */
  private readonly workUnits: WorkUnitStorage | null
  /** A read saw no store in `workUnits`, and `onError` was told (once). */
  private storeMissed = false
  private readonly tags: TagSync
  /**
   * Where the shared modules' lines go: warnings and errors to `onError`, info lines to
   * `onLog`, and debug lines to `onLog` with `debug` on.
   */
  private readonly log: Logger
  /** What the read driver sends and awaits through: this isolate's store or the transport. */
  private readonly io: ReadIo
  /** Read machines done with, for the next reads (`reuseUseCache`), and entry keys. */
  private readonly machines = new ReadMachines<ReadMachine>(binding)
  /** The engine's maps hash with a drawn seed (`engine.hashSeeded`); see `drawSeed`. */
  private seeded: boolean
  /**
   * Called with a message when something failed and was turned into a miss or a skip, and with
   * the tag synchronisation's warnings and errors (the Node handlers' log lines). What it throws
   * is ignored: the call that reported settles as it would have, a hit still served.
   */
  onError: (message: string) => void = (m) => {
    console.error(prefixed(m))
  }

  /**
   * Called with the lines that report no failure, as the Node handlers print them with
   * `console.log`: at `info`, the end of an outage (the circuit breaker's closing, `redis
   * circuit closed: ...`, and the queued revalidations' replay, `redis is back: ...`) and the
   * tag state's repair; at `debug`, with the `debug` option only, one line per cache decision
   * and a failed probe's lines. Default: `console.log` with the `[fleetcache]` prefix, where
   * the default `onError` writes with `console.error`. What it throws is ignored, as for
   * `onError`.
   */
  onLog: (level: 'info' | 'debug', message: string) => void = (_level, m) => {
    console.log(prefixed(m))
  }

  /**
   * Passes `message` to `onError`, swallowing what it throws. `onError` is the application's
   * (the default writes to a console the application may have replaced), and a report is
   * bookkeeping: its throw must not fail the call that made it (a rejected `get` is a failed
   * render), as the Node handlers' logger does not (`log.ts`). Nowhere is left to report it.
   */
  private report(message: string): void {
    try {
      this.onError(message)
    } catch {
      // The application's onError failed.
    }
  }

  /** Passes a line to `onLog`, swallowing what it throws, for the reason `report` does. */
  private note(level: 'info' | 'debug', message: string): void {
    try {
      this.onLog(level, message)
    } catch {
      // The application's onLog failed.
    }
  }

  constructor(options: WorkerCacheOptions) {
    // Unknown: a JavaScript caller may pass anything, null included.
    const workUnits: unknown = options.workUnitAsyncStorage
    // Refused here rather than met as a throw on every read, each then taken to be stored.
    if (
      workUnits !== undefined &&
      (workUnits === null || typeof (workUnits as Partial<WorkUnitStorage>).getStore !== 'function')
    ) {
      throw new TypeError('workUnitAsyncStorage: expected an object with a getStore() method')
    }
    this.workUnits = workUnits === undefined ? null : (workUnits as WorkUnitStorage)
    this.engine = createEngine(options.module, options)
    this.seeded = this.engine.hashSeeded
    this.iface = Interface.useCache(options.name ?? 'default')
    this.now = options.now ?? performanceNow
    const report = (m: string): void => {
      this.report(m)
    }
    const debug = options.debug === true
    // As the Node handlers' logger (log.ts `createLogger`), with onError for console.error
    // and onLog for console.log.
    this.log = {
      info: (m) => {
        this.note('info', m)
      },
      warn: report,
      error: report,
      debug: debug
        ? (m) => {
            this.note('debug', m)
          }
        : () => undefined,
      debugEnabled: debug,
    }
    const log = this.log
    this.guarded = options.transport
      ? new Guarded(this.engine, options.transport, this.now, log)
      : undefined
    this.store = this.guarded ? new TransportStore(this.guarded) : new MemoryStore(this.engine)
    // In memory only, this isolate's own revalidations are the whole tag state.
    if (this.guarded === undefined) this.engine.markStandalone()
    const guarded = this.guarded
    // No timer: an isolate's background work may be cut off with the response, so loading the
    // tag state and retrying the outbox happen on requests (see `TagSyncOptions.timer`).
    this.tags = new TagSync(this.engine, {
      enums: binding,
      script: guarded === undefined ? undefined : (argv, kind) => guarded.script(argv, kind),
      now: this.now,
      log,
    })
    const store = this.store
    this.io = {
      binding,
      now: this.now,
      // Unref'd where the runtime has it (Node, Next's edge runtime there), as `ReadIo.sleep`
      // requires: a lease renewal's wait kept a process open for up to its interval (3.3 s).
      sleep: (ms) =>
        new Promise((resolve) => {
          const timer: unknown = setTimeout(resolve, ms)
          ;(timer as { unref?: () => void }).unref?.()
        }),
      refresh: () => this.refreshTags(),
      // No in-process tier here, and no writes in flight to read: `set` awaits its write.
      tierBytes: () => null,
      remember: () => undefined,
      forget: () => undefined,
      get: (key) => store.get(key, this.now()),
      // No `shares`: workerd cancels a request's continuations on a promise another request
      // created once that request has completed or been cancelled, so every read here sends
      // its own GET and poll.
      script: (argv) =>
        guarded === undefined ? Promise.reject(noRedis()) : guarded.script(argv, 'lease'),
      debug: (line) => {
        log.debug(line)
      },
      inflate: (stored) => inflateStored(this.engine, stored, codecs),
    }
  }

  /**
   * Draws the engine's hash seed when it could not be drawn as the engine was made: workerd
   * refuses random values in a module's global scope, where a Worker usually makes its cache,
   * and allows them in a request (decision 0033). Every request-scoped call begins here, so the
   * maps keyed by request input get a seed no client knows before the first request's keys
   * reach them; once drawn, never again. A refused draw changes nothing (the next call tries
   * again), and a failed engine is left to the call that follows, which reports it.
   */
  private drawSeed(): void {
    if (this.seeded) return
    try {
      this.seeded = this.engine.drawHashSeed()
    } catch {
      // The engine has failed: the call this precedes meets the same failure and reports it.
    }
  }

  /**
   * Who the read starting now answers, asked before its first await (Next's store is the
   * caller's async context). No store is taken as a read that may be stored, unlike in Node:
   * Next 16.2 and later throw before they call a `'use cache'` handler outside a work unit, so
   * a storage that shows none is likely not the copy Next runs in (a second copy of its module
   * in the bundle), and taking its reads to serve would hand prerenders stale entries as fresh.
   */
  private consumer(): Consumer {
    const caches = willServerCache(this.workUnits)
    if (caches === false) return Consumer.Serves
    if (caches === undefined && !this.storeMissed) {
      this.storeMissed = true
      this.report(
        "workUnitAsyncStorage gave no work-unit store for a read, taken to be stored (a stale entry is a miss; reported once): Next 16.2 and later run every 'use cache' read in one, so it is likely not the storage of the copy of Next the application runs",
      )
    }
    return Consumer.Caches
  }

  /** Where entries live: `memory` (this isolate) or `transport`. */
  get storeKind(): 'memory' | 'transport' {
    return this.guarded ? 'transport' : 'memory'
  }

  async get(cacheKey: string, softTags: string[] = []): Promise<CacheEntry | undefined> {
    this.drawSeed()
    const engine = this.engine
    try {
      // Who the answer is for, by the Node handlers' rule: where it cannot be known, a read
      // whose answer may be stored, which never gets a stale entry (docs/single-flight.md).
      // No write in flight either (`set` awaits its own): the machine does not ask for one.
      const consumer = this.consumer()
      const soft = joinTags(softTags)
      const machine = this.machines.open(
        cacheKey,
        () =>
          ReadMachine.useCache(
            engine,
            this.iface,
            cacheKey,
            soft,
            false,
            consumer,
            leaseToken(),
            this.now(),
          ),
        (m, entryKey) => {
          m.reuseUseCache(engine, this.iface, cacheKey, entryKey, soft, false, consumer, this.now())
        },
      )
      const { answer, bytes, readError } = await readEntry(engine, machine, this.io, {
        entryKey: this.machines.entryKey(cacheKey, machine),
        release: () => {
          this.machines.release(machine)
        },
      })
      if (answer === undefined) return undefined
      try {
        // The machine's error lines, with the failed read's own text when there was one, as
        // the Node handlers log them.
        logAnswer(this.log, answer, readError)
        if (bytes === null || answer.served === (Served.Miss as number)) return undefined
        return {
          value: streamOf(bytes.subarray(answer.payloadOffset)),
          tags: answer.tags(),
          stale: answer.stale,
          timestamp: answer.timestamp,
          expire: answer.expire,
          revalidate: answer.revalidate,
        }
      } finally {
        // The value is built by now: a release that throws (a machine a trap left borrowed)
        // is the pool's loss, not the caller's hit.
        try {
          answer.free()
        } catch (err) {
          this.report(
            `get of ${cacheKey}: its read machine could not be released, its value served: ${describe(err)}`,
          )
        }
      }
    } catch (err) {
      this.report(`get failed, treated as a miss: ${describe(err)}`)
      return undefined
    }
  }

  async set(cacheKey: string, pendingEntry: Promise<CacheEntry> | CacheEntry): Promise<void> {
    this.drawSeed()
    const engine = this.engine
    try {
      const entry = await pendingEntry
      const payload = await readAll(entry.value)
      const machine = WriteMachine.useCache(
        engine,
        this.iface,
        cacheKey,
        joinTags(entry.tags),
        entry.timestamp,
        entry.revalidate,
        entry.expire,
        entry.stale,
        payload.byteLength,
        this.now(),
        // One clock here: entries keep Next's stamps.
        Number.NaN,
      )
      await writeEntry(engine, machine, payload, this.writeIo)
    } catch (err) {
      this.report(`set failed, entry not stored: ${describe(err)}`)
    }
  }

  /** The write driver's host side: this isolate's store, no tier, lines as `log`'s. */
  private readonly writeIo: WriteIo = {
    enums: binding,
    now: () => this.now(),
    store: (key, value, ttlMs, argv, until) => this.store.write(key, value, ttlMs, argv, until),
    script: async (argv) => {
      if (this.guarded !== undefined) await this.guarded.script(argv, 'write')
    },
    // Entries live in the store itself: nothing is kept beside it.
    remember: () => undefined,
    markLocal: () => undefined,
    compress: (codec, level, data) => codecs.compress(codec, level, data),
    // No `ordersWrites`: a write here would await another request's (see `shares` above).
    describe,
    // Warnings reach onError too, as the tag synchronisation's do. Read when `set` runs, by
    // which the constructor has made `log`.
    log: {
      debug: (line) => {
        this.log.debug(line)
      },
      warn: (line) => {
        this.report(line)
      },
      error: (line) => {
        this.report(line)
      },
    },
  }

  /**
   * Pulls tag changes from the transport (nothing to do in memory). When the whole state must
   * be loaded, it is loaded page by page, up to a bounded number of calls per request; until it
   * is, nothing tagged is judged fresh. Never rejects.
   */
  refreshTags(): Promise<void> {
    this.drawSeed()
    return this.tags.refresh()
  }

  /**
   * The latest revalidation of `tags` this instance knows of. Never rejects: when the engine
   * cannot answer (it has failed), the tags count as revalidated now, so nothing held for them
   * elsewhere is served unjudged.
   */
  getExpiration(tags: string[]): Promise<number> {
    this.drawSeed()
    const now = this.now()
    try {
      return Promise.resolve(this.engine.getExpiration(joinTags(tags), now))
    } catch (err) {
      this.report(`getExpiration failed, answered as revalidated now: ${describe(err)}`)
      return Promise.resolve(now)
    }
  }

  /**
   * Records a revalidation here at once and, with a transport, sends it, in order after the
   * ones still queued in the engine's outbox, as the Node handlers do: one Redis refuses for
   * want of a permission (`NOPERM`) is dropped and one that keeps meeting an error no retry
   * fixes is parked (the engine decides), so neither blocks the ones behind it; any other
   * failure keeps it queued, and the engine's backoff says when a later call may send it.
   * Rejects only with an `EngineFailedError` (`code` `ERR_ENGINE_FAILED`): the engine has
   * failed, before recording the revalidation or before sending it.
   */
  updateTags(tags: string[], durations?: { expire?: number }): Promise<void> {
    this.drawSeed()
    return this.tags.update(tags, durations, this.now())
  }
}

/** A `'use cache'`-shaped cache over the engine (see {@link WorkerCache}). */
export function createCache(options: WorkerCacheOptions): WorkerCache {
  return new WorkerCache(options)
}
