// make bench: measures fleetcache against baselines measured in the same run and writes
// bench/REPORT.md (previous runs are kept below the new one, under their dates).
//
// Get-hit of a 10 KB 'use cache' entry through the handler (stream included) vs a raw
// node-redis GET of the same bytes, 16 requests in flight, on a redis-server this script starts
// on a free loopback port. Rounds are interleaved so drift on a shared machine hits both alike.
// Bounded: ROUNDS x OPS operations per case.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import { startRedis } from '../tests/support/redis.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '..', 'js-host', 'package.json'))
const { createClient, RESP_TYPES } = require('redis')
const { createUseCacheHandler } = require('./dist/index.js')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const OPS = Number(process.env.BENCH_OPS ?? 20_000)
const IN_FLIGHT = 16
const SIZE = 10 * 1024

const pct = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** Runs `op` OPS times with IN_FLIGHT loops; returns ops/s and latency percentiles in µs. */
async function measure(op) {
  const lat = new Float64Array(OPS)
  let next = 0
  const t0 = process.hrtime.bigint()
  async function loop() {
    for (;;) {
      const i = next++
      if (i >= OPS) return
      const s = process.hrtime.bigint()
      await op()
      lat[i] = Number(process.hrtime.bigint() - s) / 1000
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, loop))
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  const sorted = Array.from(lat).sort((a, b) => a - b)
  return { opsPerSec: OPS / secs, p50: pct(sorted, 50), p99: pct(sorted, 99) }
}

async function main() {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-bench-'))
  const redis = await startRedis({ logDir })
  try {
    const payload = Buffer.alloc(SIZE, 0x61)
    const raw = createClient({ url: redis.url }).withTypeMapping({
      [RESP_TYPES.BLOB_STRING]: Buffer,
    })
    await raw.connect()
    await raw.set('bench:raw', payload)

    const handler = createUseCacheHandler({
      redisUrl: redis.url,
      prefix: 'bench',
      deploymentId: 'b',
    })
    await handler.set(
      'bench-key',
      Promise.resolve({
        value: new ReadableStream({
          start(c) {
            c.enqueue(payload)
            c.close()
          },
        }),
        tags: ['bench'],
        stale: 30,
        timestamp: performance.timeOrigin + performance.now(),
        expire: 3600,
        revalidate: 3600,
      }),
    )
    await handler.refreshTags()

    // Reads a stream the way a consumer does (getReader), returning the byte count.
    async function drain(stream) {
      const reader = stream.getReader()
      let n = 0
      for (;;) {
        const { done, value } = await reader.read()
        if (done) return n
        n += value.byteLength
      }
    }
    const cases = {
      'raw node-redis GET': async () => {
        const v = await raw.get('bench:raw')
        if (v.length !== SIZE) throw new Error('bad raw read')
      },
      // What any 'use cache' handler pays on top of the GET: Next's interface wants a new stream.
      'raw GET + new ReadableStream (floor)': async () => {
        const v = await raw.get('bench:raw')
        const s = new ReadableStream({
          start(c) {
            c.enqueue(v)
            c.close()
          },
        })
        if ((await drain(s)) !== SIZE) throw new Error('bad raw read')
      },
      'fleetcache get hit (stream read)': async () => {
        const e = await handler.get('bench-key', [])
        if (!e) throw new Error('expected a hit')
        if ((await drain(e.value)) !== SIZE) throw new Error('bad handler read')
      },
    }
    // Warm-up, then interleaved rounds with the order rotated each time.
    for (const op of Object.values(cases)) await measure(op)
    const results = Object.fromEntries(Object.keys(cases).map((k) => [k, []]))
    const names = Object.keys(cases)
    for (let r = 0; r < ROUNDS; r++) {
      for (let j = 0; j < names.length; j++) {
        const name = names[(r + j) % names.length]
        results[name].push(await measure(cases[name]))
      }
    }
    await raw.close()

    const summary = Object.entries(results).map(([name, runs]) => ({
      name,
      opsPerSec: median(runs.map((x) => x.opsPerSec)),
      min: Math.min(...runs.map((x) => x.opsPerSec)),
      max: Math.max(...runs.map((x) => x.opsPerSec)),
      p50: median(runs.map((x) => x.p50)),
      p99: median(runs.map((x) => x.p99)),
    }))
    const base = summary[0].opsPerSec
    const lines = [
      `## ${new Date().toISOString()}`,
      '',
      `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${os.loadavg()[0].toFixed(2)} at start of report; redis-server on loopback.`,
      `Method: ${IN_FLIGHT} requests in flight, ${OPS} operations per round, ${ROUNDS} interleaved rounds after a warm-up; medians over rounds, throughput spread is min–max of rounds.`,
      '',
      '### Get hit, 10 KB entry, 16 in flight',
      '',
      '| case | ops/s (median) | spread | p50 µs | p99 µs | ratio vs raw GET |',
      '|---|---:|---:|---:|---:|---:|',
      ...summary.map(
        (s) =>
          `| ${s.name} | ${Math.round(s.opsPerSec)} | ${Math.round(s.min)}–${Math.round(s.max)} | ${s.p50.toFixed(1)} | ${s.p99.toFixed(1)} | ${(s.opsPerSec / base).toFixed(2)}x |`,
      ),
      '',
      `Target (issue 2): the handler at least 0.8x the raw GET throughput. This run: ${(summary[2].opsPerSec / base).toFixed(2)}x of the raw GET, ${(summary[2].opsPerSec / summary[1].opsPerSec).toFixed(2)}x of the raw GET plus the stream Next requires.`,
      '',
    ]
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
