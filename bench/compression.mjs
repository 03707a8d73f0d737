// Compression of stored entries (docs/decisions/0030-compression-of-stored-entries.md) on real
// Next payloads: the HTML, RSC and segment files `next build` writes for the example app
// (examples/next-app; its /catalog/[rows] pages render 30 to 1500 generated rows, which gives
// the 20 KB to 1 MB sizes). For each, through the 'use cache' handler against a redis-server:
// the bytes Redis holds with compression off and on (levels 1 and 6), the get-hit latency at
// about 100 KB and 1 MB compressed against plain (the cases interleaved round by round, in-process
// tier off so every get reads Redis), also through a 1 Gbit/s link (bench/lib/throttle.mjs, a
// proxy in a child process that paces Redis's replies), and the CPU a set costs
// (process.cpuUsage around the sets, zlib's thread pool included).
//
//   node bench/compression.mjs [redis-url]
//
// Prints one markdown section on stdout (bench/run.mjs puts it in bench/REPORT.md); progress on
// stderr. Without a URL it starts its own redis-server on a free loopback port. Loops are
// bounded by operation counts (BENCH_ROUNDS scales them).
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import { appDir, prepareApp } from '../tests/support/fleet.mjs'
import { startRedis } from '../tests/support/redis.mjs'
import { compare } from './lib/stats.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkgDir = path.join(here, '..', 'js-host')
const require = createRequire(path.join(pkgDir, 'package.json'))
const { createClient, RESP_TYPES } = require('redis')
const { createUseCacheHandler, close } = require('./dist/index.js')
const wasm = require('./wasm/node/fleetcache_wasm.js')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
/** The slower link: 1 Gbit/s. */
const LINK_BYTES_PER_SEC = 125_000_000
const KB = 1024
const log = (m) => process.stderr.write(`[compression] ${m}\n`)
const now = () => performance.timeOrigin + performance.now()
const fmt = (n, d = 1) => (n >= 100 ? Math.round(n).toString() : n.toFixed(d))
const size = (n) =>
  n >= 1024 * 1024 ? `${(n / 2 ** 20).toFixed(2)} MB` : `${(n / KB).toFixed(1)} KB`

/** The build's payloads of 4 KB to 1.1 MB: `{ kind, file, bytes }`. */
function payloads() {
  const root = path.join(appDir, '.next', 'server', 'app')
  const out = []
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else {
        const rel = path.relative(root, p)
        const kind = rel.includes('.segments/')
          ? 'segment'
          : rel.endsWith('.html')
            ? 'html'
            : rel.endsWith('.rsc')
              ? 'rsc'
              : null
        const bytes = kind && fs.statSync(p).size
        if (kind && bytes >= 4 * KB && bytes <= 1.1 * 1024 * KB) {
          out.push({ kind, file: rel, bytes: fs.readFileSync(p) })
        }
      }
    }
  }
  walk(root)
  return out.sort((a, b) => a.kind.localeCompare(b.kind) || a.bytes.length - b.bytes.length)
}

function entry(payload) {
  return {
    value: new ReadableStream({
      start(c) {
        c.enqueue(payload)
        c.close()
      },
    }),
    tags: ['catalog'],
    stale: 30,
    timestamp: now(),
    expire: 3600,
    revalidate: 3600,
  }
}

async function drain(stream) {
  const reader = stream.getReader()
  let n = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return n
    n += value.byteLength
  }
}

/** The file of `kind` closest in size to `target` bytes. */
const closest = (all, kind, target) =>
  all
    .filter((p) => p.kind === kind)
    .reduce((best, p) =>
      Math.abs(p.bytes.length - target) < Math.abs(best.bytes.length - target) ? p : best,
    )

/** Starts the throttling proxy in front of the Redis at `port`; resolves to `{ port, stop }`. */
async function throttle(port, bytesPerSec) {
  const child = spawn(
    process.execPath,
    [path.join(here, 'lib', 'throttle.mjs'), String(port), String(bytesPerSec)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const [line] = await createInterface({ input: child.stdout })
    [Symbol.asyncIterator]()
    .next()
    .then((r) => [r.value])
  return { port: Number(line), stop: () => child.kill() }
}

async function main() {
  // The handlers' start-up lines go where the progress goes: stdout is the section alone.
  console.log = console.error
  await prepareApp({ log })
  const all = payloads()
  if (all.length === 0) throw new Error(`no payloads under ${appDir}/.next/server/app`)
  let redis
  let url = process.argv[2]
  if (url === undefined) {
    redis = await startRedis({
      logDir: fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'fleetcache-cz-')),
    })
    url = redis.url
  }
  const raw = createClient({ url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
  await raw.connect()
  const link = await throttle(new URL(url).port, LINK_BYTES_PER_SEC)
  const linkUrl = `redis://127.0.0.1:${link.port}`
  // One runtime each (separate engines and connections), every get read from Redis.
  const common = { redisUrl: url, prefix: 'bench-cz', memoryBytes: 0, leases: false }
  const handlers = {
    plain: createUseCacheHandler({ ...common, deploymentId: 'plain', compressMinBytes: false }),
    // Every payload compressed, whatever its size: the latencies below show where it pays.
    l1: createUseCacheHandler({ ...common, deploymentId: 'l1', compressMinBytes: 1 }),
    l6: createUseCacheHandler({
      ...common,
      deploymentId: 'l6',
      compressMinBytes: 1,
      compressLevel: 6,
    }),
  }
  // The same entries (same deployments) read through the 1 Gbit/s link.
  const overLink = {
    plain: createUseCacheHandler({
      ...common,
      redisUrl: linkUrl,
      deploymentId: 'plain',
      compressMinBytes: false,
    }),
    l1: createUseCacheHandler({
      ...common,
      redisUrl: linkUrl,
      deploymentId: 'l1',
      compressMinBytes: 1,
    }),
  }
  const keyOf = (name, cacheKey) =>
    new wasm.Engine({ prefix: 'bench-cz', deployment: name }).entryKey(
      wasm.Interface.useCache('default'),
      cacheKey,
    )
  try {
    // Bytes stored.
    log(`storing ${all.length} payloads three ways`)
    const storedRows = []
    const totals = {}
    for (const p of all) {
      const stored = {}
      for (const [name, h] of Object.entries(handlers)) {
        await h.set(p.file, Promise.resolve(entry(p.bytes)))
        stored[name] = Number(await raw.strLen(keyOf(name, p.file)))
      }
      const t = (totals[p.kind] ??= { plain: 0, l1: 0, l6: 0, n: 0 })
      t.plain += stored.plain
      t.l1 += stored.l1
      t.l6 += stored.l6
      t.n += 1
      storedRows.push([
        p.kind,
        p.file.replace(/\$d\$/g, '$'),
        size(stored.plain),
        size(stored.l1),
        (stored.l1 / stored.plain).toFixed(3),
        size(stored.l6),
        (stored.l6 / stored.plain).toFixed(3),
      ])
    }

    // Get-hit latency from about 8 KB to 1 MB, here and through the slower link, and the CPU
    // of a set at about 100 KB and 1 MB.
    const picks = [
      closest(all, 'html', 8 * KB),
      closest(all, 'rsc', 20 * KB),
      closest(all, 'html', 40 * KB),
      closest(all, 'rsc', 64 * KB),
      ...['html', 'rsc'].flatMap((kind) => [100 * KB, 1024 * KB].map((t) => closest(all, kind, t))),
    ]
    const latencyRows = []
    const linkRows = []
    const cpuRows = []
    for (const p of picks) {
      const n = p.bytes.length
      log(`get hits, ${p.kind} ${size(n)}`)
      const hit = (h, name) => async () => {
        const e = await h.get(p.file, [])
        if (!e || (await drain(e.value)) !== n) throw new Error(`expected a hit (${name})`)
      }
      const ops = n > 512 * KB ? 60 : 300
      const results = await compare(
        {
          plain: hit(handlers.plain, 'plain'),
          'level 1': hit(handlers.l1, 'level 1'),
          'level 6': hit(handlers.l6, 'level 6'),
        },
        { rounds: ROUNDS, ops, inFlight: 1 },
      )
      const by = Object.fromEntries(results.map((r) => [r.name, r]))
      latencyRows.push([
        `${p.kind} ${size(n)}`,
        fmt(by.plain.p50),
        fmt(by.plain.p99),
        fmt(by['level 1'].p50),
        fmt(by['level 1'].p99),
        `${(by['level 1'].p50 / by.plain.p50).toFixed(2)}x`,
        fmt(by['level 6'].p50),
        fmt(by['level 6'].p99),
      ])

      log(`get hits over the link, ${p.kind} ${size(n)}`)
      const linked = await compare(
        { plain: hit(overLink.plain, 'plain'), 'level 1': hit(overLink.l1, 'level 1') },
        { rounds: ROUNDS, ops: n > 512 * KB ? 30 : 150, inFlight: 1 },
      )
      const lb = Object.fromEntries(linked.map((r) => [r.name, r]))
      linkRows.push([
        `${p.kind} ${size(n)}`,
        fmt(lb.plain.p50),
        fmt(lb.plain.p99),
        fmt(lb['level 1'].p50),
        fmt(lb['level 1'].p99),
        `${(lb['level 1'].p50 / lb.plain.p50).toFixed(2)}x`,
      ])

      if (n < 96 * KB) continue
      log(`sets, ${p.kind} ${size(n)}`)
      const sets = n > 512 * KB ? 20 : 100
      const cpu = { plain: 0, l1: 0, l6: 0 }
      const wall = { plain: 0, l1: 0, l6: 0 }
      // Interleaved: one set of each in turn, so drift hits all three alike.
      for (let i = 0; i < sets * ROUNDS; i++) {
        for (const [name, h] of Object.entries(handlers)) {
          const c0 = process.cpuUsage()
          const t0 = process.hrtime.bigint()
          await h.set(`${p.file}#set`, Promise.resolve(entry(p.bytes)))
          wall[name] += Number(process.hrtime.bigint() - t0) / 1000
          const c = process.cpuUsage(c0)
          cpu[name] += c.user + c.system
        }
      }
      const per = (x) => x / (sets * ROUNDS)
      cpuRows.push([
        `${p.kind} ${size(n)}`,
        fmt(per(cpu.plain)),
        fmt(per(cpu.l1)),
        fmt(per(cpu.l6)),
        fmt(per(wall.plain)),
        fmt(per(wall.l1)),
        fmt(per(wall.l6)),
      ])
    }

    const table = (header, rows) => [
      `| ${header.join(' | ')} |`,
      `|${header.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
      ...rows.map((r) => `| ${r.join(' | ')} |`),
    ]
    const lines = [
      '### Compression of stored entries (bench/compression.mjs)',
      '',
      `Real payloads of the example app's build (examples/next-app, .next/server/app: HTML, RSC, segment data; /catalog/[rows] renders 30 to 1500 generated rows), stored through the 'use cache' handler with compression off, at level 1 (the default) and at level 6, codec deflate (zlib). Stored bytes: STRLEN of the entry (header included). Latency: get hits at 1 in flight, in-process tier off (every get reads Redis and, compressed, inflates), the three cases interleaved over ${ROUNDS} rounds (median of the rounds' p50 and p99). CPU: process.cpuUsage (user + system, zlib's thread pool included) around each set, interleaved, mean per set. Node ${process.version}, load average ${(await import('node:os')).loadavg()[0].toFixed(1)}.`,
      '',
      '**Bytes stored in Redis, by kind**',
      '',
      ...table(
        ['kind', 'files', 'plain', 'level 1', 'ratio', 'level 6', 'ratio'],
        Object.entries(totals).map(([kind, t]) => [
          kind,
          String(t.n),
          size(t.plain),
          size(t.l1),
          (t.l1 / t.plain).toFixed(3),
          size(t.l6),
          (t.l6 / t.plain).toFixed(3),
        ]),
      ),
      '',
      '<details><summary>Every file</summary>',
      '',
      ...table(['kind', 'file', 'plain', 'level 1', 'ratio', 'level 6', 'ratio'], storedRows),
      '',
      '</details>',
      '',
      '**Get-hit latency, 1 in flight (µs)**',
      '',
      ...table(
        [
          'payload',
          'plain p50',
          'plain p99',
          'level 1 p50',
          'level 1 p99',
          'level 1 / plain (p50)',
          'level 6 p50',
          'level 6 p99',
        ],
        latencyRows,
      ),
      '',
      `**Get-hit latency through a ${(LINK_BYTES_PER_SEC * 8) / 1e9} Gbit/s link, 1 in flight (µs)**`,
      '',
      "The same entries read through bench/lib/throttle.mjs, which delivers Redis's replies at that rate (requests pass at once).",
      '',
      ...table(
        [
          'payload',
          'plain p50',
          'plain p99',
          'level 1 p50',
          'level 1 p99',
          'level 1 / plain (p50)',
        ],
        linkRows,
      ),
      '',
      '**CPU and time per set (µs)**',
      '',
      ...table(
        [
          'payload',
          'CPU plain',
          'CPU level 1',
          'CPU level 6',
          'wall plain',
          'wall level 1',
          'wall level 6',
        ],
        cpuRows,
      ),
      '',
    ]
    process.stdout.write(lines.join('\n') + '\n')
  } finally {
    await close()
    await raw.close()
    link.stop()
    await redis?.stop()
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
