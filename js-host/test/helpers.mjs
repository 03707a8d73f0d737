// Shared by the package's tests: Next-shaped 'use cache' entries and stream readers.

/** Next's clock for entry timestamps and revalidations. */
export const now = () => performance.timeOrigin + performance.now()

/** A 'use cache' entry as Next hands it to `set`: a one-chunk stream plus metadata. */
export function useCacheEntry(value, over = {}) {
  const payload = Buffer.from(value)
  return {
    value: new ReadableStream({
      start(c) {
        c.enqueue(payload)
        c.close()
      },
    }),
    tags: ['test'],
    stale: 30,
    timestamp: now(),
    expire: 3600,
    revalidate: 900,
    ...over,
  }
}

/** Reads a stream to its end. */
export async function bytes(stream) {
  const chunks = []
  for await (const c of stream) chunks.push(c)
  return Buffer.concat(chunks)
}

/** Reads a stream to its end as UTF-8 text. */
export async function text(stream) {
  return (await bytes(stream)).toString('utf8')
}
