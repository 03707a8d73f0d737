// make bench (memory and tag state): what the in-process tier retains against its
// budget, what the tag mirror costs per tag before and after pruning, and the full tag-state
// load at 10k / 100k / 1M tags by one process and by 10 processes starting together (Redis's
// longest command, time to a synced mirror, memory per tag). Writes a dated section into
// bench/REPORT.md, and fails (exit 1, after writing it) when any fleetcache command held Redis
// longer than MAX_COMMAND_MS during the tag-state part.
//
// Runs under `node --expose-gc`. One redis-server, started here on a free loopback port. Every
// loop is bounded by a count, and every child process by a deadline (BENCH_TAGS_DEADLINE_MS).
// BENCH_TAG_COUNTS (comma-separated) and BENCH_TAG_PROCESSES scale the load part.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { setImmediate as tick } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

import { scriptShas } from '../tests/support/observe.mjs'
import { startRedis } from '../tests/support/redis.mjs'
import { prependReport } from './lib/report.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkgDir = path.join(here, '..', 'js-host')
const require = createRequire(path.join(pkgDir, 'package.json'))

const COUNTS = (process.env.BENCH_TAG_COUNTS ?? '10000,100000,1000000').split(',').map(Number)
const PROCESSES = Number(process.env.BENCH_TAG_PROCESSES ?? 10)
const DEADLINE_MS = Number(process.env.BENCH_TAGS_DEADLINE_MS ?? 60_000)
/** The bound the tag-state part checks: no fleetcache command may hold Redis longer. */
const MAX_COMMAND_MS = 50
/** The core's default bound of a process's tag mirror (`tagMirrorMaxTags`). */
const DEFAULT_MAX_TAGS = require('./wasm/node/fleetcache_wasm.js').defaults().tagMirrorMaxTags
const TIER_BUDGET = 400 * 1024

const now = () => performance.timeOrigin + performance.now()
const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`
const netstrings = (items) => items.map((s) => `${Buffer.byteLength(s)}:${s},`).join('')

function table(header, rows) {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ]
}

// ---- child: one process loading the tag state -------------------------------------------

/**
 * A fresh process's load: a handler (engine, mirror, connection) that refreshes until its
 * mirror is synced (getExpiration of an unknown tag is 0 only then). Prints one JSON line.
 */
async function child(url, prefix, maxTags) {
  const { createUseCacheHandler, close } = require('./dist/index.js')
  const t0 = now()
  const before = process.memoryUsage()
  const h = createUseCacheHandler({
    redisUrl: url,
    prefix,
    deploymentId: 'b',
    memoryBytes: 0,
    leases: false,
    ...(maxTags === undefined ? {} : { tagMirrorMaxTags: Number(maxTags) }),
  })
  let refreshes = 0
  let synced = false
  // Bounded by the deadline; each pass is one refresh round trip (a page while loading).
  while (now() - t0 < DEADLINE_MS) {
    await h.refreshTags()
    refreshes += 1
    // Until synced, a tagged entry cannot be fresh: the expiry is infinitely late. After, a
    // tag no one revalidated expires nothing, or (past the bound) what its bucket expired.
    if ((await h.getExpiration(['bench-unknown-tag'])) <= Date.now()) {
      synced = true
      break
    }
  }
  const ms = now() - t0
  const after = process.memoryUsage()
  // The engine's wasm memory is external to V8 and not an ArrayBuffer view: external less
  // arrayBuffers is mostly it (it only grows, so this is its high-water mark).
  const wasm = after.external - after.arrayBuffers - (before.external - before.arrayBuffers)
  await close()
  process.stdout.write(
    JSON.stringify({ synced, ms, refreshes, wasm, rss: after.rss - before.rss }) + '\n',
  )
}

// ---- parent -----------------------------------------------------------------------------

/** Lua that writes `count` tag records, as TAG_UPDATE leaves them: state, log and meta agree. */
const GENERATE = `
local state, log, meta = KEYS[1], KEYS[2], KEYS[3]
local first, count, t = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
redis.call('HSETNX', meta, 'epoch', ARGV[4])
local ver = redis.call('HINCRBY', meta, 'ver', 1)
redis.call('HSET', meta, 'v:' .. ver, ARGV[4] .. ver)
local rec = '0,' .. t .. ',0,0,' .. t
local i = first
while i < first + count do
  local hs, zs = {}, {}
  local last = math.min(i + 1999, first + count - 1)
  for j = i, last do
    local tag = 'bench-tag-' .. j
    hs[#hs + 1] = tag
    hs[#hs + 1] = rec
    zs[#zs + 1] = ver
    zs[#zs + 1] = tag
  end
  redis.call('HSET', state, unpack(hs))
  redis.call('ZADD', log, unpack(zs))
  i = last + 1
end
return ver`

/**
 * sha1 -> script name, for the fleetcache scripts as they are sent (the engine's own list,
 * `scriptShas`; `longestCommand` fails on a script it cannot name).
 */
function scriptNames() {
  return new Map([...scriptShas()].map(([name, sha]) => [sha, name.toUpperCase()]))
}

/** Commands only fleetcache's scripts call (the processes never send them themselves). */
const INSIDE_SCRIPTS = new Set([
  // The page scripts' server name (tag_page.lua); a process's own INFO memory at start (its
  // eviction-policy check) is counted with them.
  'INFO',
  'HGET',
  'HSCAN',
  'HSET',
  'HSETNX',
  'HDEL',
  'HINCRBY',
  'ZADD',
  'ZRANGE',
  'ZRANGEBYSCORE',
  'ZREM',
])

/** The longest command in SLOWLOG since the last reset, fleetcache's scripts named. */
async function longestCommand(client, names) {
  const log = await client.sendCommand(['SLOWLOG', 'GET', '1000000'])
  let worst = { us: 0, what: '-' }
  let commands = 0
  const all = []
  const kinds = new Map()
  for (const [, , us, argv] of log) {
    const cmd = String(argv[0]).toUpperCase()
    if (cmd === 'SLOWLOG' || cmd === 'CONFIG') continue
    // Calls made inside a script are logged too; the script's own entry covers their time.
    if (INSIDE_SCRIPTS.has(cmd)) {
      worst = Number(us) > worst.us ? { us: Number(us), what: `${cmd} in a script` } : worst
      continue
    }
    commands += 1
    all.push(Number(us))
    const what = cmd === 'EVALSHA' ? names.get(String(argv[1])) : cmd
    if (what === undefined) throw new Error(`EVALSHA of a script no file under src/lua hashes to`)
    kinds.set(what, (kinds.get(what) ?? 0) + 1)
    if (Number(us) > worst.us) worst = { us: Number(us), what }
  }
  all.sort((a, b) => a - b)
  const p99 = all.length > 0 ? all[Math.min(all.length - 1, Math.floor(all.length * 0.99))] : 0
  const over = (ms) => all.filter((us) => us > ms * 1000).length
  return {
    ...worst,
    commands,
    p99,
    over20: over(20),
    over50: over(MAX_COMMAND_MS),
    kinds: [...kinds].map(([k, n]) => `${k} ${n}`).join(', '),
  }
}

/**
 * The command that starts a child: at a lower CPU priority when `nice` exists, so that ten
 * processes on a small machine do not preempt redis-server in the middle of a command (which
 * SLOWLOG would count as the command's time; in production Redis has its own cores).
 */
const NICE = fs.existsSync('/usr/bin/nice')
  ? ['/usr/bin/nice', '-n', '19', process.execPath]
  : [process.execPath]

/** Runs `args` in a child process (this file); resolves with the JSON line it prints. */
function runChild(args) {
  return runChildren(1, args).then(([r]) => r)
}

function runChildren(n, args) {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve) => {
          const p = spawn(NICE[0], [...NICE.slice(1), ...args], {
            stdio: ['ignore', 'pipe', 'pipe'],
          })
          let out = ''
          let err = ''
          p.stdout.on('data', (d) => (out += d))
          p.stderr.on('data', (d) => (err += d))
          // The child stops itself at its deadline; this is the backstop.
          const kill = setTimeout(() => p.kill('SIGKILL'), DEADLINE_MS + 30_000)
          p.on('exit', () => {
            clearTimeout(kill)
            const line = out.trim().split('\n').pop() ?? ''
            try {
              resolve(JSON.parse(line))
            } catch {
              resolve({ synced: false, ms: Number.NaN, error: err.slice(-500) || out.slice(-500) })
            }
          })
        }),
    ),
  )
}

/** Item 1's workload (js-host/test/tier-memory.test.mjs) against one tier of TIER_BUDGET. */
async function tierRetained(redisUrl) {
  const { createUseCacheHandler } = require('./dist/index.js')
  const opts = (memoryBytes, n) => ({
    redisUrl,
    prefix: 'benchtier',
    deploymentId: 'b',
    memoryBytes,
    leases: false,
    readTimeoutMs: 10_000,
    connectTimeoutMs: 3000 + n,
  })
  const writer = createUseCacheHandler(opts(0, 1))
  const PAGES = 60
  const COLD = 1200
  const entries = [
    ...Array.from({ length: PAGES }, (_, p) => [`hot-${p}`, 1024]),
    ...Array.from({ length: COLD }, (_, i) => [`cold-${i}`, 1000 + (i % 48)]),
  ]
  for (let i = 0; i < entries.length; i += 32) {
    await Promise.all(
      entries.slice(i, i + 32).map(([key, size]) =>
        writer.set(
          key,
          Promise.resolve({
            value: new ReadableStream({
              start(c) {
                c.enqueue(Buffer.alloc(size, 0x61))
                c.close()
              },
            }),
            tags: ['tm'],
            stale: 30,
            timestamp: now(),
            expire: 3600,
            revalidate: 900,
          }),
        ),
      ),
    )
  }
  const reader = createUseCacheHandler(opts(TIER_BUDGET, 2))
  await reader.refreshTags()
  const readAll = async (keys) => {
    for (const e of await Promise.all(keys.map((k) => reader.get(k, [])))) {
      if (e === undefined) continue
      const r = e.value.getReader()
      while (!(await r.read()).done);
    }
  }
  await readAll(['absent'])
  const retained = async () => {
    for (let i = 0; i < 3; i++) {
      globalThis.gc()
      await tick()
    }
    return process.memoryUsage().arrayBuffers
  }
  const before = await retained()
  let s = 14
  const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32
  for (let round = 0; round < 4; round++) {
    for (let p0 = 0; p0 < PAGES; p0 += 12) {
      await Promise.all(
        Array.from({ length: 12 }, async (_, j) => {
          const p = p0 + j
          const cold = Array.from({ length: 39 }, () => `cold-${Math.floor(rnd() * COLD)}`)
          await readAll([`hot-${p}`, ...cold])
          await readAll([`hot-${p}`])
        }),
      )
    }
  }
  const held = (await retained()) - before
  return { held }
}

/**
 * The mirror of a process over a simulated week of per-item revalidations by other instances
 * (one tag every 3 s, in refresh replies a minute apart, fake clock), with the pruning age at
 * one day and at longer than the week. Memory: the process's external memory outside
 * ArrayBuffers, which the engine's wasm memory dominates (it only grows: a high-water mark).
 */
function mirrorWeek(pruneAfterMs) {
  // The tools module: `tagCount` is left out of the server module (no server path reads it).
  const wasm = require('./wasm/tools/node/fleetcache_wasm.js')
  const engine = new wasm.Engine({
    prefix: 'bm',
    deployment: 'b',
    maxTtlSeconds: 3600,
    tagPruneAfterMs: pruneAfterMs,
  })
  const t0 = 1_795_690_530_000
  const ext = () => {
    const m = process.memoryUsage()
    return m.external - m.arrayBuffers
  }
  // A whole (empty) state: epoch, version, id, full, the page-write number and id, the cursor.
  engine.applyRefresh(Buffer.from(netstrings(['E', '0', 'v', '1', '0', '', '0'])), t0)
  const start = ext()
  const DAY = 24 * 60
  const days = []
  let next = 0
  for (let m = 1; m <= 7 * DAY; m++) {
    const t = t0 + m * 60_000
    // A partial reply: epoch, version, id, not full, no page write, then tag, record, ...
    const items = ['E', String(m), 'v', '0', '0', '']
    for (let i = 0; i < 20; i++) items.push(`item-${next++}`, `0,${t},0,0,${t}`)
    engine.applyRefresh(Buffer.from(netstrings(items)), t)
    if (m % DAY === 0) days.push({ heard: next, held: engine.tagCount, bytes: ext() - start })
  }
  engine.free()
  return days
}

/**
 * The mirror's memory (its high-water mark) after loading a state of `n` tags page by page
 * with a bound of `maxTags`, and after loading a second one that replaced it (a flush and a
 * restore: the same tags revalidated later), while it holds the first: a reload keeps exact
 * what the mirror holds exactly, so this is the bound's worst case. Replies as the refresh and
 * page scripts write them, fake clock.
 */
function mirrorReload(n, maxTags) {
  const wasm = require('./wasm/node/fleetcache_wasm.js')
  const engine = new wasm.Engine({ prefix: 'bm', deployment: 'b', tagMirrorMaxTags: maxTags })
  const ext = () => {
    const m = process.memoryUsage()
    return m.external - m.arrayBuffers
  }
  const start = ext()
  const t0 = 1_795_690_530_000
  const load = (epoch, t) => {
    const rec = `0,${t},0,0,${t}`
    const pairs = (first) => {
      const out = []
      for (let i = first; i < Math.min(n, first + 1000); i++) out.push(`tag-${i}`, rec)
      return out
    }
    // The full reply carries the first page; each page names the next cursor, '0' at the end.
    const cursor = (first) => (first + 1000 >= n ? '0' : String(first + 1000))
    engine.applyRefresh(
      Buffer.from(netstrings([epoch, '1', 'v1', '1', '0', '', cursor(0), ...pairs(0)])),
      t,
    )
    for (let first = 1000; first < n; first += 1000) {
      const page = ['page', cursor(first), '1', 'v1', '0', ...pairs(first)]
      engine.applyRefresh(Buffer.from(netstrings(page)), t)
    }
    engine.applyRefresh(Buffer.from(netstrings([epoch, '1', 'v1', '0', '0', ''])), t)
  }
  load('E1', t0)
  const first = ext() - start
  load('E2', t0 + 60_000)
  const second = ext() - start
  engine.free()
  return { first, second }
}

async function main() {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-bench-tags-'))
  const redis = await startRedis({ logDir })
  const { createClient } = require('redis')
  const client = createClient({ url: redis.url })
  await client.connect()
  const names = scriptNames()
  const load = os.loadavg()[0]
  const t0 = now()
  const violations = []
  const rows = []
  try {
    console.log('tier retained memory...')
    const tier = await tierRetained(redis.url)
    console.log('mirror over a simulated week...')
    // Each in a process of its own: wasm memory never shrinks, so one would hide the other.
    const self = fileURLToPath(import.meta.url)
    const pruned = await runChild([self, '--mirror', String(86_400_000)])
    const unpruned = await runChild([self, '--mirror', String(30 * 86_400_000)])
    console.log('mirror past its bound...')
    const RELOAD_TAGS = 1_000_000
    const reloads = []
    for (const bound of [DEFAULT_MAX_TAGS, RELOAD_TAGS]) {
      reloads.push([bound, await runChild([self, '--reload', String(RELOAD_TAGS), String(bound)])])
    }

    await client.sendCommand(['CONFIG', 'SET', 'slowlog-max-len', '200000'])
    await client.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', '0'])
    for (const n of COUNTS) {
      await client.sendCommand(['FLUSHALL'])
      const prefix = `bt${n}`
      const keys = ['state', 'log', 'meta'].map((k) => `${prefix}:tags:{${prefix}}:${k}`)
      const g0 = now()
      const t = String(Math.floor(Date.now()))
      for (let first = 0; first < n; first += 10_000) {
        const count = String(Math.min(10_000, n - first))
        await client.sendCommand(['EVAL', GENERATE, '3', ...keys, String(first), count, t, 'gen'])
      }
      const genMs = now() - g0
      const redisBytes = Number(
        /used_memory:(\d+)/.exec(await client.sendCommand(['INFO', 'memory']))?.[1] ?? 0,
      )
      // The default bound, and past it one process holding every tag exactly, for comparison.
      const runs = [
        [1, undefined],
        [PROCESSES, undefined],
        ...(n > DEFAULT_MAX_TAGS ? [[1, n]] : []),
      ]
      for (const [procs, maxTags] of runs) {
        const bound = maxTags ?? DEFAULT_MAX_TAGS
        console.log(`${n} tags, ${procs} process(es) starting together, bound ${bound}...`)
        await client.sendCommand(['SLOWLOG', 'RESET'])
        const results = await runChildren(procs, [
          fileURLToPath(import.meta.url),
          '--child',
          redis.url,
          prefix,
          ...(maxTags === undefined ? [] : [String(maxTags)]),
        ])
        const worst = await longestCommand(client, names)
        const ok = results.filter((r) => r.synced)
        const times = ok.map((r) => r.ms).sort((a, b) => a - b)
        const wasm = ok.map((r) => r.wasm).sort((a, b) => a - b)
        const failed = results.filter((r) => !r.synced)
        if (worst.us / 1000 > MAX_COMMAND_MS)
          violations.push(
            `${n} tags, ${procs} processes: ${worst.what} held Redis ${(worst.us / 1000).toFixed(1)} ms`,
          )
        if (failed.length > 0)
          violations.push(
            `${n} tags, ${procs} processes: ${failed.length} never synced (${failed[0]?.error ?? 'deadline'})`,
          )
        rows.push([
          n.toLocaleString('en'),
          bound.toLocaleString('en'),
          String(procs),
          `${ok.length}/${procs}`,
          times.length > 0
            ? `${(times[0] / 1000).toFixed(2)}–${(times[times.length - 1] / 1000).toFixed(2)} s`
            : '-',
          `${(worst.us / 1000).toFixed(2)} ms (${worst.what})`,
          `${(worst.p99 / 1000).toFixed(2)} ms`,
          `${worst.over20} / ${worst.over50}`,
          `${worst.commands} (${worst.kinds})`,
          wasm.length > 0 ? mib(wasm[wasm.length - 1]) : '-',
          wasm.length > 0 ? `${Math.round(wasm[wasm.length - 1] / Math.min(n, bound))} B` : '-',
          `${Math.round(redisBytes / n)} B`,
          `${(genMs / 1000).toFixed(1)} s`,
        ])
      }
    }
    await client.sendCommand(['FLUSHALL'])
    await client.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', '10000'])

    const lines = [
      `## ${new Date().toISOString()} — Memory bounds and tag state`,
      '',
      `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; load average ${load.toFixed(2)} when the run started. One redis-server on loopback, started by the benchmark (\`bench/tags.mjs\`). Took ${((now() - t0) / 1000).toFixed(0)} s.`,
      '',
      '### In-process tier: retained memory against its budget',
      '',
      `The workload (as \`js-host/test/tier-memory.test.mjs\`): 60 pages, 12 at once, each reading 40 entries of about 1 KB at once (its hot entry and 39 of 1,200 others), then its hot entry again; 4 rounds. Retained: ArrayBuffer memory after full collections, over what it was before the reads.`,
      '',
      ...table(
        ['budget (memoryBytes)', 'retained', 'retained / budget'],
        [
          [
            `${TIER_BUDGET / 1024} KiB`,
            `${(tier.held / 1024).toFixed(0)} KiB`,
            `${(tier.held / TIER_BUDGET).toFixed(2)}x`,
          ],
        ],
      ),
      '',
      '### Tag mirror over a week of per-item revalidations',
      '',
      "One engine per pruning age, each in a process of its own, fake clock: other instances revalidate a new tag every 3 s (201,600 over the week), heard in refresh replies a minute apart; max TTL 1 h; the pruning age 1 day, and 30 days for comparison (nothing is pruned within the week). Memory is the engine's wasm memory (its high-water mark: it never shrinks), read as the process's external memory outside ArrayBuffers.",
      '',
      ...table(
        ['pruning age', ...pruned.map((_, i) => `day ${i + 1}`)],
        [
          ['1 day: tags held', pruned, (d) => d.held.toLocaleString('en')],
          ['1 day: memory', pruned, (d) => mib(d.bytes)],
          ['1 day: bytes per tag held', pruned, (d) => `${Math.round(d.bytes / d.held)} B`],
          ['30 days: tags held', unpruned, (d) => d.held.toLocaleString('en')],
          ['30 days: memory', unpruned, (d) => mib(d.bytes)],
          ['30 days: bytes per tag held', unpruned, (d) => `${Math.round(d.bytes / d.held)} B`],
        ].map(([label, days, cell]) => [label, ...days.map(cell)]),
      ),
      '',
      `Before pruning (day 1, nothing old enough yet) the mirror costs about ${Math.round(pruned[0].bytes / pruned[0].held)} bytes per tag. With pruning at 1 day, memory after day 2 stays at ${mib(pruned[1].bytes)}–${mib(pruned[6].bytes)} while ${(pruned[6].heard - pruned[1].heard).toLocaleString('en')} more tags come and go; with a pruning age longer than the week it grows to ${mib(unpruned[6].bytes)}.`,
      '',
      '### Tag mirror past its bound',
      '',
      `One engine per bound, each in a process of its own, fake replies: a state of ${RELOAD_TAGS.toLocaleString('en')} tags loaded page by page, then a second state with the same tags revalidated later (a flush and a restore) loaded while the mirror holds the first (a reload keeps exact what the mirror holds exactly: the bound's worst case). Memory: the engine's wasm memory, its high-water mark, as above.`,
      '',
      ...table(
        ['bound (tagMirrorMaxTags)', 'after the first load', 'after the reload'],
        reloads.map(([bound, r]) => [bound.toLocaleString('en'), mib(r.first), mib(r.second)]),
      ),
      '',
      '### Loading the whole tag state',
      '',
      `Fresh processes (a handler each, no tier, no leases; at \`nice -n 19\`, so that they do not preempt redis-server mid-command on this small machine) start together against a tag state of n live tags and refresh until their mirror is synced (each process stops at ${DEADLINE_MS / 1000} s). The state is generated by a Lua script in batches of 10,000 (state, log and meta as the update script leaves them). Redis's longest command: \`SLOWLOG\` with \`slowlog-log-slower-than 0\`, over every command of the processes. Process memory: the largest process's wasm memory growth (high-water mark, the page-by-page load included); per tag held exactly: over the smaller of n and the bound. Past the bound (\`tagMirrorMaxTags\`, default ${DEFAULT_MAX_TAGS.toLocaleString('en')}) a process folds the least recently revalidated tags (docs/operating.md, "Tag state in each process"); one process with a bound of n, holding every tag exactly, is measured beside it. Check: no fleetcache command may hold Redis more than ${MAX_COMMAND_MS} ms.`,
      '',
      ...table(
        [
          'tags',
          'bound (tagMirrorMaxTags)',
          'processes',
          'synced',
          'time to synced (fastest–slowest)',
          'longest Redis command',
          'p99 command',
          `commands over 20 / ${MAX_COMMAND_MS} ms`,
          'commands',
          'process memory',
          'process memory per tag held exactly',
          'Redis memory per tag',
          'generated in',
        ],
        rows,
      ),
      '',
      violations.length === 0
        ? `Check passed: no fleetcache command held Redis more than ${MAX_COMMAND_MS} ms, and every process synced.`
        : `**Check FAILED**: ${violations.join('; ')}.`,
      '',
    ]
    const report = prependReport(lines)
    console.log(lines.join('\n'))
    console.log(`wrote ${path.relative(process.cwd(), report)}`)
  } finally {
    await client.close()
    const { close } = require('./dist/index.js')
    await close()
    await redis.stop()
  }
  if (violations.length > 0) {
    console.error(`bench/tags.mjs: FAILED: ${violations.join('; ')}`)
    process.exit(1)
  }
}

if (process.argv[2] === '--reload') {
  const [n, maxTags] = [Number(process.argv[3]), Number(process.argv[4])]
  process.stdout.write(JSON.stringify(mirrorReload(n, maxTags)) + '\n')
  process.exit(0)
} else if (process.argv[2] === '--mirror') {
  process.stdout.write(JSON.stringify(mirrorWeek(Number(process.argv[3]))) + '\n')
  process.exit(0)
} else if (process.argv[2] === '--child') {
  child(process.argv[3], process.argv[4], process.argv[5]).then(
    () => process.exit(0),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
} else {
  if (typeof globalThis.gc !== 'function') {
    console.error('bench/tags.mjs needs node --expose-gc')
    process.exit(1)
  }
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
}
