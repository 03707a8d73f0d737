/**
 * Decodes the engine's packed answers: one byte buffer per call where a class with a getter per
 * field cost the wasm module an export each (crates/fleetcache-wasm/src/pack.rs,
 * docs/decisions/0028-wasm-size-budget.md). The layout is the order the engine wrote it in:
 * numbers as little-endian `f64`, byte strings and UTF-8 text as a little-endian `u32` length
 * and the bytes. Node-free.
 */

/** A packed answer did not have the layout its reader expects (a binding/glue mismatch). */
export class PackedError extends Error {
  readonly code = 'ERR_WASM_PACKED'
  constructor(message: string) {
    super(message)
    this.name = 'PackedError'
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Reads one packed answer in order; every read past its end throws `PackedError`. */
export class Unpacker {
  private at = 0
  private readonly view: DataView

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  private take(n: number, what: string): number {
    const at = this.at
    if (n > this.buf.byteLength - at) {
      throw new PackedError(
        `packed answer ends before its ${what} (${String(this.buf.byteLength)} bytes)`,
      )
    }
    this.at = at + n
    return at
  }

  /** A number. */
  num(): number {
    return this.view.getFloat64(this.take(8, 'number'), true)
  }

  /** A flag (a number, 1 or 0). */
  flag(): boolean {
    return this.num() === 1
  }

  /** A byte string: a view into the answer, not a copy. */
  bytes(): Uint8Array {
    const len = this.view.getUint32(this.take(4, 'length'), true)
    const at = this.take(len, 'bytes')
    return this.buf.subarray(at, at + len)
  }

  /** UTF-8 text; text that is not UTF-8 throws `PackedError`. */
  text(): string {
    const b = this.bytes()
    if (b.byteLength === 0) return ''
    try {
      return utf8.decode(b)
    } catch {
      throw new PackedError('packed answer holds text that is not UTF-8')
    }
  }

  /** Checks that the whole answer was read. */
  end(): void {
    if (this.at !== this.buf.byteLength) {
      throw new PackedError(
        `packed answer is ${String(this.buf.byteLength - this.at)} bytes longer than its reader`,
      )
    }
  }
}

/** A planned entry (the binding's `PlannedEntry`, from `planUseCacheEntry`/`planIncrementalEntry`). */
export interface PlannedEntry {
  /** False when the entry must not be stored; `ttlMs` is then NaN. */
  readonly stored: boolean
  /** `PX` in ms. */
  readonly ttlMs: number
  /** The tags left out for being too long, as one log line's text; `''` when none was. */
  readonly droppedTags: string
  /** The envelope header: the host stores `header ++ payload`. */
  readonly header: Uint8Array
}

/** Decodes a packed `PlannedEntry`; a buffer of another layout throws `PackedError`. */
export function plannedEntry(packed: Uint8Array): PlannedEntry {
  const u = new Unpacker(packed)
  const entry = { stored: u.flag(), ttlMs: u.num(), droppedTags: u.text(), header: u.bytes() }
  u.end()
  return entry
}

/** A stored value judged (the binding's `Inspection`, from `inspectEntry`). */
export interface Inspection {
  /** The binding's `Outcome`. */
  readonly outcome: number
  /** `NeedMore`: bytes of prefix to give next time. */
  readonly need: number
  /** Where the payload starts; 0 when the header was not decoded. */
  readonly payloadOffset: number
  /** What the lookup counted as (`hit`, `stale`, ...), `''` for `NeedMore`. */
  readonly lookup: string
  /** `Corrupt`: the error code. */
  readonly error: string
}

/** Decodes a packed `Inspection`; a buffer of another layout throws `PackedError`. */
export function inspection(packed: Uint8Array): Inspection {
  const u = new Unpacker(packed)
  const seen = {
    outcome: u.num(),
    need: u.num(),
    payloadOffset: u.num(),
    lookup: u.text(),
    error: u.text(),
  }
  u.end()
  return seen
}

/** What recording a revalidation dropped (the binding's `Revalidated`, from `revalidate`). */
export interface Revalidated {
  /** The tags left out for being too long, as one log line's text; `''` when none was. */
  readonly droppedTags: string
  /** The NUL-joined tags of the revalidation the full outbox dropped; `''` when none. */
  readonly evicted: string
}

/** Decodes a packed `Revalidated`; a buffer of another layout throws `PackedError`. */
export function revalidated(packed: Uint8Array): Revalidated {
  const u = new Unpacker(packed)
  const r = { droppedTags: u.text(), evicted: u.text() }
  u.end()
  return r
}
