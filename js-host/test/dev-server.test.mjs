// Under a development server (`next dev`) the handlers keep their entries in the process and
// open no Redis connection, with one line that says so (env-options.ts, `localOnlyPhase`). The
// cases run the two modules a Next server loads (fleetcache/use-cache, fleetcache/incremental),
// or handlers configured in code, in a child process with the URL of a real redis-server, as
// `next dev` would with a `.env` that names the production Redis; the same script without the
// dev signals is the control that writes there.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

import { startRedis } from '../../tests/support/redis.mjs'

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist')

// One write and one read through each handler, a revalidateTag through each, then the keys this
// process can see in its own store, printed as the last line.
const SCRIPT = `
const useCache = require(${JSON.stringify(path.join(dist, 'use-cache.js'))})
const Incremental = require(${JSON.stringify(path.join(dist, 'incremental.js'))})
const { close } = require(${JSON.stringify(path.join(dist, 'index.js'))})
async function main() {
  const payload = Buffer.from('dev entry')
  const now = Date.now()
  await useCache.set('["dev","fn",[]]', Promise.resolve({
    value: new ReadableStream({ start(c) { c.enqueue(payload); c.close() } }),
    tags: ['dev-tag'], stale: 30, timestamp: now, expire: 3600, revalidate: 900,
  }))
  const got = await useCache.get('["dev","fn",[]]', [])
  const h = new Incremental()
  const page = { kind: 'APP_ROUTE', body: Buffer.from('route'), status: 200, headers: {} }
  await h.set('/dev-route', page, {
    kind: 'APP_ROUTE', isRoutePPREnabled: false, isFallback: false,
    cacheControl: { revalidate: 60, expire: 3600 },
  })
  const inc = await h.get('/dev-route', { kind: 'APP_ROUTE', isRoutePPREnabled: false, isFallback: false })
  await useCache.updateTags(['dev-tag'], { expire: 0 })
  await close()
  console.log(JSON.stringify({ useCacheHit: got !== undefined, incrementalHit: inc !== null }))
}
main().catch((err) => { console.error(err); process.exit(1) })
`

// The handlers a user configures in code (README, "configure in code"), with the URL in code.
const CODE_SCRIPT = `
const { createUseCacheHandler, createIncrementalCacheHandler, close } = require(${JSON.stringify(path.join(dist, 'index.js'))})
async function main() {
  const useCache = createUseCacheHandler({ redisUrl: process.env.TEST_REDIS_URL })
  const payload = Buffer.from('dev entry')
  await useCache.set('["dev","code",[]]', Promise.resolve({
    value: new ReadableStream({ start(c) { c.enqueue(payload); c.close() } }),
    tags: ['dev-tag'], stale: 30, timestamp: Date.now(), expire: 3600, revalidate: 900,
  }))
  const got = await useCache.get('["dev","code",[]]', [])
  const Incremental = createIncrementalCacheHandler({ redisUrl: process.env.TEST_REDIS_URL })
  const h = new Incremental()
  await h.set('/dev-route', { kind: 'APP_ROUTE', body: Buffer.from('route'), status: 200, headers: {} }, {
    kind: 'APP_ROUTE', isRoutePPREnabled: false, isFallback: false,
    cacheControl: { revalidate: 60, expire: 3600 },
  })
  const inc = await h.get('/dev-route', { kind: 'APP_ROUTE', isRoutePPREnabled: false, isFallback: false })
  await close()
  console.log(JSON.stringify({ useCacheHit: got !== undefined, incrementalHit: inc !== null }))
}
main().catch((err) => { console.error(err); process.exit(1) })
`

/** Runs `script` with `env` added to a clean environment; resolves with its exit and output. */
function runScript(env, script = SCRIPT) {
  const clean = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (
      !/^(REDIS_URL|FLEETCACHE_.*|NEXT_PHASE|NODE_ENV|__NEXT_DEV_SERVER|NEXT_PRIVATE_WORKER)$/.test(
        k,
      )
    )
      clean[k] = v
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { env: { ...clean, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.once('error', reject)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

const fleetcacheLines = (r) =>
  `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.startsWith('[fleetcache]'))

describe('under a development server', () => {
  let logDir
  let redis
  before(async () => {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-dev-'))
    redis = await startRedis({ logDir })
  })
  after(async () => {
    await redis?.stop()
    fs.rmSync(logDir, { recursive: true, force: true })
  })

  /** Every key on the server, and the connections other than the one asking. */
  async function redisState() {
    const keys = await redis.command('KEYS', '*')
    const clients = String(await redis.command('CLIENT', 'LIST'))
      .split('\n')
      .filter((l) => l.trim() !== '' && !/ cmd=client\|list /.test(l))
    return { keys, clients }
  }

  for (const [what, env, phase] of [
    [
      'next dev (16.4.6, 16.5.0: __NEXT_DEV_SERVER and NEXT_PRIVATE_WORKER)',
      { __NEXT_DEV_SERVER: '1', NEXT_PRIVATE_WORKER: '1', NODE_ENV: 'development' },
      'next dev',
    ],
    [
      'next dev (16.0.0: NEXT_PRIVATE_WORKER only)',
      { NEXT_PRIVATE_WORKER: '1', NODE_ENV: 'development' },
      'next dev',
    ],
  ]) {
    test(`${what}: in-process entries, no Redis connection, one line that says so`, async () => {
      await redis.command('FLUSHALL')
      const r = await runScript({ ...env, REDIS_URL: redis.url })
      assert.equal(r.code, 0, r.stderr)
      // The entries are served within the process: a dev server still caches.
      assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()), {
        useCacheHit: true,
        incrementalHit: true,
      })
      const lines = fleetcacheLines(r)
      assert.deepEqual(
        lines,
        [
          `[fleetcache] ${phase}: in-process store, Redis is not used by a development server (next start uses REDIS_URL)`,
        ],
        `${r.stdout}${r.stderr}`,
      )
      assert.deepEqual(await redisState(), { keys: [], clients: [] })
    })
  }

  test('a redisUrl given in code is not used either, and the line names it', async () => {
    await redis.command('FLUSHALL')
    const r = await runScript(
      { __NEXT_DEV_SERVER: '1', NODE_ENV: 'development', TEST_REDIS_URL: redis.url },
      CODE_SCRIPT,
    )
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()), {
      useCacheHit: true,
      incrementalHit: true,
    })
    assert.deepEqual(fleetcacheLines(r), [
      '[fleetcache] next dev: in-process store, Redis is not used by a development server (next start uses redisUrl)',
    ])
    assert.deepEqual(await redisState(), { keys: [], clients: [] })
  })

  test('an invalid setting still stops a development server, with the variable named', async () => {
    const r = await runScript({
      __NEXT_DEV_SERVER: '1',
      NODE_ENV: 'development',
      REDIS_URL: redis.url,
      FLEETCACHE_PREFIX: 'my app',
    })
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`)
    assert.deepEqual(fleetcacheLines(r), [
      '[fleetcache] invalid setting, the server does not start: FLEETCACHE_PREFIX: must match [A-Za-z0-9._-]{1,64}, got "my app"',
    ])
  })

  // `next start` keeps a NODE_ENV its shell exported (Next warns about it): such a production
  // server stays in the fleet.
  for (const nodeEnv of ['production', 'development']) {
    test(`the control: the same script under next start (NODE_ENV=${nodeEnv}) writes to Redis`, async () => {
      await redis.command('FLUSHALL')
      const r = await runScript({ REDIS_URL: redis.url, NODE_ENV: nodeEnv })
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()), {
        useCacheHit: true,
        incrementalHit: true,
      })
      const lines = fleetcacheLines(r)
      // No build where it runs: the namespace line, and the warning that goes with `none found`.
      assert.equal(lines.length, 2, lines.join('\n'))
      assert.match(lines[0], /^\[fleetcache\] namespace fleetcache:default \(deployment from none/)
      assert.match(lines[1], /^\[fleetcache\] no deployment id and no build id /)
      const { keys } = await redisState()
      assert.ok(
        keys.some((k) => /^fleetcache:default:uc-default:/.test(k)) &&
          keys.some((k) => /^fleetcache:default:inc:/.test(k)),
        `keys: ${keys.join(', ')}`,
      )
    })
  }

  test('a build stays in-process even with NODE_ENV=development, and says it is a build', async () => {
    await redis.command('FLUSHALL')
    const r = await runScript({
      REDIS_URL: redis.url,
      NODE_ENV: 'development',
      NEXT_PHASE: 'phase-production-build',
    })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(fleetcacheLines(r), [
      '[fleetcache] next build: in-process store, Redis is not used during a build (REDIS_URL is read by the server at start)',
    ])
    assert.deepEqual((await redisState()).keys, [])
  })
})
