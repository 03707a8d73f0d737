import { now } from './clock'
import type { Engine } from './wasm'
import type { Transport } from './transport'
import { RedisReplyError } from './transport'
import { splitArgv } from './argv'

/** Where envelopes live: Redis, or this process's memory when no Redis is configured. */
export interface EntryStore {
  /**
   * The stored envelope, or null. Rejects on transport errors, the open breaker's included (the
   * read machine turns them into misses, or serves the copy this process holds).
   */
  get(key: string): Promise<Buffer | null>
  /** `get` answered now, by a store that holds its entries in this process (`ReadIo.getNow`). */
  getNow?(key: string, now: number): Buffer | null
  /** With `getNow`: the bytes held for `key`, not marked used (`ReadIo.held`). */
  held?(key: string): Buffer | null
  /**
   * Writes an envelope for `ttlMs` (the write machine's Store step): `SET` when `script` is
   * empty, else the engine's `EVALSHA` argv with the value appended (it writes the entry and
   * releases this process's lease in one step). Touches no tier: the driver keeps the copy
   * (`remember`) and marks it local when the write fails. `expiresAt`: when the entry's TTL
   * ends (a store without a clock of its own counts from it). Rejects with the transport's error.
   */
  write(
    key: string,
    value: Buffer,
    ttlMs: number,
    script: string[],
    expiresAt: number,
  ): Promise<void>
  /** The tier's copy of `key` never reached Redis: served only until Redis answers again. */
  markLocal(key: string): void
  /**
   * This process's in-process tier: the bytes held under `key`, or null. The read machine asks
   * the engine's tier index whether they are usable and judges them before serving them.
   */
  tierBytes(key: string): Buffer | null
  /**
   * Keeps an envelope in the in-process tier until `expiresAt`; for outages only when
   * `outageOnly`; a page copy bound to page generation `pageGen` when it is not 0; `order` the
   * number the read's command went out under (the read machine's tier action says all four;
   * 0, this process's own write, which the engine orders when the write ends).
   */
  remember(
    key: string,
    value: Buffer,
    expiresAt: number,
    outageOnly?: boolean,
    pageGen?: number,
    order?: number,
  ): void
  /** Drops `key` from the in-process tier. */
  forget(key: string): void
  /**
   * The decoded value memoised for the tier's copy of `key` when `bytes` is that very copy
   * (the same object), else undefined. See `keepDecoded`.
   */
  decoded?(key: string, bytes: Uint8Array): { value: unknown } | undefined
  /**
   * Keeps `value`, decoded from `bytes`, alongside the tier's copy of `key` when `bytes` is
   * that very copy, charged to the tier's budget as the engine reckons it from the copy's size
   * and `structural`, the count of `{`, `[`, `:` and `,` bytes in the value's JSON part
   * (`memoryCharge`): the memo lives and dies with the slot (replaced, forgotten, evicted) and
   * is not kept when the copy and its charge do not fit the whole budget.
   */
  keepDecoded?(key: string, bytes: Uint8Array, value: unknown, structural: number): void
  readonly kind: 'redis' | 'memory'
}

/** A `GET`'s reply as the entry's bytes: null when there is none. */
function getReply(reply: unknown): Buffer | null {
  if (reply === null || reply === undefined) return null
  if (!Buffer.isBuffer(reply)) throw new Error('GET returned a non-string reply')
  return reply
}

/**
 * Redis behind an in-process tier: a byte-bounded LRU of envelopes whose index (recency,
 * sizes, lifetimes, eviction) is the engine's and whose bytes stay in a JS Map, so a tier hit
 * copies nothing through wasm. Concurrent reads of one key share a `GET` in the read driver.
 * A tier entry is only ever served after the read machine has judged it against its lifetime and
 * the tag mirror, like a Redis reply.
 */
export class RedisStore implements EntryStore {
  readonly kind = 'redis'
  private readonly bytes = new Map<string, Buffer>()
  /**
   * Decoded values of tier copies (`keepDecoded`), under the same keys. An entry is removed
   * wherever its key's bytes are removed or replaced, and its charge leaves the engine's index
   * with the key's item, so the budget bounds the bytes and the memos together.
   */
  private readonly memos = new Map<string, { bytes: Buffer; value: unknown }>()
  /** False with a zero tier budget: every tier call is then skipped, not refused by wasm. */
  private readonly tiered: boolean

  /** `tierBytes`: the in-process tier's budget (`memoryBytes`); 0 turns the tier off. */
  constructor(
    private readonly transport: Transport,
    private readonly engine: Engine | undefined,
    tierBytes: number,
  ) {
    this.tiered = engine !== undefined && tierBytes > 0
  }

  tierBytes(key: string): Buffer | null {
    if (!this.tiered) return null
    return this.bytes.get(key) ?? null
  }

  remember(
    key: string,
    value: Buffer,
    expiresAt: number,
    outageOnly = false,
    pageGen = 0,
    order = 0,
  ): void {
    if (this.engine === undefined || !this.tiered) return
    // The value's size only: the engine charges the item's bookkeeping with it (this Map's
    // entry, the Buffer object, the key), from the core's one measured constant.
    const evicted = this.engine.memoryInsert(key, value.byteLength, expiresAt, order)
    // Refused (larger than the whole budget): nothing to keep, nothing to copy.
    // A new copy replaces the slot, and the index dropped the old copy's charge with it.
    this.memos.delete(key)
    if (evicted.split('\0').includes(key)) {
      this.bytes.delete(key)
      return
    }
    if (outageOnly || pageGen !== 0) this.engine.memoryMark(key, outageOnly, pageGen)
    this.bytes.set(key, owned(value))
    this.drop(evicted)
  }

  forget(key: string): void {
    if (this.engine === undefined || !this.tiered) return
    this.engine.memoryRemove(key)
    this.bytes.delete(key)
    this.memos.delete(key)
  }

  decoded(key: string, bytes: Uint8Array): { value: unknown } | undefined {
    const memo = this.memos.get(key)
    return memo !== undefined && memo.bytes === bytes ? memo : undefined
  }

  keepDecoded(key: string, bytes: Uint8Array, value: unknown, structural: number): void {
    if (this.engine === undefined || !this.tiered) return
    const held = this.bytes.get(key)
    if (held === undefined || held !== bytes) return
    const evicted = this.engine.memoryCharge(key, structural)
    if (evicted === undefined) return
    this.memos.set(key, { bytes: held, value })
    this.drop(evicted)
  }

  /** Drops the bytes and memos of the NUL-joined keys the index evicted. */
  private drop(evicted: string): void {
    if (evicted === '') return
    for (const k of evicted.split('\0')) {
      this.bytes.delete(k)
      this.memos.delete(k)
    }
  }

  get(key: string): Promise<Buffer | null> {
    // One `then`, not an async function and its await: a promise fewer per Redis read.
    return this.transport.send(['GET', key], { kind: 'read' }).then(getReply)
  }

  async write(key: string, value: Buffer, ttlMs: number, script: string[]): Promise<void> {
    if (script.length > 0) {
      try {
        await sendWithValue(this.transport, script, value, this.engine)
        return
      } catch (err) {
        // A cluster-enabled Redis behind one URL refuses the page write script, whose keys
        // span the entry's slot and the tag state's: the entry is written as a process that
        // does not announce would (decision 0031), and the next page write tries again (the
        // URL may lead to a plain Redis by then). No process serves page copies from its tier
        // there: none learnt from CLUSTER SLOTS that the server is plain (runtime.ts).
        const crossSlot = err instanceof RedisReplyError && err.message.includes('CROSSSLOT')
        const fallback = crossSlot ? this.engine?.unannouncedWrite(script.join('\0')) : undefined
        if (fallback === undefined) throw err
        if (fallback !== '') {
          await sendWithValue(this.transport, splitArgv(fallback), value, this.engine)
          return
        }
      }
    }
    await this.transport.send(['SET', key, value, 'PX', String(Math.max(1, Math.round(ttlMs)))], {
      kind: 'write',
    })
  }

  markLocal(key: string): void {
    if (this.tiered) this.engine?.memoryMarkLocal(key)
  }
}

/**
 * The embedded store: bytes in a Map, while the engine's index decides recency, lifetime and
 * eviction under the byte budget.
 */
export class MemoryStore implements EntryStore {
  readonly kind = 'memory'
  private readonly bytes = new Map<string, Buffer>()
  constructor(private readonly engine: Engine) {}

  get(key: string): Promise<Buffer | null> {
    return Promise.resolve(this.getNow(key, now()))
  }

  /** `get` without the promise: the read driver takes it in the same turn (`ReadIo.getNow`). */
  getNow(key: string, now: number): Buffer | null {
    if (!this.engine.memoryTouch(key, now)) {
      this.bytes.delete(key)
      return null
    }
    return this.bytes.get(key) ?? null
  }

  /** The bytes held, whatever the index says of them: the read machine asks it (`ReadIo.held`). */
  held(key: string): Buffer | null {
    return this.bytes.get(key) ?? null
  }

  write(
    key: string,
    value: Buffer,
    _ttlMs: number,
    _script: string[],
    expiresAt: number,
  ): Promise<void> {
    const evicted = this.engine.memoryInsert(key, value.byteLength, expiresAt, 0)
    this.bytes.set(key, owned(value))
    if (evicted !== '') for (const k of evicted.split('\0')) this.bytes.delete(k)
    return Promise.resolve()
  }

  /** Nothing here is ever out of reach. */
  markLocal(): void {
    /* no Redis to disagree with */
  }

  /** The whole store is in-process already: `get` is the tier. */
  tierBytes(): Buffer | null {
    return null
  }

  remember(): void {
    /* get and set keep the bytes already */
  }

  forget(key: string): void {
    this.engine.memoryRemove(key)
    this.bytes.delete(key)
  }
}

/**
 * `value` in memory of its own size, so that what a tier keeps is what its budget counts. A
 * Redis reply is a view into node-redis's socket read chunk (up to 64 KiB, shared with every
 * reply read with it), and a small `Buffer.from` copy lands in one of Node's 8 KiB pool slabs:
 * kept as they are, one small entry would keep the whole chunk or slab alive. A value that
 * already owns its whole ArrayBuffer (a large reply node-redis assembled, a fresh encoding) is
 * kept as it is.
 */
function owned(value: Buffer): Buffer {
  if (value.byteOffset === 0 && value.byteLength === value.buffer.byteLength) return value
  const copy = Buffer.allocUnsafeSlow(value.byteLength)
  value.copy(copy)
  return copy
}

/**
 * Runs an `EVALSHA` argv with `value` appended as its last argument, loading the script on
 * `NOSCRIPT` (a restarted or failed-over Redis has an empty script cache).
 */
export async function sendWithValue(
  transport: Transport,
  argv: string[],
  value: Buffer,
  engine: Engine | undefined,
): Promise<unknown> {
  try {
    return await transport.send([...argv, value], { kind: 'write' })
  } catch (err) {
    const noscript = err instanceof RedisReplyError && err.message.startsWith('NOSCRIPT')
    const lua = noscript ? engine?.scriptSource(argv[1] ?? '') : undefined
    if (lua === undefined) throw err
    return transport.send(['EVAL', lua, ...argv.slice(2), value], { kind: 'write' })
  }
}
