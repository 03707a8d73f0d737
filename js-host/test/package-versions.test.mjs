// Two versions of the package in one process (two copies in node_modules: a dependency that
// brings its own) share the process-wide registry of runtimes (src/closing.ts), but not a
// runtime: one version's handlers never drive an object another version made. Configured alike,
// each version opens its own runtime, and `close()` of either shuts every runtime of both
// (docs/operating.md, "Shutdown"), but for one with no `shut()` (a build from before 0.1.0
// registered it), which it leaves to that build's `close()` and reports.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { after, before, test } from 'node:test'

import { startRedis } from '../../tests/support/redis.mjs'
import { waitFor } from '../../tests/support/util.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkg = path.resolve(here, '..')

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

/**
 * A copy of the built package at `<tmp>/<name>/node_modules/fleetcache`, its package.json's
 * version set to `version`; its dependency (the Redis client) is this checkout's, linked.
 */
function installCopy(name, version) {
  const modules = path.join(tmp, name, 'node_modules')
  const dir = path.join(modules, 'fleetcache')
  fs.mkdirSync(dir, { recursive: true })
  for (const d of ['dist', 'esm', 'wasm']) {
    fs.cpSync(path.join(pkg, d), path.join(dir, d), { recursive: true })
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'))
  manifest.version = version
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2))
  fs.symlinkSync(path.join(pkg, 'node_modules', 'redis'), path.join(modules, 'redis'), 'dir')
  return dir
}

/** The clients connected to the test's Redis, but the one asking. */
async function clients() {
  const list = await redis.command('CLIENT', 'LIST')
  return String(list)
    .split('\n')
    .filter((l) => l.trim() !== '' && !/ cmd=client\|list /.test(l))
}

test('two versions configured alike get a runtime each, and one close() shuts both', async () => {
  const ours = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version
  const a = installCopy('a', ours)
  const b = installCopy('b', `${ours}-other`)
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

test('a runtime with no shut() (a build from before it, under an unversioned key) is left to its own close(), and close() rejects saying so', async () => {
  const { createUseCacheHandler, close } = createRequire(import.meta.url)('../dist/index.js')
  const h = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'package-versions-old',
    deploymentId: 'd1',
  })
  await h.refreshTags()
  const runtimes = globalThis[Symbol.for('fleetcache.runtimes')]
  // What runtime.ts registered before runtimes carried shut() (commit 04266fa): the key is the
  // options alone, and that build's close() stopped the tag sync and closed the transport.
  let closedByItsOwn = false
  const old = {
    engine: {},
    tags: { stop: async () => {} },
    transport: { close: async () => void (closedByItsOwn = true) },
  }
  runtimes.set(JSON.stringify({ redisUrl: redis.url, prefix: 'before-shut' }), old)
  await assert.rejects(close(), (err) => {
    assert.ok(
      !(err instanceof AggregateError) && /has no shut\(\)/.test(err.message),
      `an error that says a runtime has no shut(), not ${String(err)}`,
    )
    return true
  })
  // This version's runtime is shut; the old one stays where the close() of its version finds it.
  assert.deepEqual([...runtimes.values()], [old], "left in the registry for its version's close()")
  await waitFor(async () => (await clients()).length === 0, {
    timeoutMs: 5000,
    what: "this version's connection to close",
  })
  // That version's close(), as it was: every runtime in the registry, through its fields.
  const theirs = [...runtimes.values()]
  runtimes.clear()
  for (const r of theirs) {
    await r.tags.stop()
    await r.transport.close()
  }
  assert.ok(closedByItsOwn)
})

test('a close() joining one in progress counts a runtime with no shut() once, not once per call', async () => {
  const { close } = createRequire(import.meta.url)('../dist/index.js')
  const runtimes = (globalThis[Symbol.for('fleetcache.runtimes')] ??= new Map())
  runtimes.set(JSON.stringify({ prefix: 'before-shut-joined' }), { engine: {} })
  let release
  const held = new Promise((resolve) => (release = resolve))
  runtimes.set('0.0.0-elsewhere held', { shut: () => held })
  const first = close().then(assert.fail, (e) => e)
  const joined = close().then(assert.fail, (e) => e)
  release()
  try {
    for (const err of [await first, await joined]) {
      assert.ok(
        !(err instanceof AggregateError) && /has no shut\(\)/.test(err.message),
        `the one runtime's error, not ${String(err)}`,
      )
    }
  } finally {
    runtimes.clear()
  }
})
