/**
 * Compression of stored entries, the host's side (docs/decisions/0030-compression-of-stored-
 * entries.md). The core decides: which writes compress (the write machine's `Compress` step),
 * what a compressed value's header declares, and how large its plain envelope may be
 * (`Engine.planInflation`). This module runs a runtime's native codec where the core says so
 * and holds what it made to those declarations.
 *
 * Node-free (Uint8Array, web streams, no `node:` imports): the workers entry compiles it
 * (js-host/tsconfig.worker.json), with `streamCodecs`; the Node host injects `nodeCodecs`
 * (node-codecs.ts, `node:zlib` on its thread pool).
 */

/** A runtime's codecs, by the binding's `Codec` values. */
export interface Codecs {
  /** `data` compressed with `codec` at `level` (for a codec that takes one). */
  compress(codec: number, level: number, data: Uint8Array): Promise<Uint8Array>
  /**
   * `data` inflated with `codec`. Rejects with an {@link InflateError}: `ERR_INFLATE_SIZE` as
   * soon as the output passes `maxBytes` (the codec is stopped there: a decompression bomb
   * costs no more), `ERR_INFLATE_DATA` when `data` is not a valid stream of that codec.
   */
  inflate(codec: number, data: Uint8Array, maxBytes: number): Promise<Uint8Array>
}

/** The binding's `Codec` enum (numeric, as wasm-bindgen exports it). */
export interface CodecEnum {
  readonly Deflate: number
}

/** Why a compressed value could not be inflated; `code` is `ERR_INFLATE_*`. */
export class InflateError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'InflateError'
  }
}

/**
 * The engine call this module makes (the binding's `Engine.planInflation`): undefined for a
 * plain value, else four `u32` (little-endian: `need`, `codec`, `payloadOffset`, `rawLen`)
 * followed by the plain envelope's header.
 */
export interface InflatingEngine {
  planInflation(prefix: Uint8Array, totalLen: number): Uint8Array | undefined
}

/** Bytes of numbers before the plain header in `planInflation`'s answer. */
const NUMBERS = 16

/**
 * The envelope's magic and its flags byte, whose bit 0 says compressed (docs/internals.md,
 * "Entry envelope"): looked at here so that a plain value costs no call into wasm; the core
 * checks everything else.
 */
const MAGIC = [0x46, 0x4c, 0x43, 0x45]
const FLAGS_AT = 5
const COMPRESSED = 1

/** Whether a stored value says it is a compressed envelope. */
export function storedCompressed(value: Uint8Array): boolean {
  if (value.byteLength <= FLAGS_AT) return false
  for (let i = 0; i < MAGIC.length; i++) if (value[i] !== MAGIC[i]) return false
  return ((value[FLAGS_AT] ?? 0) & COMPRESSED) === COMPRESSED
}

/** First bytes given to the engine: enough for nearly every header (as the read driver). */
const HEADER_WINDOW = 4096

/**
 * Inflations in progress, by the stored value: readers of one key in a process share one
 * `GET` (so one reply object), and then one inflation too.
 */
const inflating = new WeakMap<Uint8Array, Promise<Uint8Array>>()

/**
 * The plain envelope of a compressed stored value, as the writer's own process held it: the
 * header the core gives back, then the payload inflated to exactly the length it declares.
 * Rejects with the engine's error (`ERR_DECODE_*`, e.g. `ERR_DECODE_INFLATED_SIZE` past
 * `maxEntryBytes`, before anything is inflated) or an {@link InflateError}.
 */
export function inflateStored(
  engine: InflatingEngine,
  stored: Uint8Array,
  codecs: Codecs,
): Promise<Uint8Array> {
  let pending = inflating.get(stored)
  if (pending === undefined) {
    pending = inflate(engine, stored, codecs)
    inflating.set(stored, pending)
  }
  return pending
}

async function inflate(
  engine: InflatingEngine,
  stored: Uint8Array,
  codecs: Codecs,
): Promise<Uint8Array> {
  let plan = engine.planInflation(stored.subarray(0, HEADER_WINDOW), stored.byteLength)
  const needOf = (p: Uint8Array): number =>
    new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(0, true)
  if (plan !== undefined && needOf(plan) > 0) {
    plan = engine.planInflation(stored.subarray(0, needOf(plan)), stored.byteLength)
  }
  if (plan === undefined) return stored
  if (needOf(plan) > 0 || plan.byteLength < NUMBERS) {
    throw new InflateError('ERR_INFLATE_HEADER', 'the header did not decode')
  }
  const numbers = new DataView(plan.buffer, plan.byteOffset, NUMBERS)
  const codec = numbers.getUint32(4, true)
  const offset = numbers.getUint32(8, true)
  const rawLen = numbers.getUint32(12, true)
  const header = plan.subarray(NUMBERS)
  const raw = await codecs.inflate(codec, stored.subarray(offset), rawLen)
  if (raw.byteLength !== rawLen) {
    throw new InflateError(
      'ERR_INFLATE_LENGTH',
      `inflated to ${String(raw.byteLength)} bytes, the header declares ${String(rawLen)}`,
    )
  }
  const plain = new Uint8Array(header.byteLength + rawLen)
  plain.set(header, 0)
  plain.set(raw, header.byteLength)
  return plain
}

/** The `CompressionStream` format of each codec. */
function formats(codecs: CodecEnum): Map<number, CompressionFormat> {
  return new Map<number, CompressionFormat>([[codecs.Deflate, 'deflate']])
}

function formatOf(known: Map<number, CompressionFormat>, codec: number): CompressionFormat {
  const f = known.get(codec)
  if (f === undefined) throw new InflateError('ERR_INFLATE_CODEC', `unknown codec ${String(codec)}`)
  return f
}

/**
 * Deflate's largest ratio of output to input (zlib's documented bound, 1032:1): what a slice
 * of input can inflate to at most.
 */
const MAX_INFLATE_RATIO = 1032

/** The least input fed at once while inflating: at most about 16 MiB of output. */
const MIN_SLICE = 16 * 1024

/** A task of its own later: what the transform had ready for a slice has been read by then. */
const laterTask = (): Promise<typeof LATER> =>
  new Promise((resolve) => {
    const g = globalThis as { setImmediate?: (f: () => void) => unknown }
    const schedule = g.setImmediate ?? ((f: () => void) => setTimeout(f, 0))
    schedule(() => {
      resolve(LATER)
    })
  })
const LATER = Symbol('later')

/**
 * Runs `data` through a compression transform, reading its output as it comes: past
 * `maxBytes` of output the transform is cancelled and the result is `ERR_INFLATE_SIZE`.
 *
 * With a finite `maxBytes` the input goes in slices no larger than what could inflate to the
 * output still allowed (at least {@link MIN_SLICE}), the next only once a read of what the
 * last produced stays pending into a later task: a runtime that inflates everything one write
 * holds before the first read (workerd does, and its writes see no backpressure) then holds at
 * most one slice's output past `maxBytes`, not the whole of a decompression bomb. The pacing
 * bounds memory only; the output is the same however the reads and writes interleave.
 */
async function run(
  transform: ReadableWritablePair<Uint8Array, BufferSource>,
  data: Uint8Array,
  maxBytes: number,
): Promise<Uint8Array> {
  const writer = transform.writable.getWriter()
  const reader = transform.readable.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  // A write's or the close's failure, if any, is the reader's too (and the reader's cancel
  // fails them): not awaited, since a transform with backpressure holds a write until its
  // output is read, which only this loop does.
  const feed = (slice: Uint8Array): void => {
    // Values come from a socket or from this process's own encoding, never from shared memory.
    writer.write(slice as Uint8Array<ArrayBuffer>).catch(() => undefined)
  }
  /** Takes one read's result; true at the end of the output. */
  const take = async (r: ReadableStreamReadResult<Uint8Array>): Promise<boolean> => {
    if (r.done) return true
    total += r.value.byteLength
    if (total > maxBytes) {
      await reader.cancel()
      throw new InflateError(
        'ERR_INFLATE_SIZE',
        `inflates to more than the ${String(maxBytes)} bytes its header declares`,
      )
    }
    chunks.push(r.value)
    return false
  }
  try {
    let next = reader.read()
    let at = 0
    let ended = false
    while (at < data.byteLength && !ended) {
      const size = Number.isFinite(maxBytes)
        ? Math.max(MIN_SLICE, Math.ceil((maxBytes - total) / MAX_INFLATE_RATIO))
        : data.byteLength
      feed(data.subarray(at, at + size))
      at += size
      if (at >= data.byteLength) break
      for (;;) {
        const r = await Promise.race([next, laterTask()])
        if (r === LATER) break
        ended = await take(r)
        if (ended) break
        next = reader.read()
      }
    }
    writer.close().catch(() => undefined)
    while (!ended) {
      ended = await take(await next)
      if (!ended) next = reader.read()
    }
  } catch (err) {
    if (err instanceof InflateError) throw err
    throw new InflateError('ERR_INFLATE_DATA', err instanceof Error ? err.message : String(err))
  }
  const out = new Uint8Array(total)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.byteLength
  }
  return out
}

/**
 * The codecs of the web platform (`CompressionStream`, `DecompressionStream`), which every
 * workers runtime, Deno, browsers and Node 18+ have, for the binding whose `Codec` enum is
 * `codecs`. Their level is their own.
 */
export function streamCodecs(codecs: CodecEnum): Codecs {
  const known = formats(codecs)
  return {
    compress: (codec, _level, data) =>
      run(new CompressionStream(formatOf(known, codec)), data, Number.POSITIVE_INFINITY),
    inflate: (codec, data, maxBytes) =>
      run(new DecompressionStream(formatOf(known, codec)), data, maxBytes),
  }
}
