// make bench: measures fleetcache against baselines measured in the same run and writes
// bench/REPORT.md and bench/latency.svg (previous runs stay in the report below the new one).
//
// Everything runs in this process against a redis-server this script starts on a free
// loopback port. Loops are bounded by operation counts (BENCH_ROUNDS, BENCH_OPS scale them).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import { startRedis } from '../tests/support/redis.mjs'
import { compare, measureSync } from './lib/stats.mjs'
import { latencyChart } from './lib/chart.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkgDir = path.join(here, '..', 'js-host')
const require = createRequire(path.join(pkgDir, 'package.json'))
const { createClient, RESP_TYPES } = require('redis')
const { createUseCacheHandler, close } = require('./dist/index.js')
const wasm = require('./wasm/node/fleetcache_wasm.js')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const OPS = Number(process.env.BENCH_OPS ?? 10_000)
const IN_FLIGHT = 16
const SIZES = [
  ['1 KB', 1024],
  ['10 KB', 10 * 1024],
  ['100 KB', 100 * 1024],
  ['1 MB', 1024 * 1024],
]
// Fewer operations for large values keep every case within seconds.
const opsFor = (size) => Math.max(200, Math.round(OPS * Math.min(1, 16_384 / size)))

const now = () => performance.timeOrigin + performance.now()

function entry(payload, tags = ['bench']) {
  return {
    value: new ReadableStream({
      start(c) {
        c.enqueue(payload)
        c.close()
      },
    }),
    tags,
    stale: 30,
    timestamp: now(),
    expire: 3600,
    revalidate: 3600,
  }
}

/** Reads a stream the way a consumer does (getReader); returns the byte count. */
async function drain(stream) {
  const reader = stream.getReader()
  let n = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return n
    n += value.byteLength
  }
}

const fmt = (n, d = 1) => (n >= 100 ? Math.round(n).toString() : n.toFixed(d))

function table(header, rows) {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ]
}

// Each in-flight read asks for another key (KEYS of them, in turn), so Redis is really read
// each time; fleetcache shares one GET between concurrent readers of one key, which the
// "one key" row shows separately.
const KEYS = 32

async function getHits(redis, raw, handler, memory, tiered) {
  const out = []
  for (const [label, size] of SIZES) {
    const payload = Buffer.alloc(size, 0x61)
    const rawKey = (i) => `bench:raw:${size}:${i % KEYS}`
    const key = (i) => `bench-hit-${size}-${i % KEYS}`
    for (let i = 0; i < KEYS; i++) {
      await raw.set(rawKey(i), payload)
      await handler.set(key(i), Promise.resolve(entry(payload)))
      await memory.set(key(i), Promise.resolve(entry(payload)))
      await tiered.set(key(i), Promise.resolve(entry(payload)))
    }
    const hit = async (h, k) => {
      const e = await h.get(k, [])
      if (!e || (await drain(e.value)) !== size) throw new Error('expected a hit')
    }
    const results = await compare(
      {
        'raw GET': async (i) => {
          if ((await raw.get(rawKey(i))).length !== size) throw new Error('bad raw read')
        },
        'raw GET + new stream (floor)': async (i) => {
          const v = await raw.get(rawKey(i))
          const s = new ReadableStream({
            start(c) {
              c.enqueue(v)
              c.close()
            },
          })
          if ((await drain(s)) !== size) throw new Error('bad raw read')
        },
        'fleetcache get hit': (i) => hit(handler, key(i)),
        'fleetcache get hit, 16 readers of one key': () => hit(handler, key(0)),
        'in-process store hit': (i) => hit(memory, key(i)),
        // Issue 4: the in-process tier in front of Redis (the default with REDIS_URL); the
        // per-request tag refresh is Next's refreshTags, measured on its own below.
        'fleetcache L1 hit (Redis behind)': (i) => hit(tiered, key(i)),
      },
      { rounds: ROUNDS, ops: opsFor(size), inFlight: IN_FLIGHT },
    )
    out.push({ label, size, results })
  }
  return out
}

async function otherOps(raw, handler) {
  const payload = Buffer.alloc(10 * 1024, 0x62)
  const soft = ['_N_T_/layout', '_N_T_/products/layout', '_N_T_/products/page', '_N_T_/products']
  let n = 0
  return compare(
    {
      'raw SET 10 KB': async () => {
        await raw.set(`bench:rawset:${n++ % 64}`, payload)
      },
      'fleetcache set 10 KB': async () => {
        await handler.set(`bench-set-${n++ % 64}`, Promise.resolve(entry(payload)))
      },
      'fleetcache get miss': async () => {
        if ((await handler.get(`bench-missing-${n++}`, soft)) !== undefined) throw new Error('hit?')
      },
      'fleetcache refreshTags': async () => {
        await handler.refreshTags()
      },
      'fleetcache updateTags (1 tag)': async () => {
        await handler.updateTags([`bench-tag-${n++ % 256}`], { expire: 3600 })
      },
      'fleetcache getExpiration (4 soft tags)': async () => {
        await handler.getExpiration(soft)
      },
    },
    { rounds: ROUNDS, ops: OPS, inFlight: IN_FLIGHT },
  )
}

function boundary() {
  const e = new wasm.Engine({ prefix: 'bench', deployment: 'b' })
  const cacheKey = '["80468aea780530334affd6a837e4113046521a8341",[],["JOTQFoQ_33rkc5f4lfc58"]]'
  const rows = []
  const sync = (name, fn) => {
    const r = measureSync(fn)
    rows.push([name, fmt(r.p50), fmt(r.p99)])
  }
  sync('engine call, no work (tagCount getter)', () => e.tagCount)
  sync('getExpiration, 4 unknown tags', () => e.getExpiration('a\0b\0c\0d', 1))
  sync('entryKey (SHA-256 of an 80-char key)', () => e.entryKey('default', cacheKey))
  const payload = Buffer.alloc(10 * 1024, 0x63)
  const t = now()
  const header = e.planUseCacheSet('default', cacheKey, 'a\0b', t, 60, 3600, 30, payload.length, t)
  const value = Buffer.concat([header, payload])
  sync('inspect (header of a 10 KB entry)', () =>
    e.inspect(cacheKey, value.subarray(0, 4096), value.length, '', t),
  )

  // Codec throughput: a 100 KB APP_ROUTE-like value, fleetcache envelope vs the JSON+base64
  // baseline that handlers without a binary codec use.
  const body = Buffer.alloc(100 * 1024, 0x64)
  const mib = body.length / 2 ** 20
  const envelope = measureSync(
    () => {
      const h = e.planUseCacheSet('default', cacheKey, 'a\0b', t, 60, 3600, 30, body.length, t)
      return Buffer.concat([h, body])
    },
    { k: 50, blocks: 30 },
  )
  const encoded = Buffer.concat([
    e.planUseCacheSet('default', cacheKey, 'a', t, 60, 3600, 30, body.length, t),
    body,
  ])
  const decode = measureSync(
    () => {
      e.inspect(cacheKey, encoded.subarray(0, 4096), encoded.length, '', t)
      return encoded.subarray(e.lastPayloadOffset)
    },
    { k: 50, blocks: 30 },
  )
  const meta = { kind: 'APP_ROUTE', status: 200, headers: { 'content-type': 'application/json' } }
  const jsonEncode = measureSync(
    () => Buffer.from(JSON.stringify({ ...meta, body: body.toString('base64') })),
    { k: 50, blocks: 30 },
  )
  const json = Buffer.from(JSON.stringify({ ...meta, body: body.toString('base64') }))
  const jsonDecode = measureSync(() => Buffer.from(JSON.parse(json.toString()).body, 'base64'), {
    k: 50,
    blocks: 30,
  })
  const codec = [
    ['fleetcache envelope encode', envelope.p50, encoded.length],
    ['fleetcache envelope decode', decode.p50, encoded.length],
    ['JSON + base64 encode (baseline)', jsonEncode.p50, json.length],
    ['JSON + base64 decode (baseline)', jsonDecode.p50, json.length],
  ].map(([name, ns, bytes]) => [name, fmt(mib / (ns / 1e9)), fmt(ns / 1000), String(bytes)])
  return { rows, codec }
}

function sizeAndStartup() {
  const wasmFile = path.join(pkgDir, 'wasm', 'fleetcache_wasm_bg.wasm')
  const bytes = fs.readFileSync(wasmFile)
  const gz = zlib.gzipSync(bytes, { level: 9 }).length
  // Start-up in a fresh process: load the glue (reads and compiles the .wasm), build an engine.
  const script = `const t=process.hrtime.bigint();const m=require(${JSON.stringify(path.join(pkgDir, 'wasm', 'node', 'fleetcache_wasm.js'))});new m.Engine({});console.log(Number(process.hrtime.bigint()-t)/1e6)`
  const starts = Array.from({ length: 5 }, () =>
    Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim()),
  ).sort((a, b) => a - b)
  return { raw: bytes.length, gz, startMs: starts[2] }
}

async function memoryGrowth(handler) {
  const payload = Buffer.alloc(10 * 1024, 0x65)
  for (let i = 0; i < 100; i++) await handler.set(`bench-rss-${i}`, Promise.resolve(entry(payload)))
  globalThis.gc?.()
  const before = process.memoryUsage().rss
  const N = Number(process.env.BENCH_RSS_GETS ?? 100_000)
  for (let i = 0; i < N; i += 16) {
    await Promise.all(
      Array.from({ length: 16 }, async (_, j) => {
        const e = await handler.get(`bench-rss-${(i + j) % 100}`, [])
        if (e) await drain(e.value)
      }),
    )
  }
  globalThis.gc?.()
  return { gets: N, before, after: process.memoryUsage().rss }
}

async function main() {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-bench-'))
  const redis = await startRedis({ logDir })
  const load = os.loadavg()[0]
  try {
    const raw = createClient({ url: redis.url }).withTypeMapping({
      [RESP_TYPES.BLOB_STRING]: Buffer,
    })
    await raw.connect()
    const handler = createUseCacheHandler({
      redisUrl: redis.url,
      prefix: 'bench',
      deploymentId: 'b',
      // A Redis hit every time: the in-process tier is measured on its own ('L1 hit').
      memoryBytes: 0,
    })
    const tiered = createUseCacheHandler({
      redisUrl: redis.url,
      prefix: 'bench',
      deploymentId: 'b',
      memoryBytes: 64 * 2 ** 20,
    })
    const memory = createUseCacheHandler({
      prefix: 'bench',
      deploymentId: 'mem',
      memoryBytes: 64 * 2 ** 20,
    })
    await handler.refreshTags()

    console.log('get hits by size...')
    const hits = await getHits(redis, raw, handler, memory, tiered)
    console.log('other operations...')
    const ops = await otherOps(raw, handler)
    console.log('wasm boundary and codec...')
    const { rows: boundaryRows, codec } = boundary()
    const size = sizeAndStartup()
    console.log('memory after repeated gets...')
    const rss = await memoryGrowth(handler)
    await raw.close()

    const hit10 = hits.find((h) => h.size === 10 * 1024).results
    const byName = (rs, n) => rs.find((r) => r.name === n)
    const rawGet = byName(hit10, 'raw GET')
    const fc = byName(hit10, 'fleetcache get hit')
    const floor = byName(hit10, 'raw GET + new stream (floor)')
    const mem = byName(hit10, 'in-process store hit')

    const lines = [
      `## ${new Date().toISOString()}`,
      '',
      `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}; load average ${load.toFixed(2)} when the run started. redis-server ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).split(' ')[2]?.replace('v=', '')} on loopback, started by the benchmark.`,
      `Method: ${IN_FLIGHT} operations in flight; ${ROUNDS} interleaved rounds (order rotated) after a warm-up; per case the median over rounds, throughput spread is the min–max of rounds. ${OPS} operations per round (fewer for values above 16 KB).`,
      '',
      '### Targets',
      '',
      ...table(
        ['target', 'measured', 'met'],
        [
          [
            'get hit ≥ 0.8x raw GET throughput, 10 KB (issue 2)',
            `${(fc.opsPerSec / rawGet.opsPerSec).toFixed(2)}x (${(fc.opsPerSec / floor.opsPerSec).toFixed(2)}x of GET + the stream Next requires)`,
            fc.opsPerSec / rawGet.opsPerSec >= 0.8 ? 'yes' : 'no',
          ],
          [
            'get hit latency ≤ 1.3x raw GET, 10 KB, p50 (issue 9)',
            `${(fc.p50 / rawGet.p50).toFixed(2)}x`,
            fc.p50 / rawGet.p50 <= 1.3 ? 'yes' : 'no',
          ],
          [
            'in-process hit ≤ 1/10 of a raw GET, 10 KB, p50 (issue 9)',
            `${(mem.p50 / rawGet.p50).toFixed(3)}x`,
            mem.p50 / rawGet.p50 <= 0.1 ? 'yes' : 'no',
          ],
        ],
      ),
      '',
      'Every `\'use cache\'` read must hand Next a new `ReadableStream`; the "floor" row is a raw GET plus that stream, the least any handler of this interface can cost.',
      '',
      '### Get hit by entry size',
      '',
      ...hits.flatMap(({ label, results }) => [
        `**${label}**`,
        '',
        ...table(
          ['case', 'ops/s', 'spread', 'p50 µs', 'p99 µs', 'vs raw GET (ops/s)'],
          results.map((r) => [
            r.name,
            fmt(r.opsPerSec),
            `${fmt(r.min)}–${fmt(r.max)}`,
            fmt(r.p50),
            fmt(r.p99),
            `${(r.opsPerSec / results[0].opsPerSec).toFixed(2)}x`,
          ]),
        ),
        '',
      ]),
      '### Other operations (10 KB, 16 in flight)',
      '',
      ...table(
        ['operation', 'ops/s', 'spread', 'p50 µs', 'p99 µs'],
        ops.map((r) => [
          r.name,
          fmt(r.opsPerSec),
          `${fmt(r.min)}–${fmt(r.max)}`,
          fmt(r.p50),
          fmt(r.p99),
        ]),
      ),
      '',
      '### The wasm boundary (synchronous calls, blocks of 1000)',
      '',
      ...table(['call', 'p50 ns', 'p99 ns'], boundaryRows),
      '',
      '### Codec, 100 KB binary body',
      '',
      ...table(['codec', 'MiB/s', 'µs per value', 'stored bytes'], codec),
      '',
      '### Size, start-up, memory',
      '',
      ...table(
        ['measure', 'value'],
        [
          ['.wasm (wasm-opt -Oz)', `${size.raw} bytes`],
          ['.wasm gzip -9', `${size.gz} bytes`],
          [
            'engine start-up (load glue + compile + new Engine), median of 5 processes',
            `${size.startMs.toFixed(1)} ms`,
          ],
          [
            `RSS before / after ${rss.gets} get hits of 10 KB entries`,
            `${(rss.before / 2 ** 20).toFixed(1)} MiB / ${(rss.after / 2 ** 20).toFixed(1)} MiB`,
          ],
        ],
      ),
      '',
      '![p50 get-hit latency by entry size](latency.svg)',
      '',
    ]
    fs.writeFileSync(path.join(here, 'latency.svg'), latencyChart(hits))
    const report = path.join(here, 'REPORT.md')
    const header =
      '# fleetcache benchmark report\n\nWritten by `make bench`; never edited by hand. Newest run first.\n\n'
    const previous = fs.existsSync(report)
      ? fs.readFileSync(report, 'utf8').replace(header, '')
      : ''
    fs.writeFileSync(report, header + lines.join('\n') + '\n' + previous)
    console.log(lines.join('\n'))
    console.log(`wrote ${path.relative(process.cwd(), report)}`)
  } finally {
    await close()
    await redis.stop()
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
