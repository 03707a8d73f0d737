// `fleetcache seed` against a real redis-server: a seeded entry carries the
// time the build wrote it, and seeding never replaces an entry created at or after that time
// (the comparison is the core's seed_write script, run in Redis). The build is a minimal
// `.next` tree of one Pages Router ISR route, in the shape `next build` writes it.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { createIncrementalCacheHandler, close } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))
const run = promisify(execFile)
const KEY = '/route-cache/PAGES/test/$/isr'
const DEPLOYMENT = 'seed-test'
const PREFIX = 'seedtest'

let logDir
let redis
let dist

// The value of /isr as a render with counter `n` produces it.
const page = (n) => ({
  kind: 'PAGES',
  html: `<p>n=${n}</p>`,
  pageData: { pageProps: { n }, __N_SSG: true },
  headers: undefined,
  status: 200,
})
const CTX = { kind: 'PAGES', cacheControl: { revalidate: 3600, expire: 31536000 } }

// A `.next` directory holding the build's /isr (n=1), its files written at `builtAt` (ms).
function writeBuild(dir, builtAt) {
  const pages = path.join(dir, 'server', 'pages')
  fs.mkdirSync(pages, { recursive: true })
  fs.writeFileSync(path.join(dir, 'BUILD_ID'), 'b1')
  fs.writeFileSync(
    path.join(dir, 'prerender-manifest.json'),
    JSON.stringify({
      routes: { '/isr': { initialRevalidateSeconds: 3600, initialExpireSeconds: 31536000 } },
    }),
  )
  const v = page(1)
  fs.writeFileSync(path.join(pages, 'isr.html'), v.html)
  fs.writeFileSync(path.join(pages, 'isr.json'), JSON.stringify(v.pageData))
  fs.writeFileSync(
    path.join(pages, 'isr.meta'),
    JSON.stringify({ status: 200, routeCache: { key: KEY, owner: { kind: 'PAGES' } } }),
  )
  const t = new Date(builtAt)
  for (const f of ['isr.html', 'isr.json', 'isr.meta']) fs.utimesSync(path.join(pages, f), t, t)
  return fs.statSync(path.join(pages, 'isr.html')).mtimeMs
}

async function seed() {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_/.test(k)),
  )
  const r = await run(process.execPath, [CLI, 'seed', dist, '--deployment', DEPLOYMENT, '--json'], {
    env: { ...env, REDIS_URL: redis.url, FLEETCACHE_PREFIX: PREFIX },
    timeout: 60_000,
  })
  return JSON.parse(r.stdout)
}

// The singular handler a server of this deployment runs (no in-process tier: Redis is read).
function server() {
  const Handler = createIncrementalCacheHandler({
    redisUrl: redis.url,
    prefix: PREFIX,
    deploymentId: DEPLOYMENT,
    memoryBytes: 0,
    leases: false,
  })
  return new Handler()
}

describe('fleetcache seed', () => {
  before(async () => {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-seed-'))
    redis = await startRedis({ logDir })
    dist = path.join(logDir, '.next')
  })

  after(async () => {
    await close()
    await redis?.stop()
    fs.rmSync(logDir, { recursive: true, force: true })
  })

  test('stamps the time the build wrote the page, and never replaces a newer entry', async () => {
    // Built ten minutes ago: inside its revalidate (3600 s), so a hit, not a stale serve.
    const builtAt = writeBuild(dist, Date.now() - 10 * 60_000)
    const first = await seed()
    assert.equal(first.written, 1, JSON.stringify(first))
    const h = server()
    const seeded = await h.get(KEY, { kind: 'PAGES' })
    assert.ok(seeded, 'the seeded entry is read')
    assert.equal(seeded.value.pageData.pageProps.n, 1)
    assert.ok(
      Math.abs(seeded.lastModified - builtAt) < 1,
      `stamped ${seeded.lastModified}, built ${builtAt}`,
    )

    // The fleet renders the page again (n=100): a newer entry than the build's.
    await h.set(KEY, page(100), CTX)
    const runtime = await h.get(KEY, { kind: 'PAGES' })
    assert.equal(runtime.value.pageData.pageProps.n, 100)
    const again = await seed()
    assert.equal(again.written, 0, JSON.stringify(again))
    assert.deepEqual(again.kept, ['/isr'])
    const still = await h.get(KEY, { kind: 'PAGES' })
    assert.equal(still.value.pageData.pageProps.n, 100, 'seeding moved the page backwards')
    assert.equal(still.lastModified, runtime.lastModified)

    // A build newer than the stored entry replaces it.
    await close()
    const rebuilt = writeBuild(dist, Date.now())
    assert.ok(rebuilt > runtime.lastModified)
    const newer = await seed()
    assert.equal(newer.written, 1, JSON.stringify(newer))
    const h2 = server()
    const replaced = await h2.get(KEY, { kind: 'PAGES' })
    assert.equal(replaced.value.pageData.pageProps.n, 1)
    assert.ok(Math.abs(replaced.lastModified - rebuilt) < 1)
    // Seeding the same build twice keeps the first copy (equal times: nothing newer to bring).
    const twice = await seed()
    assert.equal(twice.written, 0, JSON.stringify(twice))
    assert.deepEqual(twice.kept, ['/isr'])
  })

  test('a page whose expire is over, counted from the build, is not stored', async () => {
    await redis.command('FLUSHALL')
    const pages = path.join(dist, 'server', 'pages')
    writeBuild(dist, Date.now())
    fs.writeFileSync(
      path.join(pages, 'isr.meta'),
      JSON.stringify({
        status: 200,
        cacheControl: { revalidate: 60, expire: 600 },
        routeCache: { key: KEY, owner: { kind: 'PAGES' } },
      }),
    )
    const old = new Date(Date.now() - 3600_000)
    for (const f of ['isr.html', 'isr.json', 'isr.meta'])
      fs.utimesSync(path.join(pages, f), old, old)
    const r = await seed()
    assert.equal(r.written, 0, JSON.stringify(r))
    assert.deepEqual(r.expired, ['/isr'])
    assert.equal(Number(await redis.command('DBSIZE')), 0)
  })
})
