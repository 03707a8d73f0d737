// End to end: the example app built with `output: 'standalone'` (EXAMPLE_STANDALONE=1, in
// .next-standalone/), its standalone tree copied away from the app (as a container image would
// hold it, so nothing can be resolved from the app's own node_modules), and run as
// `node server.js` instances against real redis-servers.
//
// - the wasm engine loads from the traced tree and the instances share one cache;
// - no trace (the routes', the health route's importing `fleetcache` among them, the server's,
//   the instrumentation hook's) and no file of the tree is the CLI's code or its tools module;
// - a module placed in the installed package's dist/ that nothing requires is in no route's
//   trace but the health route's, and not in the hook's (Turbopack traced all of dist/ for a
//   path it could not work out);
// - the same build started with another REDIS_URL uses that Redis and no other (configuration is
//   read when the server starts, never frozen into the build).
//
// Run: node --test tests/e2e/standalone.test.mjs   (E2E_KEEP_LOGS=1 keeps the logs)
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { fleetSuite } from '../support/diagnostics.mjs'
import {
  appDir,
  makeLogDir,
  prepareApp,
  prepareStandalone,
  startFleet,
  startInstance,
} from '../support/fleet.mjs'
import { releaseAppDir } from '../support/next-release.mjs'
import { waitForDataEntry } from '../support/observe.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'

const PACKAGE = path.join('node_modules', 'fleetcache')
// What a server process loads of the package's wasm: the server module and its Node glue.
const SERVER_WASM = ['wasm/fleetcache_wasm_bg.wasm', 'wasm/node/fleetcache_wasm.js']
// A module the test writes into the installed package's dist/ before the standalone build: no
// module requires it, so a trace that holds it took dist/ by a pattern, not by what is loaded.
// (Named through a placeholder: scripts/check-build-paths.mjs skips those, and the build makes
// no such file.)
const UNREFERENCED_NAME = 'fleetcache-e2e-unreferenced.js'
const UNREFERENCED = `dist/${UNREFERENCED_NAME}`

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
let serverJs
let r1
let r2
let origin
let S1
let S2
let S3

// Entry keys in one Redis (SCAN, bounded: the test writes a handful).
async function entryKeys(redis) {
  const keys = []
  let cursor = '0'
  for (let i = 0; i < 50; i++) {
    const [next, batch] = await redis.command('SCAN', cursor, 'MATCH', '*:e', 'COUNT', '100')
    keys.push(...batch)
    cursor = next
    if (cursor === '0') break
  }
  return keys.sort()
}

function expectOk(d, who) {
  assert.equal(d.error, null, `${who}: the page rendered an origin error: ${d.error}`)
  assert.ok(Number.isInteger(d.version) && d.version >= 1, `${who}: no version in the page`)
}

describe("fleetcache e2e: `output: 'standalone'` servers", () => {
  const { wrap: withDiagnostics } = fleetSuite({
    tag: 'standalone',
    scene: () => ({ logDir, origin, redis: [r1, r2], instances: [S1, S2, S3] }),
    setUp: async () => {
      logDir = makeLogDir('fleetcache-standalone-')
      // The tarball installed first (a reinstall drops the module), then the module written and
      // the standalone build made again when it was not there.
      await prepareApp({ logDir })
      const unreferenced = path.join(releaseAppDir(appDir), PACKAGE, UNREFERENCED)
      const placed = !fs.existsSync(unreferenced)
      if (placed) fs.writeFileSync(unreferenced, "'use strict'\n// Nothing requires this file.\n")
      build = await prepareStandalone({ logDir, force: placed })
      // Copy the standalone tree out of the app: only what Next traced is there.
      const copy = path.join(logDir, 'standalone')
      fs.cpSync(build.standaloneDir, copy, { recursive: true })
      serverJs = path.join(copy, 'server.js')
      ;[r1, r2] = await Promise.all([startRedis({ logDir }), startRedis({ logDir })])
      origin = await startOrigin()
      ;[S1, S2] = await startFleet({
        names: ['S1', 'S2'],
        env: { REDIS_URL: r1.url, ORIGIN_URL: origin.url, FLEETCACHE_DEBUG: '1' },
        logDir,
        serverJs,
      })
      process.stderr.write(
        `[standalone] build ${build.buildId} (${build.built ? `built in ${(build.buildMs / 1000).toFixed(1)} s` : 'up to date'}); ` +
          `S1=${S1.url} S2=${S2.url} r1=${r1.url} r2=${r2.url} logs=${logDir}\n`,
      )
    },
  })

  test(
    'the traced tree holds the server module only, and the engine starts from it with the namespace of the build',
    { timeout: 30_000 },
    withDiagnostics(async () => {
      const traced = filesUnder(path.join(path.dirname(serverJs), PACKAGE))
      for (const f of SERVER_WASM) assert.ok(traced.includes(f), `${f} is missing: ${traced}`)
      // Nothing a server process never loads (the CLI's tools module and its code, the workers
      // glue, type declarations) in the handlers' traces: every route's and the server's
      // (withFleetcache sets no exclude). Read from the build, as the copied tree holds no trace
      // files.
      const isUnused = (f) => /^wasm\/(tools|web)\/|^(dist\/)?cli\/|\.d\.ts$/.test(f)
      const distDir = path.dirname(build.standaloneDir)
      const appPackage = path.join(path.dirname(distDir), PACKAGE)
      const packageFiles = (trace) =>
        JSON.parse(fs.readFileSync(trace, 'utf8'))
          .files.map((f) => path.relative(appPackage, path.resolve(path.dirname(trace), f)))
          .filter((f) => !f.startsWith('..'))
          .map((f) => f.split(path.sep).join('/'))
      const hook = path.join(distDir, 'server', 'instrumentation.js.nft.json')
      const traces = filesUnder(path.join(distDir, 'server'))
        .filter((f) => f.endsWith('.nft.json') && f !== 'instrumentation.js.nft.json')
        .map((f) => path.join(distDir, 'server', f))
      traces.push(path.join(distDir, 'next-server.js.nft.json'))
      assert.ok(traces.length > 10, `route traces: ${traces.length}`)
      // The health route of docs/observability.md (`import { stats } from 'fleetcache'`): the
      // example's route that imports the package's root entry, which Turbopack traced with the
      // whole package directory (the CLI's code and module among it) while withFleetcache joined
      // a computed path onto the package's directory (docs/decisions/0011, the 2026-12-07
      // amendment on the whole package in a route's trace).
      const health = path.join(distDir, 'server', 'app', 'api', 'health', 'route.js.nft.json')
      assert.ok(traces.includes(health), `no trace of the health route among ${traces}`)
      const healthFiles = packageFiles(health)
      assert.ok(healthFiles.includes('esm/index.mjs'), `the health route's trace: ${healthFiles}`)
      const unused = [...new Set(traces.flatMap((t) => packageFiles(t).filter(isUnused)))]
      assert.deepEqual(unused, [], "files no server process loads, in the handlers' traces")
      // Only what the modules require: no trace made through the handlers, and not the hook's,
      // holds the module nothing requires, which Turbopack took with all of dist/ for a
      // `readFileSync` of a path it could not work out (next-version.ts's, env-options.ts's).
      // The health route's trace (the root entry) still takes it: open (decision 0011,
      // 2026-12-08), so the standalone tree holds it too.
      assert.deepEqual(
        [...traces, hook]
          .filter((t) => t !== health && packageFiles(t).includes(UNREFERENCED))
          .map((t) => path.relative(distDir, t)),
        [],
        `traces holding ${UNREFERENCED}, which nothing requires`,
      )
      // The instrumentation hook's trace, which Turbopack makes without outputFileTracingExcludes
      // (docs/operating.md, "Shutdown"). The example's hook imports fleetcache/shutdown for the
      // shutdown recipe, which loads two files of dist/: nothing its import names may come from
      // the other entries (the root ESM entry, the workers build and its glue) or the docs, all
      // of which an import of 'fleetcache' brought while withFleetcache's module built paths
      // from the package's directory (docs/decisions/0011, 2026-12-07).
      const hookFiles = packageFiles(hook)
      assert.ok(hookFiles.includes('esm/shutdown.mjs'), `the hook's trace: ${hookFiles}`)
      assert.deepEqual(
        hookFiles.filter((f) =>
          /^(worker|wasm\/web)\/|^esm\/(?!shutdown\.mjs$)|^[^/]*\.md$|^LICENSE/.test(f),
        ),
        [],
        "files of the package's other entries in the instrumentation trace",
      )
      // The CLI's code (cli/, dist/cli/ before it moved) and its tools module (wasm/tools/) are in
      // no trace, the hook's included (Turbopack puts all of dist/ in the trace of any
      // instrumentation hook, one that imports nothing too, and applies no exclude there), and so
      // not in the standalone tree: the server code cannot reach them (docs/decisions/0011).
      const isCli = (f) => /^(dist\/)?cli\/|^wasm\/tools\//.test(f)
      assert.deepEqual(
        [...new Set([...traces, hook].flatMap((t) => packageFiles(t).filter(isCli)))],
        [],
        "the CLI's files in the standalone build's traces (routes, next-server, instrumentation)",
      )
      assert.deepEqual(traced.filter(isCli), [], "the CLI's files in the standalone tree")
      const first = await S1.request('/')
      assert.equal(first.status, 200)
      // The route runs from the copied tree, on the handlers' engine.
      const healthResponse = await S1.request('/api/health')
      assert.equal(healthResponse.status, 200, `/api/health: ${healthResponse.text}`)
      assert.equal(JSON.parse(healthResponse.text).engine, 'ok')
      const line = S1.logTail(200)
        .split('\n')
        .find((l) => l.includes('[fleetcache] namespace'))
      assert.ok(line, `S1 logged no namespace line:\n${S1.logTail(40)}`)
      // The file read, resolved: server.js changes to its own directory, where its config's
      // distDir ('./.next-standalone') is.
      const buildIdFile = path.join(
        fs.realpathSync(path.dirname(serverJs)),
        '.next-standalone',
        'BUILD_ID',
      )
      const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      assert.match(
        line,
        new RegExp(
          `namespace fleetcache:${build.buildId} \\(deployment from ${escape(buildIdFile)}\\), store ${escape(r1.url)}$`,
        ),
      )
    }),
  )

  test(
    'two standalone instances share one cache',
    { timeout: 60_000 },
    withDiagnostics(async () => {
      const a = await S1.getData('/products?list=standalone')
      expectOk(a, 'S1')
      assert.equal(a.generatedBy, 'S1')
      const b = await S2.getData('/products?list=standalone')
      expectOk(b, 'S2')
      assert.equal(b.renderedBy, 'S2')
      assert.equal(b.generatedBy, 'S1', "S2 should serve S1's entry")
      assert.equal(b.generatedAt, a.generatedAt)
      assert.equal(origin.calls('products-standalone'), 1, 'one origin call for the fleet')
      const keys = await entryKeys(r1)
      assert.ok(
        keys.some((k) => k.startsWith(`fleetcache:${build.buildId}:uc-default:`)),
        `no entry of build ${build.buildId} in r1: ${keys.join(', ')}`,
      )
    }),
  )

  test(
    'the same build started with another REDIS_URL uses that Redis only',
    { timeout: 60_000 },
    withDiagnostics(async () => {
      const r1Before = await entryKeys(r1)
      assert.deepEqual(await entryKeys(r2), [], 'r2 should start empty')
      const callsBefore = origin.calls('products-standalone')
      S3 = await startInstance({
        name: 'S3',
        env: { REDIS_URL: r2.url, ORIGIN_URL: origin.url, FLEETCACHE_DEBUG: '1' },
        logDir,
        serverJs,
      })
      const c = await S3.getData('/products?list=standalone')
      expectOk(c, 'S3')
      assert.equal(c.generatedBy, 'S3', 'S3 (on r2) must not see the entry S1 wrote to r1')
      assert.equal(origin.calls('products-standalone'), callsBefore + 1)
      assert.match(S3.logTail(200), new RegExp(`store ${r2.url.replace(/\./g, '\\.')}\\n`))
      // S3 writes its entry after its response.
      await waitForDataEntry(r2, 'products-standalone')
      const r2Keys = await entryKeys(r2)
      assert.ok(
        r2Keys.some((k) => k.startsWith(`fleetcache:${build.buildId}:uc-default:`)),
        `S3 wrote no entry to r2: ${r2Keys.join(', ')}`,
      )
      assert.deepEqual(await entryKeys(r1), r1Before, 'S3 must not write to r1')
      // And S3's entry is shared through r2 only: S1 still serves its own generation.
      const a = await S1.getData('/products?list=standalone')
      assert.equal(a.generatedBy, 'S1')
    }),
  )
})
