// How many Redis commands a push process's page reads send while another process rewrites
// pages: the reader reads 10 pages in a loop (tier hits while their copies are bound) while a
// writer process rewrites them and 50 other pages, half and half, at RATES per second. A
// rewrite of a page marks the reader's copy, and its next read goes to Redis; whether that
// read binds its value (page_read.lua names the last page write known: docs/decisions/0031,
// "The value a read binds") decides whether the reads after it are tier hits again.
// BASELINE and NEW are two checkouts with js-host built (`make pack`); rounds interleave them.
// Usage: BASELINE=/path/to/old NEW=/path/to/new node bench/page-reads-under-writes.mjs
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { startRedis } from '../tests/support/redis.mjs'

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '')
const load = (dir) => createRequire(dir + '/js-host/package.json')('./dist/index.js')
const CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
const SET = { ...CTX, cacheControl: { revalidate: 3600, expire: 7200 }, tags: [] }
const page = (v) => ({
  kind: 'APP_PAGE',
  html: `<p>${String(v)}</p>`,
  rscData: undefined,
  headers: {},
  postponed: undefined,
  status: 200,
  segmentData: undefined,
})

// The writer: a process of its own (its own runtime), rewriting for `ms`.
if (process.argv[2] === 'writer') {
  const [, , , dir, url, prefix, rate, ms] = process.argv
  const W = load(dir).createIncrementalCacheHandler({ prefix, deploymentId: 'd', redisUrl: url })
  const w = new W({})
  const end = Date.now() + Number(ms)
  let n = 0
  while (Date.now() < end) {
    await w.set(n % 2 === 0 ? `/p${String((n / 2) % 10)}` : `/w${String(n % 50)}`, page(n), SET)
    n++
    await new Promise((r) => setTimeout(r, 1000 / Number(rate)))
  }
  console.log(JSON.stringify({ writes: n }))
  process.exit(0)
}

const builds = { baseline: process.env.BASELINE ?? root, new: process.env.NEW ?? root }
const RATES = (process.env.RATES ?? '50,200,500').split(',').map(Number)
const ROUNDS = Number(process.env.R ?? 2)
const MS = 4000
const redis = await startRedis({ logDir: process.env.TMPDIR ?? '/tmp' })
const me = fileURLToPath(import.meta.url)
for (let round = 1; round <= ROUNDS; round++) {
  for (const rate of RATES) {
    for (const [name, dir] of Object.entries(builds)) {
      const pkg = load(dir)
      const prefix = `prw${String(round)}${name}${String(rate)}`
      const R = pkg.createIncrementalCacheHandler({
        prefix,
        deploymentId: 'd',
        redisUrl: redis.url,
        tagSync: 'push',
      })
      const h = new R({})
      for (let i = 0; i < 10; i++) await h.set(`/p${String(i)}`, page(i), SET)
      // Caught up and every copy bound before the writer starts.
      for (let k = 0; k < 200; k++) {
        for (let i = 0; i < 10; i++) await h.get(`/p${String(i)}`, CTX)
        await new Promise((r) => setTimeout(r, 5))
      }
      const args = [me, 'writer', dir, redis.url, prefix, String(rate), String(MS)]
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] })
      let said = ''
      child.stdout.on('data', (d) => (said += String(d)))
      const exited = new Promise((r) => child.on('exit', r))
      await new Promise((r) => setTimeout(r, 300))
      const before = pkg.stats().redis.ok
      let reads = 0
      const end = Date.now() + MS - 800
      while (Date.now() < end) {
        for (let i = 0; i < 10; i++) {
          await h.get(`/p${String(i)}`, CTX)
          reads++
        }
        await new Promise((r) => setImmediate(r))
      }
      const commands = pkg.stats().redis.ok - before
      await exited
      const { writes } = JSON.parse(said.trim().split('\n').pop() ?? '{}')
      console.log(JSON.stringify({ round, rate, build: name, writes, reads, commands }))
    }
  }
}
await redis.stop()
process.exit(0)
