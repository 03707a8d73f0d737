// A cache key holding a lone UTF-16 surrogate is refused the same way by every surface: the
// 'use cache' handler, the singular handler, the workers entry and `fleetcache seed`. The
// check is the binding's `entryKey` (the only place that still sees the key as UTF-16); as
// UTF-8 such a key becomes U+FFFD and would share an entry with `lone\uFFFD` and `lone\uDC00`.
// Real redis-server for the Node handlers and the CLI; the workers entry in memory.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { createCache } from 'fleetcache/worker'
import { createIncrementalCacheHandler, createUseCacheHandler, close } from '../esm/index.mjs'
import { capture, startTestRedis, text, useCacheEntry } from './helpers.mjs'

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const wasmBytes = fs.readFileSync(new URL(import.meta.resolve('fleetcache/wasm')))
const LONE = 'lone\uD800'
const LOOKALIKES = ['lone\uFFFD', 'lone\uDC00']

let redis
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-ill-formed-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
  fs.rmSync(logDir, { recursive: true, force: true })
})

const common = () => ({
  redisUrl: redis.url,
  prefix: 'illformed',
  deploymentId: 'd1',
  memoryBytes: 0,
  leases: false,
  ...redis.options,
})

describe('a key with a lone surrogate', () => {
  test("'use cache' handler: not stored, a miss, and the log names the code", async () => {
    await redis.command('FLUSHALL')
    const h = createUseCacheHandler({ ...common(), connectTimeoutMs: 2101 })
    const lines = await capture(async () => {
      await h.set(LONE, Promise.resolve(useCacheEntry('first')))
      for (const k of [LONE, ...LOOKALIKES]) assert.equal(await h.get(k, []), undefined, k)
    })
    assert.ok(
      lines.some((l) => l.includes('ERR_KEY_ILL_FORMED')),
      JSON.stringify(lines),
    )
    assert.equal(Number(await redis.command('DBSIZE')), 0, 'nothing written')
    // A well-formed key with a surrogate pair is an ordinary key.
    await h.set('pair\uD83D\uDE00', Promise.resolve(useCacheEntry('ok')))
    assert.equal(await text((await h.get('pair\uD83D\uDE00', [])).value), 'ok')
  })

  test('singular handler: not stored, a miss, and the log names the code', async () => {
    await redis.command('FLUSHALL')
    const Handler = createIncrementalCacheHandler({ ...common(), connectTimeoutMs: 2102 })
    const h = new Handler()
    const value = { kind: 'APP_ROUTE', body: Buffer.from('first'), headers: {}, status: 200 }
    const ctx = { cacheControl: { revalidate: 60, expire: 3600 } }
    const lines = await capture(async () => {
      await h.set(LONE, value, ctx)
      for (const k of [LONE, ...LOOKALIKES])
        assert.equal(await h.get(k, { kind: 'APP_ROUTE' }), null, k)
    })
    assert.ok(
      lines.some((l) => l.includes('ERR_KEY_ILL_FORMED')),
      JSON.stringify(lines),
    )
    assert.equal(Number(await redis.command('DBSIZE')), 0, 'nothing written')
  })

  test('workers entry: not stored, a miss, and onError names the code', async () => {
    const cache = createCache({ module: wasmBytes, deploymentId: 'd1' })
    const errors = []
    cache.onError = (m) => errors.push(m)
    await cache.set(LONE, useCacheEntry('first'))
    for (const k of [LONE, ...LOOKALIKES]) assert.equal(await cache.get(k), undefined, k)
    assert.ok(
      errors.length >= 2 && errors.every((m) => m.includes('ERR_KEY_ILL_FORMED')),
      JSON.stringify(errors),
    )
  })

  test('fleetcache seed: the route is skipped with the code, nothing written', async () => {
    await redis.command('FLUSHALL')
    const dist = path.join(logDir, '.next')
    const pages = path.join(dist, 'server', 'pages')
    fs.mkdirSync(pages, { recursive: true })
    fs.writeFileSync(path.join(dist, 'BUILD_ID'), 'b1')
    fs.writeFileSync(path.join(dist, 'prerender-manifest.json'), JSON.stringify({ routes: {} }))
    fs.writeFileSync(path.join(pages, 'lone.html'), '<p>lone</p>')
    fs.writeFileSync(path.join(pages, 'lone.json'), '{}')
    // JSON.stringify writes the lone surrogate as the escape `\ud800`, as a build could.
    fs.writeFileSync(
      path.join(pages, 'lone.meta'),
      JSON.stringify({ status: 200, routeCache: { key: LONE, owner: { kind: 'PAGES' } } }),
    )
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_/.test(k)),
    )
    const r = await promisify(execFile)(
      process.execPath,
      [CLI, 'seed', dist, '--deployment', 'd1', '--json'],
      { env: { ...env, REDIS_URL: redis.url, FLEETCACHE_PREFIX: 'illformed' }, timeout: 60_000 },
    )
    const out = JSON.parse(r.stdout)
    assert.equal(out.written, 0, r.stdout)
    assert.ok(
      out.skipped.some((s) => s.startsWith('/lone: ') && s.includes('ERR_KEY_ILL_FORMED')),
      r.stdout,
    )
    assert.equal(Number(await redis.command('DBSIZE')), 0, 'nothing written')
  })
})
