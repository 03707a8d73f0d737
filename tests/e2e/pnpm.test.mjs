// End to end: fleetcache installed by pnpm (its default isolated node_modules: every package a
// symlink into node_modules/.pnpm/<name>@<version>_<peers>/node_modules/), as many users install
// it, in a small Next app (tests/e2e/pnpm-app) whose next.config.ts is create-next-app's form
// with withFleetcache around it and `output: 'standalone'`.
//
// - `next start` and the standalone `node server.js` of one build load the handlers by the paths
//   withFleetcache wrote, store under the build's namespace, serve each other's entries, and a
//   revalidateTag on one reaches the other;
// - the traced standalone tree holds the .wasm in pnpm's layout, not the CLI's files, and runs
//   when copied away;
// - `next dev` with REDIS_URL keeps its entries in the process: one line says so, no key and no
//   connection appear in Redis, and an edit of a cached function shows on the next request.
//
// The app is copied to $TMPDIR/fleetcache-pnpm-app with the packed tarball as fleetcache.tgz,
// and installed there by the pnpm that its package.json's `packageManager` names (from the npm
// registry through npx; pnpm's store is reused across runs). Its pnpm-lock.yaml pins every
// registry package; pnpm rewrites only fleetcache.tgz's integrity in the copy. The install and
// the build are redone only when the tarball, the lockfile or a source changed (decision 0013).
// That copy is a cache every run with the same TMPDIR shares, and a run changes it (install,
// build, the edit `next dev` is shown) while its servers run from it: a run holds
// $TMPDIR/fleetcache-pnpm-app.lock (its PID) from before it prepares the copy until its last
// test ends, and a second run waits for it (a per-run copy would install and build every time).
//
// Run: node --test tests/e2e/pnpm.test.mjs   (E2E_KEEP_LOGS=1 keeps the logs)
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { fleetSuite } from '../support/diagnostics.mjs'
import {
  cleanEnv,
  findTarball,
  makeLogDir,
  repoRoot,
  runLogged,
  startInstance,
} from '../support/fleet.mjs'
import { freePort } from '../support/ports.mjs'
import { startRedis } from '../support/redis.mjs'
import { stopChild, tailFile, takeLock, trackChild, waitFor } from '../support/util.mjs'

const fixture = path.join(repoRoot, 'tests', 'e2e', 'pnpm-app')
const appDir = path.join(os.tmpdir(), 'fleetcache-pnpm-app')
const lockFile = `${appDir}.lock`
const stampFile = path.join(appDir, 'node_modules', '.fleetcache-pnpm.json')
const pnpmSpec = JSON.parse(
  fs.readFileSync(path.join(fixture, 'package.json'), 'utf8'),
).packageManager
const nextBin = path.join(appDir, 'node_modules', 'next', 'dist', 'bin', 'next')

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')

/** Every file of the fixture, relative to it. */
function fixtureFiles(dir = fixture, rel = '') {
  const out = []
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name)
    if (e.isDirectory()) out.push(...fixtureFiles(dir, r))
    else out.push(r)
  }
  return out
}

/**
 * The fixture in appDir, a file written only where it differs (so an unchanged copy keeps its
 * install and build), the tarball as fleetcache.tgz; pnpm install when the tarball or the
 * lockfile changed; `next build` when anything did. Returns what it did and how long it took.
 */
async function prepare(logDir) {
  const logFile = path.join(logDir, 'prepare.log')
  const tarball = findTarball()
  fs.mkdirSync(appDir, { recursive: true })
  let changed = false
  for (const rel of fixtureFiles()) {
    const from = path.join(fixture, rel)
    const to = path.join(appDir, rel)
    // The copy's lockfile is pnpm's to rewrite (fleetcache.tgz's integrity): compared below.
    if (rel === 'pnpm-lock.yaml' && fs.existsSync(to)) continue
    if (fs.existsSync(to) && fs.readFileSync(to).equals(fs.readFileSync(from))) continue
    fs.mkdirSync(path.dirname(to), { recursive: true })
    fs.copyFileSync(from, to)
    changed = true
  }
  const want = { tarball: sha256(tarball), lock: sha256(path.join(fixture, 'pnpm-lock.yaml')) }
  const stamp = fs.existsSync(stampFile) ? JSON.parse(fs.readFileSync(stampFile, 'utf8')) : null
  let installMs = 0
  if (stamp?.tarball !== want.tarball || stamp?.lock !== want.lock) {
    fs.copyFileSync(tarball, path.join(appDir, 'fleetcache.tgz'))
    fs.copyFileSync(path.join(fixture, 'pnpm-lock.yaml'), path.join(appDir, 'pnpm-lock.yaml'))
    fs.rmSync(path.join(appDir, 'node_modules'), { recursive: true, force: true })
    const t0 = Date.now()
    // --no-frozen-lockfile: pnpm's default under CI=true is a frozen lockfile, which refuses the
    // new tarball's integrity; every other package stays as locked.
    await runLogged(
      'npx',
      ['-y', pnpmSpec, 'install', '--no-frozen-lockfile', '--reporter=append-only'],
      {
        cwd: appDir,
        env: cleanEnv(),
        logFile,
        timeoutMs: 10 * 60_000,
        what: `${pnpmSpec} install`,
      },
    )
    installMs = Date.now() - t0
    fs.writeFileSync(stampFile, JSON.stringify(want))
    changed = true
  }
  let buildMs = 0
  if (changed || !fs.existsSync(path.join(appDir, '.next', 'standalone', 'server.js'))) {
    const t0 = Date.now()
    await runLogged(process.execPath, [nextBin, 'build'], {
      cwd: appDir,
      env: cleanEnv(),
      logFile,
      timeoutMs: 10 * 60_000,
      what: 'next build',
    })
    buildMs = Date.now() - t0
  }
  return {
    installMs,
    buildMs,
    buildId: fs.readFileSync(path.join(appDir, '.next', 'BUILD_ID'), 'utf8').trim(),
    logFile,
  }
}

/** The `<p id="value">` of /cached: the entry's id and label. */
async function value(inst, name) {
  const res = await inst.request(`/cached?name=${name}`)
  assert.equal(res.status, 200, `${inst.name} GET /cached?name=${name}: ${res.text.slice(0, 500)}`)
  const m = /<p id="value" data-id="([^"]+)" data-label="([^"]+)"/.exec(res.text)
  assert.ok(m, `${inst.name}: no <p id="value"> in\n${res.text.slice(0, 2000)}`)
  return { id: m[1], label: m[2] }
}

/** The fleetcache lines of an instance's log. */
const fleetcacheLines = (inst) =>
  fs
    .readFileSync(inst.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('[fleetcache]'))

let logDir
let prepared
let redis
let A
let S
let dev
let releaseApp

describe('fleetcache e2e: installed by pnpm', () => {
  const { wrap: withDiagnostics } = fleetSuite({
    tag: 'pnpm',
    scene: () => ({ logDir, redis: [redis], instances: [A, S, dev] }),
    setUp: async () => {
      releaseApp = await takeLock(lockFile, {
        what: '[pnpm] the app copy',
        log: (m) => process.stderr.write(`${m}\n`),
      })
      logDir = makeLogDir('fleetcache-pnpm-')
      prepared = await prepare(logDir)
      redis = await startRedis({ logDir })
      process.stderr.write(
        `[pnpm] ${pnpmSpec}: install ${prepared.installMs ? `${(prepared.installMs / 1000).toFixed(1)} s` : 'up to date'}, ` +
          `build ${prepared.buildId} ${prepared.buildMs ? `in ${(prepared.buildMs / 1000).toFixed(1)} s` : 'up to date'}; app ${appDir}; logs ${logDir}\n`,
      )
    },
  })
  // After fleetSuite's teardown (hooks run in the order declared), which stops any server still
  // running from the copy.
  after(() => releaseApp?.())

  test(
    "the standalone tree holds the .wasm in pnpm's layout",
    withDiagnostics(async () => {
      const pnpmDir = path.join(appDir, '.next', 'standalone', 'node_modules', '.pnpm')
      const stores = fs.readdirSync(pnpmDir).filter((d) => d.startsWith('fleetcache@'))
      assert.equal(stores.length, 1, `fleetcache in ${pnpmDir}: ${stores.join(', ')}`)
      const wasmFile = path.join(
        pnpmDir,
        stores[0],
        'node_modules',
        'fleetcache',
        'wasm',
        'fleetcache_wasm_bg.wasm',
      )
      assert.ok(fs.statSync(wasmFile).size > 0, wasmFile)
      // Nor, with no outputFileTracingExcludes, the CLI's code or its tools module in this layout
      // either: no trace reaches them (docs/decisions/0011, amended 2026-12-07).
      const pkg = path.join(pnpmDir, stores[0], 'node_modules', 'fleetcache')
      for (const unused of ['cli', 'dist/cli', 'wasm/tools']) {
        assert.ok(!fs.existsSync(path.join(pkg, unused)), `the standalone tree holds ${unused}`)
      }
    }),
  )

  test(
    'next start and the standalone server share entries and a revalidateTag',
    { timeout: 180_000 },
    withDiagnostics(async () => {
      // The standalone tree copied away from the app, as a container image holds it: nothing
      // resolves from the app's own node_modules. Its symlinks are relative, copied as they are.
      const copy = path.join(logDir, 'standalone')
      fs.cpSync(path.join(appDir, '.next', 'standalone'), copy, {
        recursive: true,
        verbatimSymlinks: true,
      })
      const env = { REDIS_URL: redis.url }
      ;[A, S] = await Promise.all([
        startInstance({ name: 'A', env, logDir, appDir }),
        startInstance({ name: 'S', env, logDir, serverJs: path.join(copy, 'server.js') }),
      ])
      const namespace = `fleetcache:${prepared.buildId}`
      for (const inst of [A, S]) {
        await value(inst, 'warm-up')
        assert.ok(
          fleetcacheLines(inst).some((l) =>
            l.includes(`[fleetcache] namespace ${namespace} (deployment from `),
          ),
          `${inst.name}: no start line with ${namespace}:\n${inst.logTail(30)}`,
        )
      }
      const first = await value(A, 'shared')
      const keys = await redis.command('KEYS', `${namespace}:uc-default:*`)
      assert.ok(keys.length >= 2, `'use cache' entries under ${namespace}: ${keys.join(', ')}`)
      // The singular handler (loaded on the first request) stored /cached's prerendered shell.
      const pages = await redis.command('KEYS', `${namespace}:inc:*`)
      assert.ok(pages.length >= 1, `no cacheHandler entry under ${namespace}`)
      // S never ran getValue('shared'): the same id is A's entry, read from Redis.
      assert.deepEqual(await value(S, 'shared'), first)
      const expired = await S.request('/api/expire', { method: 'POST' })
      assert.equal(expired.status, 200, expired.text)
      // `expire: 0`: the next read on any instance regenerates, on A as on S.
      const after = await waitFor(
        async () => {
          const v = await value(A, 'shared')
          return v.id !== first.id && v
        },
        { timeoutMs: 10_000, intervalMs: 200, what: "A to see S's revalidateTag" },
      )
      assert.deepEqual(await value(S, 'shared'), after)
      await Promise.all([A.stop(), S.stop()])
    }),
  )

  test(
    'next dev keeps its entries in the process, says so once, and shows an edit',
    { timeout: 180_000 },
    withDiagnostics(async () => {
      const keysBefore = (await redis.command('KEYS', '*')).sort()
      const clientsBefore = String(await redis.command('CLIENT', 'LIST'))
        .trim()
        .split('\n').length
      const port = await freePort()
      const logFile = path.join(logDir, 'dev.log')
      const out = fs.openSync(logFile, 'a')
      const child = trackChild(
        spawn(process.execPath, [nextBin, 'dev', '-p', String(port), '-H', '127.0.0.1'], {
          cwd: appDir,
          env: cleanEnv({ REDIS_URL: redis.url }),
          stdio: ['ignore', out, out],
        }),
      )
      fs.closeSync(out)
      dev = {
        name: 'dev',
        url: `http://127.0.0.1:${port}`,
        logFile,
        child,
        get running() {
          return child.exitCode === null && child.signalCode === null
        },
        logTail: (n = 40) => tailFile(logFile, n),
        async request(pathname) {
          const res = await fetch(dev.url + pathname, { signal: AbortSignal.timeout(60_000) })
          return { status: res.status, text: await res.text() }
        },
        stop: () => stopChild(child, { termTimeoutMs: 10_000 }),
      }
      const dataFile = path.join(appDir, 'app', 'data.js')
      const original = fs.readFileSync(dataFile, 'utf8')
      try {
        // The first request compiles the route (the longest wait of this test).
        const first = await waitFor(
          async () => {
            if (!dev.running) throw Object.assign(new Error('next dev exited'), { fatal: true })
            return await value(dev, 'dev')
          },
          {
            timeoutMs: 120_000,
            intervalMs: 500,
            what: 'next dev to serve /cached',
            stopOn: (e) => e.fatal,
          },
        )
        assert.equal(first.label, 'first')
        // Cached in the process: the same entry on the next request.
        assert.deepEqual(await value(dev, 'dev'), first)
        fs.writeFileSync(dataFile, original.replace("label: 'first'", "label: 'edited'"))
        const edited = await waitFor(
          async () => {
            const v = await value(dev, 'dev')
            return v.label === 'edited' && v
          },
          { timeoutMs: 30_000, intervalMs: 300, what: 'next dev to serve the edited label' },
        )
        assert.notEqual(edited.id, first.id)
        assert.deepEqual(fleetcacheLines(dev), [
          '[fleetcache] next dev: in-process store, Redis is not used by a development server (next start uses REDIS_URL)',
        ])
        assert.deepEqual((await redis.command('KEYS', '*')).sort(), keysBefore)
        const clientsAfter = String(await redis.command('CLIENT', 'LIST'))
          .trim()
          .split('\n').length
        assert.equal(clientsAfter, clientsBefore, 'connections to Redis while next dev runs')
      } finally {
        // The source as it was: the next run compares contents, and reuses the build.
        fs.writeFileSync(dataFile, original)
        await dev.stop()
      }
    }),
  )
})
