/**
 * The Node host's codecs for stored entries (compression.ts): `node:zlib`'s asynchronous
 * calls, which run on libuv's thread pool, never on the event loop; the synchronous ones are
 * not used on the request path.
 */
import zlib from 'node:zlib'

import { InflateError, type Codecs } from './compression'
import { wasm } from './wasm'

function checkCodec(codec: number): void {
  if (codec !== (wasm.Codec.Deflate as number)) {
    throw new InflateError('ERR_INFLATE_CODEC', `unknown codec ${String(codec)}`)
  }
}

/** zlib's error for an output past `maxOutputLength`. */
const TOO_LARGE = 'ERR_BUFFER_TOO_LARGE'

export const nodeCodecs: Codecs = {
  compress: (codec, level, data) =>
    new Promise((resolve, reject) => {
      checkCodec(codec)
      // Output chunks of up to 256 KiB (16 KiB by default): the whole output of up to about
      // 1.5 MB of pages in one pass of the thread pool, a third less CPU at 1 MB.
      const chunkSize = Math.max(16 * 1024, Math.min(256 * 1024, data.byteLength))
      zlib.deflate(data, { level, chunkSize }, (err, out) => {
        if (err === null) resolve(out)
        else reject(err)
      })
    }),
  inflate: (codec, data, maxBytes) =>
    new Promise((resolve, reject) => {
      checkCodec(codec)
      zlib.inflate(
        data,
        {
          // Stopped as soon as the output passes what the header declares (a bomb).
          maxOutputLength: Math.max(1, maxBytes),
          // The whole output in one pass of the thread pool (one chunk per pass otherwise:
          // 64 of them for 1 MB, several times slower).
          chunkSize: Math.max(64, maxBytes + 1),
        },
        (err, out) => {
          if (err === null) {
            resolve(out)
            return
          }
          const code = (err as Error & { code?: unknown }).code
          reject(
            code === TOO_LARGE
              ? new InflateError(
                  'ERR_INFLATE_SIZE',
                  `inflates to more than the ${String(maxBytes)} bytes its header declares`,
                )
              : new InflateError('ERR_INFLATE_DATA', `${String(code)}: ${err.message}`),
          )
        },
      )
    }),
}
