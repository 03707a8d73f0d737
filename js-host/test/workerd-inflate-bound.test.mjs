// The decompression-bomb bound of the workers codecs (docs/decisions/0030: "the codec
// is stopped as soon as its output passes the declared length (a decompression bomb costs no
// more)"; docs/failures.md: "No reader holds more than the declared length and maxEntryBytes
// allow"). `streamCodecs().inflate` writes the whole stored payload into a DecompressionStream in
// one `write` and checks the length as it reads; workerd inflates everything one write holds
// before the first read, so the check comes after the bomb went off. This test runs the
// package's own worker module (worker/compression.js) in workerd, inflates 256 MiB of zeros
// (about 255 KB stored) against a declared length of 1 KiB, and reads workerd's peak resident
// memory (VmHWM) before and after. The test stops only the workerd it started, by PID.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import zlib from 'node:zlib'
import { after, before, describe, test } from 'node:test'

import { startWorkerd } from '../../tests/support/workerd.mjs'
import { stopChild, tailFile } from '../../tests/support/util.mjs'

const require = createRequire(import.meta.url)
const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

const WORKER = `
import { streamCodecs } from './compression.js'
const codecs = streamCodecs({ Deflate: 1 })
export default {
  async fetch(req) {
    const url = new URL(req.url)
    if (url.pathname === '/info') return new Response('ok')
    const max = Number(url.searchParams.get('max'))
    const data = new Uint8Array(await req.arrayBuffer())
    try {
      const out = await codecs.inflate(1, data, max)
      return Response.json({ code: 'resolved', length: out.byteLength })
    } catch (err) {
      return Response.json({ code: err.code, message: err.message })
    }
  },
}
`

let dir
let child
let base
let logFile

/** The largest `field` (kB) of /proc/<pid>/status over workerd and its children, in MiB. */
function memoryMiB(field) {
  const pids = [String(child.pid)]
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    try {
      if (fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(' ')[3] === String(child.pid))
        pids.push(p)
    } catch {
      // gone meanwhile
    }
  }
  let most = 0
  for (const p of pids) {
    try {
      const m = fs
        .readFileSync(`/proc/${p}/status`, 'utf8')
        .match(new RegExp(`${field}:\\s+(\\d+)`))
      if (m) most = Math.max(most, Number(m[1]) / 1024)
    } catch {
      // gone meanwhile
    }
  }
  return most
}

async function inflate(stored, max) {
  const res = await fetch(`${base}/?max=${String(max)}`, {
    method: 'POST',
    body: stored,
    signal: AbortSignal.timeout(60_000),
  })
  assert.equal(res.status, 200, await res.clone().text())
  return res.json()
}

// The same codecs in this process: the slices they feed (a value inflating to more than 16 KiB
// times 1032 is fed in several) give back exactly what was compressed, and a declared length
// one byte short is refused, whatever the ratio.
describe('the workers codecs inflate in slices exactly', () => {
  const { streamCodecs } = require('../dist/compression.js')
  const codecs = streamCodecs({ Deflate: 1 })
  for (const [what, raw] of [
    ['empty', new Uint8Array(0)],
    ['10 bytes', new Uint8Array(10).fill(7)],
    // Incompressible: stored about as large, so fed in many 16 KiB slices.
    ['300 KB of random bytes', randomBytes(300_000)],
    // Highly compressible: one slice's worth of input, a large output.
    ['20 MiB of zeros', new Uint8Array(20 << 20)],
  ]) {
    test(what, async () => {
      const stored = zlib.deflateSync(raw)
      const out = await codecs.inflate(1, stored, raw.byteLength)
      assert.equal(out.byteLength, raw.byteLength)
      assert.ok(Buffer.from(out).equals(Buffer.from(raw)))
      if (raw.byteLength > 0) {
        await assert.rejects(codecs.inflate(1, stored, raw.byteLength - 1), {
          code: 'ERR_INFLATE_SIZE',
        })
      }
      // Cut short: not a whole stream.
      if (stored.length > 8) {
        await assert.rejects(
          codecs.inflate(1, stored.subarray(0, stored.length - 8), raw.byteLength),
          {
            code: 'ERR_INFLATE_DATA',
          },
        )
      }
    })
  }
})

describe('the workers codecs bound what a compressed value inflates to', () => {
  before(
    async () => {
      const bin = require.resolve('workerd/bin/workerd')
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-workerd-inflate-'))
      logFile = path.join(dir, 'workerd.log')
      fs.copyFileSync(
        path.join(pkgDir, 'worker', 'compression.js'),
        path.join(dir, 'compression.js'),
      )
      fs.writeFileSync(path.join(dir, 'main.mjs'), WORKER)
      try {
        ;({ child, base } = await startWorkerd({
          bin,
          dir,
          modules: [
            '(name = "main.mjs", esModule = embed "main.mjs")',
            '(name = "compression.js", esModule = embed "compression.js")',
          ],
          logFile,
        }))
      } catch (err) {
        throw new Error(`${err.message}\n--- ${logFile} ---\n${tailFile(logFile, 20)}`, {
          cause: err,
        })
      }
    },
    { timeout: 60_000 },
  )

  after(async () => {
    if (child) await stopChild(child, { termTimeoutMs: 5000 })
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  test(
    'a bomb against a declared 1 KiB is refused without inflating it whole',
    { timeout: 120_000 },
    async () => {
      // A small one first: the worker's own memory, warmed up.
      const small = await inflate(zlib.deflateSync(Buffer.alloc(1 << 20), { level: 9 }), 1024)
      assert.equal(small.code, 'ERR_INFLATE_SIZE')
      const peakBefore = memoryMiB('VmHWM')
      const bomb = zlib.deflateSync(Buffer.alloc(256 << 20), { level: 9 })
      const answer = await inflate(bomb, 1024)
      const peakAfter = memoryMiB('VmHWM')
      assert.equal(answer.code, 'ERR_INFLATE_SIZE', JSON.stringify(answer))
      // The declared length is 1 KiB; allow the codec a few MiB of working room, far below the
      // 256 MiB the stream inflates to.
      assert.ok(
        peakAfter - peakBefore < 32,
        `${String(bomb.length)} stored bytes raised workerd's peak memory by ` +
          `${(peakAfter - peakBefore).toFixed(0)} MiB (${peakBefore.toFixed(0)} -> ${peakAfter.toFixed(0)} MiB) ` +
          `for a declared length of 1 KiB\n--- ${logFile} ---\n${tailFile(logFile, 20)}`,
      )
    },
  )
})
