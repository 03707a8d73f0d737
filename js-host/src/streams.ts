/** Reads a byte stream to its end into one Buffer (one copy, at the end). */
export async function streamToBuffer(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  let size = 0
  const reader = stream.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      chunks.push(value)
      size += value.byteLength
    }
  } finally {
    reader.releaseLock()
  }
  if (chunks.length === 1 && chunks[0] !== undefined)
    return Buffer.from(chunks[0].buffer, chunks[0].byteOffset, chunks[0].byteLength)
  return Buffer.concat(chunks, size)
}

/** A fresh single-chunk stream over `bytes` (no copy); Next needs a new one for every read. */
export function bufferToStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.byteLength > 0) controller.enqueue(bytes)
      controller.close()
    },
  })
}

/** The queuing strategy of an early stream (`EarlyStream.build`). */
const NO_PULL = { highWaterMark: 0 }

/** Early streams asked for in this turn, built together by one `setImmediate`. */
let batch: EarlyStream[] = []

function buildBatch(): void {
  const streams = batch
  batch = []
  for (const s of streams) s.build()
}

/**
 * A stream built while a Redis read is on the wire. Building a `ReadableStream` costs several µs
 * of CPU (bench/REPORT.md: "new stream + read, no I/O"), about a fifth of a loopback GET; done
 * in a `setImmediate` queued after the client's own write (node-redis writes in one too), it
 * runs while the process would otherwise wait for the reply, so a hit pays only the enqueue.
 * Under load the loop is never idle and the order changes nothing; a miss wastes one stream.
 * The reads of one turn share one `setImmediate` (a timer and a closure each cost about as much
 * as a tenth of the stream, and under load a turn sends many reads).
 */
export class EarlyStream {
  private stream: ReadableStream<Uint8Array> | undefined
  private controller: ReadableStreamDefaultController<Uint8Array> | undefined
  /** Filled or discarded: the batch's `build` makes nothing for it. */
  private over = false

  constructor() {
    if (batch.push(this) === 1) setImmediate(buildBatch)
  }

  /** The batch's turn: the stream, unless it is no longer wanted. */
  build(): void {
    if (this.over) return
    // A high-water mark of 0: the source is never pulled. With the default (1) the empty
    // stream asks for a chunk once started, a call and a promise turn for nothing on every hit;
    // a consumer sees no difference (the mark only sets the source's `desiredSize`).
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller
        },
      },
      NO_PULL,
    )
  }

  /** `bytes` as a fresh stream: the one built during the read if it is ready, else a new one. */
  fill(bytes: Uint8Array): ReadableStream<Uint8Array> {
    const { stream, controller } = this
    this.discard()
    if (stream === undefined || controller === undefined) return bufferToStream(bytes)
    if (bytes.byteLength > 0) controller.enqueue(bytes)
    controller.close()
    return stream
  }

  /** Nothing to serve: the stream is dropped, or never built. */
  discard(): void {
    this.over = true
    this.stream = undefined
    this.controller = undefined
  }
}
