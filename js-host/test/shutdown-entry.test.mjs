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
import { promisify } from 'node:util'
import { after, before, test } from 'node:test'

import { startRedis } from '../../tests/support/redis.mjs'
import { waitFor } from '../../tests/support/util.mjs'

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
