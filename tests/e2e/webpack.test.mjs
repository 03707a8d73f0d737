// End to end: the example app built by webpack (`next build --webpack`, Next 16's opt-out of
// Turbopack) with `output: 'standalone'`, in .next-webpack/. One build serves two instances on
// one redis-server: W1 runs its standalone server.js from a copy of the tree away from the app
// (nothing resolves from the app's node_modules), W2 runs `next start` in the app.
//
// - the traced tree holds what a server loads of the package and none of what no server loads
//   (the CLI's code and tools module, the workers glue, type declarations; webpack traces the
//   cache handlers into next-server.js.nft.json, not into the route traces Turbopack puts them in);
// - both interfaces load on both instances, and a 'use cache' entry written by one is served by
//   the other;
// - a revalidateTag on one reaches the other.
//
// Run: node --test tests/e2e/webpack.test.mjs   (E2E_KEEP_LOGS=1 keeps the logs)
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { fleetSuite } from '../support/diagnostics.mjs'
import {
  WEBPACK_DIST_DIR,
  WEBPACK_ENV,
  appDir,
  makeLogDir,
  prepareStandalone,
  startInstance,
} from '../support/fleet.mjs'
import { revalidateOn, scanKeys, waitForEntry } from '../support/observe.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'

const PACKAGE = path.join('node_modules', 'fleetcache')
// What a server process loads of the package's wasm: the server module and its Node glue.
const SERVER_WASM = ['wasm/fleetcache_wasm_bg.wasm', 'wasm/node/fleetcache_wasm.js']

// Every file under dir, relative to it, with '/' separators.
function filesUnder(dir) {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort()
}

let logDir
let build
let copy
let redis
let origin
let W1
let W2

function expectOk(d, who) {
  assert.equal(d.error, null, `${who}: the page rendered an origin error: ${d.error}`)
  assert.ok(Number.isInteger(d.version) && d.version >= 1, `${who}: no version in the page`)
}

describe('fleetcache e2e: a webpack build (`next build --webpack`), standalone and `next start`', () => {
  const { wrap: withDiagnostics } = fleetSuite({
    tag: 'webpack',
    scene: () => ({ logDir, origin, redis: [redis], instances: [W1, W2] }),
    setUp: async () => {
      logDir = makeLogDir('fleetcache-webpack-')
      build = await prepareStandalone({ logDir, webpack: true })
      copy = path.join(logDir, 'standalone')
      fs.cpSync(build.standaloneDir, copy, { recursive: true })
      redis = await startRedis({ logDir })
      origin = await startOrigin()
      const env = { REDIS_URL: redis.url, ORIGIN_URL: origin.url, FLEETCACHE_DEBUG: '1' }
      ;[W1, W2] = await Promise.all([
        startInstance({ name: 'W1', env, logDir, serverJs: path.join(copy, 'server.js') }),
        startInstance({ name: 'W2', env: { ...env, ...WEBPACK_ENV }, logDir }),
      ])
      process.stderr.write(
        `[webpack] build ${build.buildId} (${build.built ? `built in ${(build.buildMs / 1000).toFixed(1)} s` : 'up to date'}); ` +
          `W1=${W1.url} (standalone) W2=${W2.url} (next start) redis=${redis.url} logs=${logDir}\n`,
      )
    },
  })

  test(
    'the standalone tree is a webpack build holding the server module only, and both instances start on its namespace',
    { timeout: 30_000 },
    withDiagnostics(async () => {
      // What fleetcache itself takes for a webpack build (`builtWithWebpack`): a Turbopack build
      // here would test nothing this file is for.
      assert.ok(
        fs.existsSync(path.join(copy, WEBPACK_DIST_DIR, 'server', 'webpack-runtime.js')),
        'the standalone tree has no server/webpack-runtime.js: not a webpack build',
      )
      const traced = filesUnder(path.join(copy, PACKAGE))
      for (const f of SERVER_WASM) assert.ok(traced.includes(f), `${f} is missing: ${traced}`)
      const unused = traced.filter((f) => /^wasm\/(tools|web)\/|^(dist\/)?cli\/|\.d\.ts$/.test(f))
      assert.deepEqual(unused, [], 'files no server process loads')
      // The standalone server finds its distDir in server.js's config, `next start` in
      // FLEETCACHE_DIST_DIR (withFleetcache); the line names the file read, resolved.
      const from = new Map([
        [W1, path.join(fs.realpathSync(copy), WEBPACK_DIST_DIR, 'BUILD_ID')],
        [W2, path.join(fs.realpathSync(appDir), WEBPACK_DIST_DIR, 'BUILD_ID')],
      ])
      for (const [inst, file] of from) {
        assert.equal((await inst.request('/')).status, 200)
        const line = `[fleetcache] namespace fleetcache:${build.buildId} (deployment from ${file}), store ${redis.url}\n`
        assert.ok(inst.logTail(200).includes(line), `${inst.name} logged no line ${line}`)
      }
    }),
  )

  test(
    "both interfaces store in Redis, and W2 serves W1's 'use cache' entry",
    { timeout: 60_000 },
    withDiagnostics(async () => {
      const since = Date.now()
      const a = await W1.getData('/products?list=webpack')
      expectOk(a, 'W1')
      assert.equal(a.generatedBy, 'W1')
      const b = await W2.getData('/products?list=webpack')
      expectOk(b, 'W2')
      assert.equal(b.renderedBy, 'W2')
      assert.equal(b.generatedBy, 'W1', "W2 should serve W1's entry")
      assert.equal(b.generatedAt, a.generatedAt)
      assert.equal(origin.calls('products-webpack'), 1, 'one origin call for the fleet')
      const uc = await scanKeys(redis, `fleetcache:${build.buildId}:uc-default:*:e`)
      assert.ok(uc.length > 0, "no 'use cache' entry of the build in Redis")
      // The singular cacheHandler: the page's entry, written after W1's response.
      await waitForEntry(redis, {
        iface: 'inc',
        cacheKey: (k) => k.endsWith('/products'),
        since,
      })
    }),
  )

  test(
    "revalidateTag('products', { expire: 0 }) on W2: W1's next read regenerates",
    { timeout: 60_000 },
    withDiagnostics(async () => {
      const before = await W1.getData('/products?list=webpack')
      const calls = origin.calls('products-webpack')
      const newV = origin.bump('products-webpack')
      await revalidateOn(W2, '/api/expire?tag=products', redis, 'products', { mode: 'expire' })
      const after = await W1.getData('/products?list=webpack')
      expectOk(after, 'W1')
      assert.equal(after.version, newV, `W1 served v${after.version} after the revalidation`)
      assert.equal(after.generatedBy, 'W1')
      assert.ok(after.generatedAt > before.generatedAt)
      assert.equal(origin.calls('products-webpack'), calls + 1)
    }),
  )
})
