// Two versions of the package in one process (two copies in node_modules: a dependency that
// brings its own) share the process-wide registry of runtimes (src/closing.ts), but not a
// runtime, nor a request's scope: one version's handlers never drive or read an object another
// version made. Configured alike,
// each version opens its own runtime, and `close()` of either shuts every runtime of both
// (docs/operating.md, "Shutdown"). The process's
// once-only warnings are once per version: each version checks the running Next.js against its
// own range, and each warns of an invalid setting in a build.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, before, test } from 'node:test'

import { startRedis } from '../../tests/support/redis.mjs'
import { waitFor } from '../../tests/support/util.mjs'
import { OURS, installCopy } from './package-copies.mjs'

let redis
let tmp

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-package-versions-'))
  redis = await startRedis({ logDir: tmp })
})

after(async () => {
  await createRequire(import.meta.url)('../dist/index.js').close()
  await redis.stop()
  fs.rmSync(tmp, { recursive: true, force: true })
})

/** The clients connected to the test's Redis, but the one asking. */
async function clients() {
  const list = await redis.command('CLIENT', 'LIST')
  return String(list)
    .split('\n')
    .filter((l) => l.trim() !== '' && !/ cmd=client\|list /.test(l))
}

test('two versions configured alike get a runtime each, and one close() shuts both', async () => {
  const a = installCopy(tmp, 'a', OURS)
  const b = installCopy(tmp, 'b', `${OURS}-other`)
  // One version through CommonJS, the other through its ESM entry.
  const first = createRequire(path.join(tmp, 'a', 'index.js'))('fleetcache')
  assert.equal(
    createRequire(path.join(tmp, 'a', 'index.js')).resolve('fleetcache'),
    path.join(a, 'dist', 'index.js'),
  )
  const second = await import(pathToFileURL(path.join(b, 'esm', 'index.mjs')).href)
  assert.notEqual(first.close, second.close, 'two copies of the package')

  const runtimes = globalThis[Symbol.for('fleetcache.runtimes')] ?? new Map()
  const before = new Set(runtimes.values())
  const options = { redisUrl: redis.url, prefix: 'package-versions', deploymentId: 'd1' }
  const h1 = first.createUseCacheHandler(options)
  const h2 = second.createUseCacheHandler(options)
  await h1.refreshTags()
  await h2.refreshTags()
  const made = [...globalThis[Symbol.for('fleetcache.runtimes')].values()].filter(
    (r) => !before.has(r),
  )
  assert.equal(made.length, 2, 'one runtime per version, not one shared')
  assert.notEqual(made[0], made[1])
  await waitFor(async () => (await clients()).length >= 2, {
    timeoutMs: 5000,
    what: 'a connection per runtime',
  })
  // One close(), from the first version: every runtime of both is shut.
  await first.close()
  assert.equal(globalThis[Symbol.for('fleetcache.runtimes')].size, 0, 'the registry is empty')
  await waitFor(async () => (await clients()).length === 0, {
    timeoutMs: 5000,
    what: 'no client left on Redis',
  })
})

/** The handlers in the request scope each storage under a `fleetcache.requestScope` key holds. */
function scopeStores() {
  return Object.getOwnPropertySymbols(globalThis)
    .filter((k) => k.description.startsWith('fleetcache.requestScope'))
    .map((k) => globalThis[k].getStore()?.handlers ?? [])
}

test("each version opens a request's scope in its own storage: no version's scope holds another's handler", async () => {
  installCopy(tmp, 'scope-x', `${OURS}-x`)
  const y = installCopy(tmp, 'scope-y', `${OURS}-y`)
  const first = createRequire(path.join(tmp, 'scope-x', 'index.js'))('fleetcache')
  const second = await import(pathToFileURL(path.join(y, 'esm', 'index.mjs')).href)
  const options = { redisUrl: redis.url, prefix: 'package-versions-scope', deploymentId: 'd1' }
  const hx = new (first.createIncrementalCacheHandler(options))()
  const hy = new (second.createIncrementalCacheHandler(options))()
  // One request, as Next begins it: each version's handler reset in the request's own async
  // chain (its own callback here, so the scopes end with it).
  const stores = await new Promise((resolve) =>
    setImmediate(() => {
      hx.resetRequestCache()
      hy.resetRequestCache()
      resolve(scopeStores())
    }),
  )
  assert.ok(
    stores.some((h) => h.includes(hx)),
    "the first version's scope is open",
  )
  assert.ok(
    stores.some((h) => h.includes(hy)),
    "the second version's scope is open",
  )
  for (const handlers of stores) {
    assert.ok(
      !(handlers.includes(hx) && handlers.includes(hy)),
      `one scope holds both versions' handlers: ${handlers.length} handlers`,
    )
  }
  await first.close()
  await second.close()
})

test("stats() sums this version's runtimes only, not another version's (an engine of another shape)", async () => {
  const { createUseCacheHandler, stats, close } = createRequire(import.meta.url)('../dist/index.js')
  const h = createUseCacheHandler({ prefix: 'package-versions-stats', deploymentId: 'd1' })
  await h.refreshTags()
  const runtimes = globalThis[Symbol.for('fleetcache.runtimes')]
  // What another version registered: a runtime whose engine this version cannot read.
  let shut = false
  runtimes.set('0.0.0-elsewhere {}', { engine: {}, shut: async () => void (shut = true) })
  const s = stats()
  assert.notEqual(s, undefined)
  assert.equal(typeof s.lookups, 'object')
  await close()
  assert.ok(shut, "close() shuts the other version's runtime too")
})

test('a close() joining one in progress reports a failed runtime once, not once per call', async () => {
  const { close } = createRequire(import.meta.url)('../dist/index.js')
  const runtimes = (globalThis[Symbol.for('fleetcache.runtimes')] ??= new Map())
  const failed = new Error('shut failed')
  let release
  const held = new Promise((resolve) => (release = resolve))
  runtimes.set('0.0.0-elsewhere failing', { shut: () => held.then(() => Promise.reject(failed)) })
  const first = close().then(assert.fail, (e) => e)
  const joined = close().then(assert.fail, (e) => e)
  release()
  for (const err of [await first, await joined]) {
    assert.equal(err, failed, `the one runtime's error, not ${String(err)}`)
  }
  assert.equal(runtimes.size, 0)
})

/** A logger that keeps what is warned. */
function keeping(warned) {
  return {
    info() {},
    warn: (m) => warned.push(m),
    error() {},
    debug() {},
    debugEnabled: false,
  }
}

test('each version checks the running Next.js against its own range once: one that supports it, checking first, does not silence one that does not', () => {
  const a = installCopy(tmp, 'next-a', `${OURS}-next-a`)
  const again = installCopy(tmp, 'next-a-again', `${OURS}-next-a`)
  const b = installCopy(tmp, 'next-b', `${OURS}-next-b`)
  // The second version supports the next line only (its own SUPPORTED_NEXT).
  const file = path.join(b, 'dist', 'next-version.js')
  const source = fs.readFileSync(file, 'utf8')
  const patched = source
    .replace('[17, 0, 0]', '[18, 0, 0]')
    .replace('[16, 0, 0]', '[17, 0, 0]')
    .replaceAll('>=16.0.0 <17.0.0', '>=17.0.0 <18.0.0')
  assert.notEqual(patched, source, 'the range is where the test looks for it')
  fs.writeFileSync(file, patched)
  const check = (dir) => createRequire(import.meta.url)(path.join(dir, 'dist', 'next-version.js'))
  const warned = []
  const running = '16.2.0'
  assert.equal(check(a).checkNextVersion(keeping(warned), running), undefined, 'inside its range')
  assert.match(
    check(b).checkNextVersion(keeping(warned), running) ?? 'no warning',
    /Next\.js 16\.2\.0 is outside the range fleetcache supports \(>=17\.0\.0 <18\.0\.0\)/,
    "the second version's own range is checked though the first version checked first",
  )
  // Once per version: neither repeats, nor does another copy of the first version.
  check(again).checkNextVersion(keeping(warned), '15.5.4')
  check(a).checkNextVersion(keeping(warned), '15.5.4')
  check(b).checkNextVersion(keeping(warned), running)
  assert.equal(warned.length, 1, warned.join('\n'))
})

test("a next build warns of an invalid setting once per version: one version's warning does not hide another's", (t) => {
  const x = installCopy(tmp, 'build-x', `${OURS}-build-x`)
  const again = installCopy(tmp, 'build-x-again', `${OURS}-build-x`)
  const y = installCopy(tmp, 'build-y', `${OURS}-build-y`)
  const warned = []
  t.mock.method(console, 'warn', (m) => warned.push(String(m)))
  const env = { NEXT_PHASE: 'phase-production-build', FLEETCACHE_PREFIX: 'my app' }
  const start = (dir) =>
    createRequire(import.meta.url)(path.join(dir, 'dist', 'startup.js')).startFromEnvironment(env)
  // Each version's two handler modules, and another copy of the first version, start.
  for (const dir of [x, x, again, y, y]) assert.equal(start(dir), undefined)
  assert.equal(warned.length, 2, `one warning per version: ${warned.join('\n')}`)
  for (const line of warned) assert.match(line, /ignored by next build.*FLEETCACHE_PREFIX: must/)
})
