// fleetcache/shutdown (src/shutdown.ts): `close()` alone, for a shutdown hook that should not
// load the rest of the package (instrumentation.ts under Turbopack traces every module the hook
// loads into the standalone tree; docs/operating.md, "Shutdown").
//
// - loading it, from CommonJS or ESM, loads its own two files and nothing else: no wasm, no
//   Redis client;
// - its `close` is the very function `fleetcache` exports;
// - it closes the Redis connection a handler opened, and so does a copy of its files loaded
//   from elsewhere (a bundled copy of the module), through the process-wide registry.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import util, { promisify } from 'node:util'
import { after, before, test } from 'node:test'

import { startRedis } from '../../tests/support/redis.mjs'
import { waitFor } from '../../tests/support/util.mjs'
import { OURS } from './package-copies.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkg = path.resolve(here, '..')
const require = createRequire(import.meta.url)
const run = promisify(execFile)

/** The package files (relative, sorted) a fresh Node process has loaded after `code`. */
async function loadedBy(code, type) {
  const list =
    "console.log(JSON.stringify(Object.keys(process.getBuiltinModule('node:module').createRequire(process.cwd() + '/').cache)))"
  const { stdout } = await run(process.execPath, ['--input-type', type, '-e', `${code}\n${list}`], {
    cwd: pkg,
  })
  return JSON.parse(stdout.trim().split('\n').pop())
    .map((f) => path.relative(pkg, f).split(path.sep).join('/'))
    .sort()
}

test('fleetcache/shutdown loads its own two files and nothing else, from CommonJS and ESM', async () => {
  const want = ['dist/closing.js', 'dist/shutdown.js']
  assert.deepEqual(await loadedBy("require('./dist/shutdown.js')", 'commonjs'), want)
  // ESM: esm/shutdown.mjs re-exports the CommonJS module, which lands in require's cache.
  assert.deepEqual(await loadedBy("await import('./esm/shutdown.mjs')", 'module'), want)
  // And the package's export map names those files.
  const exp = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).exports[
    './shutdown'
  ]
  assert.equal(exp.require.default, './dist/shutdown.js')
  assert.equal(exp.import.default, './esm/shutdown.mjs')
})

test("its close() is fleetcache's close(), from CommonJS and ESM", async () => {
  const root = require('../dist/index.js')
  assert.equal(require('../dist/shutdown.js').close, root.close)
  assert.equal((await import('../esm/shutdown.mjs')).close, root.close)
  assert.equal((await import('../esm/index.mjs')).close, root.close)
})

let redis
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-shutdown-entry-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await require('../dist/index.js').close()
  await redis.stop()
  fs.rmSync(logDir, { recursive: true, force: true })
})

/** The clients connected to the test's Redis, but the one asking. */
async function clients() {
  const list = await redis.command('CLIENT', 'LIST')
  return String(list)
    .split('\n')
    .filter((l) => l.trim() !== '' && !/ cmd=client\|list /.test(l))
}

/** A handler with a Redis connection open (a tag pull made). */
async function connectedHandler(prefix) {
  const { createUseCacheHandler } = require('../dist/index.js')
  const h = createUseCacheHandler({ redisUrl: redis.url, prefix, deploymentId: 'd1' })
  await h.refreshTags()
  await waitFor(async () => (await clients()).length > 0, {
    timeoutMs: 5000,
    what: 'the handler to connect',
  })
  return h
}

test("close() from fleetcache/shutdown closes the handlers' Redis connection", async () => {
  await connectedHandler('shutdown-entry')
  const { close } = await import('../esm/shutdown.mjs')
  await close()
  await waitFor(async () => (await clients()).length === 0, {
    timeoutMs: 5000,
    what: 'no client left on Redis',
  })
})

test('a copy of its files loaded from elsewhere (a bundled copy) closes them too', async () => {
  await connectedHandler('shutdown-entry-copy')
  const copy = fs.mkdtempSync(path.join(logDir, 'copy-'))
  for (const f of ['shutdown.js', 'closing.js']) {
    fs.copyFileSync(path.join(pkg, 'dist', f), path.join(copy, f))
  }
  const { close } = require(path.join(copy, 'shutdown.js'))
  assert.notEqual(close, require('../dist/index.js').close, 'another copy of the function')
  await close()
  await waitFor(async () => (await clients()).length === 0, {
    timeoutMs: 5000,
    what: 'no client left on Redis',
  })
})

test("a close() from a copy, called while fleetcache's is in progress, settles when that one is done; a runtime whose close fails keeps no other open", async () => {
  await connectedHandler('shutdown-entry-join')
  const root = require('../dist/index.js')
  const copy = fs.mkdtempSync(path.join(logDir, 'copy-'))
  for (const f of ['shutdown.js', 'closing.js']) {
    fs.copyFileSync(path.join(pkg, 'dist', f), path.join(copy, f))
  }
  const other = require(path.join(copy, 'shutdown.js'))
  // Two runtimes of the registry that close as the test says (the registry holds what any copy
  // registered; each entry closes itself): one that fails at once, one held until released.
  const runtimes = globalThis[Symbol.for('fleetcache.runtimes')]
  let release
  const held = new Promise((resolve) => (release = resolve))
  let heldShut = false
  runtimes.set('failing', { shut: async () => Promise.reject(new Error('engine trapped')) })
  runtimes.set('held', { shut: () => ((heldShut = true), held) })
  // OpenTelemetry (a dev dependency here) reads the handler's engine until close() is called:
  // this version's telemetry, kept under a key of the package version (src/telemetry.ts).
  const telemetry = globalThis[Symbol.for(`fleetcache.telemetry@${OURS}`)]?.telemetry
  assert.notEqual(telemetry, undefined, 'OpenTelemetry is installed for this test')
  assert.notEqual(telemetry.collect(), undefined, "telemetry reads the handler's engine")
  const settled = []
  const first = root.close().then(
    () => settled.push('first'),
    (err) => settled.push(`first: ${err.message}`),
  )
  assert.equal(runtimes.size, 0, 'close() takes every runtime out of the registry at once')
  assert.ok(heldShut, "every runtime's close starts at the call")
  assert.equal(telemetry.collect(), undefined, 'telemetry stops reading its engine at the call')
  const second = other.close().then(
    () => settled.push('second'),
    (err) => settled.push(`second: ${err.message}`),
  )
  // The handler's connection closes, the failing runtime and the held one notwithstanding.
  await waitFor(async () => (await clients()).length === 0, {
    timeoutMs: 5000,
    what: "the handler's connection to close",
  })
  // Neither call can settle while a runtime it closes has not.
  assert.deepEqual(settled, [], 'a close() settled before every runtime was closed')
  release()
  await Promise.all([first, second])
  // Both report the failure (the second joined the first's closes).
  assert.deepEqual(settled.sort(), ['first: engine trapped', 'second: engine trapped'])
  assert.equal(root.stats(), undefined, 'stats() after close(): no runtime left')
  // A handler made afterwards opens its own connection, which the next close() closes, from
  // either copy.
  await connectedHandler('shutdown-entry-join')
  await other.close()
  await waitFor(async () => (await clients()).length === 0, {
    timeoutMs: 5000,
    what: 'the new connection to close',
  })
})

test("close() reports every runtime's failure: an AggregateError of them when more than one fails, after every runtime is shut", async () => {
  const root = require('../dist/index.js')
  const copy = fs.mkdtempSync(path.join(logDir, 'copy-'))
  for (const f of ['shutdown.js', 'closing.js']) {
    fs.copyFileSync(path.join(pkg, 'dist', f), path.join(copy, f))
  }
  const other = require(path.join(copy, 'shutdown.js'))
  const runtimes = globalThis[Symbol.for('fleetcache.runtimes')]
  let release
  const held = new Promise((resolve) => (release = resolve))
  const first = new Error('first runtime trapped')
  const second = new Error('second runtime trapped')
  runtimes.set('failing-1', { shut: async () => Promise.reject(first) })
  runtimes.set('held', { shut: () => held })
  runtimes.set('failing-2', { shut: async () => Promise.reject(second) })
  let settled = false
  const closed = root.close().then(
    () => assert.fail('close() resolved though two runtimes failed to close'),
    (err) => ((settled = true), err),
  )
  // A close() from a copy joining it, with a failure of its own.
  const third = new Error('third runtime trapped')
  runtimes.set('failing-3', { shut: async () => Promise.reject(third) })
  const joined = other.close().then(
    () => assert.fail('the joining close() resolved though three runtimes failed to close'),
    (err) => err,
  )
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(settled, false, 'close() settled before every runtime was shut')
  release()
  const err = await closed
  assert.ok(err instanceof AggregateError, `an AggregateError, not ${String(err)}`)
  assert.deepEqual(err.errors, [first, second])
  // The joining call waited for both sets of runtimes, and reports every failure among them.
  const all = await joined
  assert.ok(all instanceof AggregateError, `an AggregateError, not ${String(all)}`)
  assert.deepEqual(all.errors, [first, second, third])
  // One runtime failing: its own error, not wrapped.
  const only = new Error('only runtime trapped')
  runtimes.set('failing-only', { shut: async () => Promise.reject(only) })
  await assert.rejects(root.close(), (e) => e === only)
})

test("a runtime's own AggregateError (a cluster's nodes) is one error among the runtimes', joined or not; the mark shows in no log", async () => {
  const root = require('../dist/index.js')
  const runtimes = globalThis[Symbol.for('fleetcache.runtimes')]
  const nodes = new AggregateError([new Error('node 1'), new Error('node 2')], 'cluster close')
  runtimes.set('cluster', { shut: async () => Promise.reject(nodes) })
  await assert.rejects(root.close(), (e) => e === nodes)
  const other = new Error('engine trapped')
  let release
  const held = new Promise((resolve) => (release = resolve))
  runtimes.set('cluster', { shut: async () => Promise.reject(nodes) })
  runtimes.set('held', { shut: () => held })
  runtimes.set('failing', { shut: async () => Promise.reject(other) })
  const first = root.close().then(assert.fail, (e) => e)
  const joined = root.close().then(assert.fail, (e) => e)
  release()
  for (const err of [await first, await joined]) {
    assert.ok(err instanceof AggregateError, String(err))
    assert.deepEqual(err.errors, [nodes, other], "the cluster's error stays one")
    assert.equal(err.message, '2 runtimes failed to close')
    assert.doesNotMatch(util.inspect(err), /close-failures/)
  }
})

test('a runtime whose shut never settles keeps close() from settling, and no other runtime open', async () => {
  await connectedHandler('shutdown-entry-never')
  const root = require('../dist/index.js')
  const runtimes = globalThis[Symbol.for('fleetcache.runtimes')]
  let release
  runtimes.set('never', { shut: () => new Promise((resolve) => (release = resolve)) })
  let settled = false
  const closed = root.close().finally(() => (settled = true))
  await waitFor(async () => (await clients()).length === 0, {
    timeoutMs: 5000,
    what: "the handler's connection to close",
  })
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(settled, false)
  release()
  await closed
})
