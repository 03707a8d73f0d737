// Compression of stored entries (docs/decisions/0030-compression-of-stored-entries.md) against
// a real redis-server: both Next interfaces and the workers entry store large entries
// compressed and read them back byte for byte, small ones plain; an entry in the plain format
// older releases wrote is still read; a compressed value that does not inflate to what its
// header declares (corrupt, a decompression bomb, over maxEntryBytes) is a miss and a log line,
// never a crash; the in-process tier holds the plain value and counts its size.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import { after, before, describe, test } from 'node:test'
import { createClient, ErrorReply, RESP_TYPES } from 'redis'

import { createCache } from 'fleetcache/worker'
import {
  close,
  createIncrementalCacheHandler,
  createUseCacheHandler,
  optionsFromEnv,
  stats,
} from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { bytes, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')
const { resolveOptions } = require('../dist/config.js')
const wasmBytes = fs.readFileSync(new URL(import.meta.resolve('fleetcache/wasm')))
const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const run = promisify(execFile)

let redis
let client
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-compress-'))
  redis = await startRedis({ logDir })
  client = createClient({ url: redis.url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
  await client.connect()
})

after(async () => {
  await close()
  await client?.close()
  await redis?.stop()
  fs.rmSync(logDir, { recursive: true, force: true })
})

/**
 * Markup as a page renders it: rows of generated words and numbers (a fixed seed), so it
 * compresses as real HTML does, not as repeated bytes do.
 */
function page(bytesWanted, seed = 1) {
  let a = seed
  const next = () => {
    a = (a * 1103515245 + 12345) >>> 0
    return a / 2 ** 32
  }
  const words = ['oak', 'lamp', 'steel', 'mug', 'wool', 'desk', 'silent', 'compact', 'travel']
  const rows = []
  let size = 0
  for (let i = 0; size < bytesWanted; i++) {
    const w = Array.from({ length: 6 }, () => words[Math.floor(next() * words.length)])
    const row = `<tr id="p-${i}"><td>${w.join(' ')}</td><td>${(next() * 500).toFixed(2)}</td><td>${Math.floor(next() * 1e6)}</td></tr>\n`
    rows.push(row)
    size += row.length
  }
  return Buffer.from(rows.join('')).subarray(0, bytesWanted)
}

let seq = 0
/** A handler with its own runtime (engine, connection): one instance of a fleet. */
function useCache(extra = {}) {
  seq += 1
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'cz',
    deploymentId: 'd1',
    leases: false,
    memoryBytes: 0,
    connectTimeoutMs: 4000 + seq,
    ...extra,
  })
}

function incremental(extra = {}) {
  seq += 1
  const Handler = createIncrementalCacheHandler({
    redisUrl: redis.url,
    prefix: 'cz',
    deploymentId: 'd1',
    leases: false,
    memoryBytes: 0,
    connectTimeoutMs: 4000 + seq,
    ...extra,
  })
  return () => new Handler({ dev: false, revalidatedTags: [] })
}

const engine = new wasm.Engine({ prefix: 'cz', deployment: 'd1' })
const ucKey = (k) => engine.entryKey(wasm.Interface.useCache('default'), k)
const incKey = (k) => engine.entryKey(wasm.Interface.incremental(), k)
const stored = (key) => client.get(key)
const FLAGS = 5
const RAW_LEN_AT = 49
const STORED_LEN_AT = 12

/** Whether a stored value's header says compressed (flag bit 0, docs/internals.md). */
const compressed = (value) => (value[FLAGS] & 1) === 1

/** The lines a handler logs, from console.error / console.warn (logger of src/log.ts). */
async function capturing(fn) {
  const lines = []
  const orig = { error: console.error, warn: console.warn }
  console.error = (...a) => lines.push(a.join(' '))
  console.warn = (...a) => lines.push(a.join(' '))
  try {
    await fn()
  } finally {
    Object.assign(console, orig)
  }
  return lines
}

describe("'use cache' handler", () => {
  test('a large entry is stored compressed and read back byte for byte on another instance', async () => {
    const payload = page(100 * 1024)
    const a = useCache()
    const b = useCache()
    await a.set('big', Promise.resolve(useCacheEntry(payload, { tags: ['t'] })))
    const value = await stored(ucKey('big'))
    assert.ok(compressed(value), 'flag bit 0 set')
    assert.equal(value.readUInt32LE(RAW_LEN_AT), payload.length, 'raw length in the header')
    assert.ok(
      value.length < payload.length * 0.3,
      `stored ${value.length} bytes for ${payload.length}: not at most 0.3x`,
    )
    await b.refreshTags()
    const got = await b.get('big', [])
    assert.ok(got, 'a hit on the other instance')
    assert.ok((await bytes(got.value)).equals(payload))
    assert.deepEqual(got.tags, ['t'])
  })

  test('below the threshold, or with compression off, the entry is stored plain', async () => {
    const small = page(4 * 1024)
    const a = useCache()
    await a.set('small', Promise.resolve(useCacheEntry(small)))
    const value = await stored(ucKey('small'))
    assert.ok(!compressed(value))
    assert.ok(value.subarray(value.length - small.length).equals(small))

    const large = page(64 * 1024)
    for (const compressMinBytes of [false, 0]) {
      const off = useCache({ compressMinBytes })
      await off.set(`off-${compressMinBytes}`, Promise.resolve(useCacheEntry(large)))
      const v = await stored(ucKey(`off-${compressMinBytes}`))
      assert.ok(!compressed(v), `compressMinBytes: ${compressMinBytes}`)
      // Read by a reader that compresses: every release of this one reads both.
      const got = await useCache().get(`off-${compressMinBytes}`, [])
      assert.ok((await bytes(got.value)).equals(large))
    }
  })

  test('an incompressible payload is stored plain', async () => {
    // Random bytes: the codec saves nothing, so the core keeps the value plain.
    const payload = crypto.randomBytes(32 * 1024)
    await useCache().set('random', Promise.resolve(useCacheEntry(payload)))
    assert.ok(!compressed(await stored(ucKey('random'))))
    const got = await useCache().get('random', [])
    assert.ok((await bytes(got.value)).equals(payload))
  })

  test('an entry in the plain format older releases wrote is read', async () => {
    // Version 1, flags 0, laid out by hand as docs/internals.md describes it (what every
    // release before compression wrote), stored behind the handler's back.
    const payload = Buffer.from('written by an older release')
    const key = 'older'
    const tags = ['a']
    const ts = Date.now()
    const parts = [payload.length]
    const fields = []
    const u16 = (n) => {
      const b = Buffer.alloc(2)
      b.writeUInt16LE(n)
      return b
    }
    const u32 = (n) => {
      const b = Buffer.alloc(4)
      b.writeUInt32LE(n)
      return b
    }
    const f64 = (n) => {
      const b = Buffer.alloc(8)
      b.writeDoubleLE(n)
      return b
    }
    fields.push(u32(Buffer.byteLength(key)), Buffer.from(key), u16(tags.length))
    for (const t of tags) fields.push(u16(t.length), Buffer.from(t))
    fields.push(u32(0), u16(parts.length), ...parts.map(u32))
    const rest = Buffer.concat(fields)
    const headerLen = 48 + rest.length
    const header = Buffer.concat([
      Buffer.from('FLCE'),
      Buffer.from([1, 0]),
      u16(1),
      u32(headerLen),
      u32(payload.length),
      f64(ts),
      f64(900),
      f64(3600),
      f64(30),
      rest,
    ])
    await client.set(ucKey(key), Buffer.concat([header, payload]), { PX: 60_000 })
    const got = await useCache().get(key, [])
    assert.ok(got, 'the older entry is a hit')
    assert.ok((await bytes(got.value)).equals(payload))
    assert.equal(got.timestamp, ts)
  })

  test('a corrupt, bomb or oversized compressed value is a miss and one error line', async () => {
    const payload = page(64 * 1024)
    const writer = useCache()
    await writer.set('good', Promise.resolve(useCacheEntry(payload)))
    const good = await stored(ucKey('good'))
    assert.ok(compressed(good))
    const headerLen = good.readUInt32LE(8)
    const header = Buffer.from(good.subarray(0, headerLen))
    const withPayload = (deflated) => {
      const h = Buffer.from(header)
      h.writeUInt32LE(deflated.length, STORED_LEN_AT)
      return Buffer.concat([h, deflated])
    }
    // Each with the error the inflation ends with.
    const cases = {
      // Bytes of the stream flipped: the codec (and its checksum) refuses it.
      flipped: [
        (() => {
          const v = Buffer.from(good)
          for (let i = headerLen + 10; i < v.length; i += 97) v[i] ^= 0x5a
          return v
        })(),
        'ERR_INFLATE_DATA',
      ],
      // Cut short.
      truncated: [
        withPayload(good.subarray(headerLen, headerLen + (good.length - headerLen) / 2)),
        'ERR_INFLATE_DATA',
      ],
      // Inflates to far more than declared: a decompression bomb, stopped at the declared size.
      bomb: [withPayload(zlib.deflateSync(Buffer.alloc(64 * 1024 * 1024))), 'ERR_INFLATE_SIZE'],
      // Inflates to fewer bytes than declared.
      short: [withPayload(zlib.deflateSync(payload.subarray(1))), 'ERR_INFLATE_LENGTH'],
      // Not a zlib stream at all.
      garbage: [withPayload(Buffer.from('not a compressed payload at all')), 'ERR_INFLATE_DATA'],
    }
    const before = stats()?.lookups.useCache.corrupt ?? 0
    const reader = useCache()
    for (const [name, [value, code]] of Object.entries(cases)) {
      await client.set(ucKey(`bad-${name}`), value, { PX: 60_000 })
      let got
      const lines = await capturing(async () => {
        got = await reader.get(`bad-${name}`, [])
      })
      assert.equal(got, undefined, `${name}: a miss`)
      const line = new RegExp(`unreadable entry .*ERR_DECODE_COMPRESSED.*\\[${code}:`)
      assert.ok(
        lines.some((l) => line.test(l)),
        `${name}: one error line naming ${code}, got ${JSON.stringify(lines)}`,
      )
    }
    // Declares an inflated size past maxEntryBytes: refused before any inflation.
    const small = useCache({ maxEntryBytes: 32 * 1024 })
    await client.set(ucKey('bad-over-max'), good, { PX: 60_000 })
    let got
    const lines = await capturing(async () => {
      got = await small.get('bad-over-max', [])
    })
    assert.equal(got, undefined)
    assert.ok(
      lines.some((l) => l.includes('ERR_DECODE_LIMIT: envelope limit exceeded: maxEntryBytes')),
      JSON.stringify(lines),
    )
    const after = stats().lookups.useCache.corrupt
    assert.equal(after - before, Object.keys(cases).length + 1, 'each counted as corrupt')
    // The intact value still reads.
    assert.ok((await bytes((await reader.get('good', [])).value)).equals(payload))
  })

  test('the in-process tier holds the plain value and counts its size', async () => {
    const payload = page(200 * 1024)
    await useCache().set('tiered', Promise.resolve(useCacheEntry(payload)))
    const value = await stored(ucKey('tiered'))
    assert.ok(compressed(value))
    const reader = useCache({ memoryBytes: 10 * 1024 * 1024 })
    const before = stats().memory.bytes
    const first = await reader.get('tiered', [])
    assert.ok((await bytes(first.value)).equals(payload))
    const held = stats().memory.bytes - before
    const plainLen = value.readUInt32LE(8) - 5 + payload.length
    // And the item's bookkeeping (the core's ITEM_BOOKKEEPING_BYTES, 512, and its key).
    assert.ok(
      held > plainLen + 512 && held < plainLen + 1024,
      `the tier counts the plain envelope it holds (${plainLen} B) and its bookkeeping: ${held}`,
    )
    // Served from the tier now: Redis could be gone.
    await client.del(ucKey('tiered'))
    const second = await reader.get('tiered', [])
    assert.ok(second, 'a tier hit')
    assert.ok((await bytes(second.value)).equals(payload))
  })
})

describe('singular handler', () => {
  test('a large page is stored compressed and read back on another instance', async () => {
    const html = page(300 * 1024, 7).toString('latin1')
    const rscData = page(150 * 1024, 8)
    const segment = page(20 * 1024, 9)
    const value = {
      kind: 'APP_PAGE',
      html,
      rscData,
      headers: { 'x-next-cache-tags': 'catalog' },
      postponed: undefined,
      status: 200,
      segmentData: new Map([['/catalog/__PAGE__', segment]]),
    }
    await incremental()().set('/catalog', value, { cacheControl: { revalidate: 60, expire: 3600 } })
    const v = await stored(incKey('/catalog'))
    assert.ok(compressed(v))
    const raw = html.length + rscData.length + segment.length
    assert.ok(v.length < raw * 0.3, `stored ${v.length} of ${raw}`)
    const got = await incremental()().get('/catalog', { kind: 'APP_PAGE' })
    assert.ok(got?.value, 'a hit')
    assert.equal(got.value.html, html)
    assert.ok(got.value.rscData.equals(rscData))
    assert.ok(got.value.segmentData.get('/catalog/__PAGE__').equals(segment))
  })

  test('the CLI inspects a compressed page as a server reads it', async () => {
    const html = page(50 * 1024, 11).toString('latin1')
    await incremental()().set(
      '/inspected',
      { kind: 'PAGES', html, pageData: { n: 1 }, headers: undefined, status: 200 },
      { cacheControl: { revalidate: 60, expire: 3600 } },
    )
    const key = incKey('/inspected')
    assert.ok(compressed(await stored(key)))
    const { stdout } = await run(process.execPath, [CLI, 'inspect', key, '--json'], {
      env: { ...process.env, REDIS_URL: redis.url, FLEETCACHE_PREFIX: 'cz' },
      timeout: 30_000,
    })
    const r = JSON.parse(stdout)
    assert.equal(r.verdict, 'hit')
    const raw = r.header.parts.reduce((a, b) => a + b, 0)
    assert.ok(r.totalBytes < raw, 'the stored size is the compressed one')
    assert.equal(r.inflatedBytes, r.header.headerLen - 5 + raw, 'the plain envelope inflated')
    assert.equal(r.json.v.status, 200, 'the JSON part, read from the inflated value')
  })

  test('a small page is stored plain and read back', async () => {
    const html = '<p>small</p>'
    await incremental()().set(
      '/small',
      { kind: 'PAGES', html, pageData: {}, headers: undefined, status: 200 },
      { cacheControl: { revalidate: 60, expire: 3600 } },
    )
    assert.ok(!compressed(await stored(incKey('/small'))))
    const got = await incremental()().get('/small', { kind: 'PAGES' })
    assert.equal(got?.value?.html, html)
  })
})

describe('workers entry', () => {
  // A transport as a worker host writes one, over node-redis here.
  const transport = {
    async send(argv) {
      try {
        return await client.sendCommand(
          argv.map((a) => (typeof a === 'string' ? a : Buffer.from(a))),
        )
      } catch (err) {
        if (err instanceof ErrorReply)
          throw Object.assign(new Error(err.message), { code: 'ERR_REDIS_REPLY' })
        throw err
      }
    },
  }
  const worker = (extra = {}) =>
    createCache({ module: wasmBytes, transport, prefix: 'cz', deploymentId: 'd1', ...extra })

  test('reads a compressed entry Node wrote, and Node reads one it wrote', async () => {
    const payload = page(120 * 1024, 3)
    await useCache().set('node-wrote', Promise.resolve(useCacheEntry(payload)))
    assert.ok(compressed(await stored(ucKey('node-wrote'))))
    const w = worker()
    const got = await w.get('node-wrote', [])
    assert.ok(got, 'the worker reads the Node entry')
    assert.ok(Buffer.from(await new Response(got.value).arrayBuffer()).equals(payload))

    const other = page(90 * 1024, 4)
    await w.set('worker-wrote', useCacheEntry(other))
    const v = await stored(ucKey('worker-wrote'))
    assert.ok(compressed(v), 'the worker compresses too (CompressionStream)')
    assert.ok(v.length < other.length * 0.3)
    const n = await useCache().get('worker-wrote', [])
    assert.ok(n, 'Node reads the worker entry')
    assert.ok((await bytes(n.value)).equals(other))
  })

  test('a corrupt compressed value is a miss in the worker too', async () => {
    const payload = page(64 * 1024, 5)
    await useCache().set('w-bad', Promise.resolve(useCacheEntry(payload)))
    const v = await stored(ucKey('w-bad'))
    const headerLen = v.readUInt32LE(8)
    for (let i = headerLen + 10; i < v.length; i += 50) v[i] ^= 0xff
    await client.set(ucKey('w-bad'), v, { PX: 60_000 })
    const errors = []
    const w = worker()
    w.onError = (m) => errors.push(m)
    assert.equal(await w.get('w-bad', []), undefined)
    assert.ok(
      errors.some((e) => /ERR_DECODE_COMPRESSED.*ERR_INFLATE_/.test(e)),
      JSON.stringify(errors),
    )
  })
})

describe('settings', () => {
  test('compressMinBytes and FLEETCACHE_COMPRESS_MIN_BYTES: a size, or 0/false/off to turn it off', () => {
    assert.equal(resolveOptions({ compressMinBytes: 4096 }).engine.compressMinBytes, 4096)
    assert.equal(resolveOptions({ compressMinBytes: false }).engine.compressMinBytes, 0)
    assert.equal(resolveOptions({ compressMinBytes: 0 }).engine.compressMinBytes, 0)
    assert.equal(resolveOptions({}).engine.compressMinBytes, undefined, 'the core default')
    assert.throws(() => resolveOptions({ compressMinBytes: -1 }), { variable: 'compressMinBytes' })
    for (const [raw, want] of [
      ['16384', 16384],
      ['0', 0],
      ['false', 0],
      ['off', 0],
      ['', undefined],
    ]) {
      assert.equal(
        optionsFromEnv({ FLEETCACHE_COMPRESS_MIN_BYTES: raw }).compressMinBytes,
        want === 0 ? false : want,
        raw,
      )
    }
    assert.throws(() => optionsFromEnv({ FLEETCACHE_COMPRESS_MIN_BYTES: 'lots' }), {
      variable: 'FLEETCACHE_COMPRESS_MIN_BYTES',
    })
    // A variable of spaces alone is no number: Number(' ') is 0, which for these turns the
    // memory tier, compression or the wait for a lease off. Refused, as where 0 is refused.
    for (const name of [
      'FLEETCACHE_COMPRESS_MIN_BYTES',
      'FLEETCACHE_MEMORY_BYTES',
      'FLEETCACHE_LEASE_WAIT_MS',
    ]) {
      for (const raw of [' ', '\t', ' \n ']) {
        assert.throws(
          () => optionsFromEnv({ [name]: raw }),
          {
            variable: name,
            message: new RegExp(
              `^${name}: must be a number (>= 0|of milliseconds from 0 to 60000).*, got "${raw}"$`,
            ),
          },
          JSON.stringify(raw),
        )
      }
    }
    // Spaces around a number are Number's to take, as for every numeric variable.
    assert.equal(optionsFromEnv({ FLEETCACHE_MEMORY_BYTES: ' 0 ' }).memoryBytes, 0)
    assert.equal(optionsFromEnv({ FLEETCACHE_COMPRESS_MIN_BYTES: ' 0.0' }).compressMinBytes, false)
    assert.equal(optionsFromEnv({ FLEETCACHE_COMPRESS_LEVEL: '6' }).compressLevel, 6)
    assert.throws(() => new wasm.Engine({ compressLevel: 10 }), {
      code: 'ERR_CONFIG_COMPRESS_LEVEL',
    })
  })
})
