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
