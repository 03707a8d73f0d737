// Builds the example app (examples/next-app) once with the fleetcache package installed, and
// starts / stops `next start` instances of it on loopback ports.
//
// Used by tests/e2e/*.test.mjs, scripts/demo.mjs and bench/fleet.mjs.
//
// The fleetcache tarball: $FLEETCACHE_TARBALL, else the newest js-host/fleetcache-*.tgz
// (`make` runs `npm pack` in js-host/). It is installed with `npm install --no-save` so that
// node_modules holds a real copy (a `file:` symlink would be bundled by Turbopack and break the
// wasm load).
//
// E2E_TAG_SYNC=push: every instance follows the tag state by push (FLEETCACHE_TAG_SYNC).
//
// E2E_NEXT_VERSION=<version>: every function here, and `appDir`, use that Next release's copy of
// the example apps under target/next-releases/<version>/ instead (tests/support/next-release.mjs);
// a caller passing examples/<app> gets the copy too. exampleDir(name, version) names one
// release's copy explicitly.
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { BUILD_OUTPUTS, exampleSourceOf, releaseAppDir, syncReleaseApp } from './next-release.mjs'
import { freePort } from './ports.mjs'
import { indent, stopChild, tailFile, trackChild, waitFor } from './util.mjs'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
// An example app by name ('next-app', 'next-incremental'): examples/<name>, or with
// E2E_NEXT_VERSION set the release's copy of it. `release` names another release's copy (every
// function here takes it as `appDir` and keeps it, whatever E2E_NEXT_VERSION says): a suite that
// runs two releases side by side passes each its own.
export const exampleDir = (name, release) =>
  releaseAppDir(path.join(repoRoot, 'examples', name), release)
// The default app; prepareApp/startInstance/startFleet take `appDir` for the others
// (exampleDir('next-incremental') for the singular cacheHandler).
export const appDir = exampleDir('next-app')
export const nextBinOf = (dir) => path.join(dir, 'node_modules', 'next', 'dist', 'bin', 'next')
const stampFileOf = (dir) => path.join(dir, 'node_modules', '.fleetcache-tarball.json')
const buildIdFileOf = (dir) => path.join(dir, '.next', 'BUILD_ID')
// What `next build` printed, kept in the build's directory beside its BUILD_ID (written after
// each build prepareApp and prepareStandalone make): a test that checks the build's output reads
// it whether or not its run made the build.
export const BUILD_OUTPUT_FILE = 'fleetcache-e2e-build-output.log'

// Runs `next build` with runLogged, then writes its part of logFile (which may hold earlier
// commands' output) to <distDir>/BUILD_OUTPUT_FILE.
async function runBuild(args, { distDir, logFile, ...rest }) {
  const at = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0
  await runLogged(process.execPath, args, { logFile, ...rest })
  fs.writeFileSync(path.join(distDir, BUILD_OUTPUT_FILE), fs.readFileSync(logFile).subarray(at))
}

// Variables that configure fleetcache or the example. Instances get them only from the caller,
// never inherited from the shell that runs the tests; the build gets none of them (a build needs
// no Redis and no origin).
const CONFIG_VARS =
  /^(REDIS_URL|FLEETCACHE_.*|ORIGIN_URL|NEXT_DEPLOYMENT_ID|INSTANCE_NAME|EXAMPLE_STANDALONE|EXAMPLE_DEFAULT_CACHE|EXAMPLE_FLOOR_HANDLERS|EXAMPLE_DIST_DIR|EXAMPLE_ADAPTER|EXAMPLE_CLOSE_ON_SIGNALS|NEXT_MANUAL_SIG_HANDLE)$/

export function cleanEnv(extra = {}) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) if (!CONFIG_VARS.test(k)) env[k] = v
  env.NEXT_TELEMETRY_DISABLED = '1'
  return { ...env, ...extra }
}

const defaultLog = (msg) => process.stderr.write(`[fleet] ${msg}\n`)

// E2E_TAG_SYNC=push runs every instance with FLEETCACHE_TAG_SYNC=push (unless a test sets it):
// the suites then check the push mode's behaviour where they check the default's.
const tagSyncEnv = () =>
  process.env.E2E_TAG_SYNC ? { FLEETCACHE_TAG_SYNC: process.env.E2E_TAG_SYNC } : {}

export function makeLogDir(prefix = 'fleetcache-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

// Runs a command to completion with its output in logFile; rejects (with the log tail) on a
// non-zero exit or after timeoutMs (the command is then stopped).
export async function runLogged(cmd, args, { cwd, env, logFile, timeoutMs, what }) {
  const out = fs.openSync(logFile, 'a')
  fs.writeSync(out, `$ ${cmd} ${args.join(' ')}   (cwd ${cwd})\n`)
  const child = trackChild(spawn(cmd, args, { cwd, env, stdio: ['ignore', out, out] }))
  fs.closeSync(out)
  const result = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ timedOut: true }), timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      resolve({ error })
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })
  if (result.timedOut) await stopChild(child, { termTimeoutMs: 5000 })
  if (result.code === 0) return
  const why = result.timedOut
    ? `timed out after ${timeoutMs} ms`
    : result.error
      ? `could not start: ${result.error.message}`
      : `exited with code ${result.code}${result.signal ? ` (signal ${result.signal})` : ''}`
  throw new Error(`${what} ${why}\n--- last lines of ${logFile} ---\n${tailFile(logFile, 60)}`)
}

// The tarball to install: $FLEETCACHE_TARBALL, else the newest js-host/fleetcache-*.tgz.
export function findTarball() {
  if (process.env.FLEETCACHE_TARBALL) {
    const p = path.resolve(process.env.FLEETCACHE_TARBALL)
    if (!fs.existsSync(p)) throw new Error(`FLEETCACHE_TARBALL=${p} does not exist`)
    return p
  }
  const dir = path.join(repoRoot, 'js-host')
  const candidates = (fs.existsSync(dir) ? fs.readdirSync(dir) : [])
    .filter((f) => /^fleetcache-.+\.tgz$/.test(f))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)
  if (!candidates.length) {
    throw new Error(
      `no fleetcache tarball: expected js-host/fleetcache-<version>.tgz (run \`make\`, which runs \`npm pack\` in js-host/) or set FLEETCACHE_TARBALL`,
    )
  }
  return candidates[0]
}

function sha256File(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch {
    return null
  }
}

// Newest mtime among the app's own files (not node_modules, not build output or generated files).
// The newest file of the app's own sources (build outputs and node_modules left out): what a
// build of the app is made again after.
export function newestSourceMtime(dir = appDir) {
  let newest = 0
  let newestFile = null
  const skip = new Set(['node_modules', ...BUILD_OUTPUTS])
  const walk = (d) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      if (skip.has(entry.name) || /\.(tsbuildinfo|md)$/.test(entry.name)) continue
      const p = path.join(d, entry.name)
      if (entry.isDirectory()) walk(p)
      else if (entry.isFile()) {
        const m = fs.statSync(p).mtimeMs
        if (m > newest) [newest, newestFile] = [m, p]
      }
    }
  }
  walk(dir)
  return { mtimeMs: newest, file: newestFile }
}

// ---- build stamps --------------------------------------------------------------------------
// A build made without fleetcache (the default-cache one below, bench/lib/floor-build.mjs's)
// cannot be dated by the tarball's install, as prepareApp's is: what it was made from besides
// the app's sources is written beside it (a stamp), and it is made again when that differs.
// `npm ci` to another Next release leaves every source's mtime be, so the release is an input.

/** The Next release installed in `dir`'s node_modules, or null when there is none. */
export function installedNextVersion(dir = appDir) {
  return readJson(path.join(dir, 'node_modules', 'next', 'package.json'))?.version ?? null
}

// The first input that differs between a stamp's and now's, described (nested keys joined by
// '.'), or null.
function inputChange(then, now, prefix = '') {
  for (const key of new Set([...Object.keys(then ?? {}), ...Object.keys(now)])) {
    const name = prefix + key
    const [a, b] = [then?.[key], now[key]]
    if (b !== null && typeof b === 'object') {
      const inner = inputChange(a !== null && typeof a === 'object' ? a : {}, b, `${name}.`)
      if (inner) return inner
    } else if (a !== b) {
      const short = (v) => (typeof v === 'string' && v.length > 24 ? `${v.slice(0, 12)}…` : v)
      return `${name} ${String(short(a))} then, ${String(short(b))} now`
    }
  }
  return null
}

/**
 * Why the build in `distDir` (dir/<distDir>/BUILD_ID) must be made again, or null when it is
 * current: no BUILD_ID; no stamp at `stampFile` (what it was made from is unknown); an input
 * in `inputs` (JSON values) other than the stamp's; or a source of `dir` newer than BUILD_ID.
 */
export function buildStaleReason({ dir, distDir, stampFile, inputs }) {
  const buildIdFile = path.join(dir, distDir, 'BUILD_ID')
  const builtAt = fs.existsSync(buildIdFile) ? fs.statSync(buildIdFile).mtimeMs : 0
  if (!builtAt) return `no ${distDir}/BUILD_ID`
  const stamp = readJson(stampFile)
  if (!stamp) return `no ${path.relative(dir, stampFile)}: what it was built from is unknown`
  const change = inputChange(stamp, inputs)
  if (change) return change
  const sources = newestSourceMtime(dir)
  if (sources.mtimeMs > builtAt)
    return `${path.relative(dir, sources.file)} changed after the last build`
  return null
}

/**
 * Records what a build was made from (buildStaleReason's `inputs`), once it succeeded; remove
 * the stamp (dropBuildStamp) before building, so that a failed build leaves none.
 */
export function writeBuildStamp(stampFile, inputs) {
  fs.mkdirSync(path.dirname(stampFile), { recursive: true })
  fs.writeFileSync(stampFile, `${JSON.stringify(inputs, null, 2)}\n`)
}

export function dropBuildStamp(stampFile) {
  fs.rmSync(stampFile, { force: true })
}

function nextInstalledMatchesLock(appDir) {
  const lock = readJson(path.join(appDir, 'package-lock.json'))
  const installed = readJson(path.join(appDir, 'node_modules', 'next', 'package.json'))
  const want = lock?.packages?.['node_modules/next']?.version
  return Boolean(installed && want && installed.version === want)
}

// The app's dependencies (`npm ci` when node_modules does not hold the locked `next`), without
// the fleetcache tarball or a build: for tests that load Next's own modules in their process.
// Returns the app's directory (the release's copy with E2E_NEXT_VERSION).
export async function prepareAppDeps({ log = defaultLog, logDir, appDir: dir = appDir } = {}) {
  const appDir = releaseAppDir(dir)
  let logFile
  const getLogFile = () =>
    (logFile ??= path.join(logDir ?? makeLogDir('fleetcache-build-'), 'prepare.log'))
  await installDeps(appDir, { log, getLogFile })
  return appDir
}

async function installDeps(appDir, { log, getLogFile }) {
  const shown = (p) => (p.startsWith(repoRoot + path.sep) ? path.relative(repoRoot, p) : p)
  if (exampleSourceOf(appDir)) {
    // A release's copy (E2E_NEXT_VERSION): its sources, package.json and lockfile, written only
    // where they differ so that an unchanged copy keeps its build.
    await syncReleaseApp(appDir, {
      log,
      run: (cmd, args, { cwd, what }) =>
        runLogged(cmd, args, {
          cwd,
          env: cleanEnv(),
          logFile: getLogFile(),
          timeoutMs: 10 * 60_000,
          what,
        }),
    })
  }

  if (!nextInstalledMatchesLock(appDir)) {
    log(`npm ci in ${shown(appDir)} (log: ${getLogFile()})`)
    // A request the registry stalls ends after 2 minutes and is retried (npm's default is 5
    // minutes, 3 tries): one such stall held a compat run's `npm ci` past its 10 minutes.
    await runLogged('npm', ['ci', '--no-audit', '--no-fund', '--fetch-timeout=120000'], {
      cwd: appDir,
      env: cleanEnv(),
      logFile: getLogFile(),
      timeoutMs: 10 * 60_000,
      what: 'npm ci',
    })
  }
}

// Makes sure examples/next-app has its dependencies and the fleetcache tarball installed and a
// current `next build`. Returns { tarball, buildId, built, buildMs, logFile, buildOutput }
// (buildOutput: the file holding what the build printed, BUILD_OUTPUT_FILE).
export async function prepareApp({
  log = defaultLog,
  logDir,
  force = false,
  appDir: dir = appDir,
} = {}) {
  const appDir = releaseAppDir(dir)
  const stampFile = stampFileOf(appDir)
  const buildIdFile = buildIdFileOf(appDir)
  const tarball = findTarball()
  // A temp dir for the npm/next output only when there is something to run.
  let logFile
  const getLogFile = () =>
    (logFile ??= path.join(logDir ?? makeLogDir('fleetcache-build-'), 'prepare.log'))
  const shown = (p) => (p.startsWith(repoRoot + path.sep) ? path.relative(repoRoot, p) : p)

  await installDeps(appDir, { log, getLogFile })

  const sha256 = sha256File(tarball)
  const stamp = readJson(stampFile)
  const pkgDir = path.join(appDir, 'node_modules', 'fleetcache')
  if (
    force ||
    !stamp ||
    stamp.sha256 !== sha256 ||
    !fs.existsSync(path.join(pkgDir, 'package.json'))
  ) {
    log(`installing ${shown(tarball)} into the example (log: ${getLogFile()})`)
    await runLogged('npm', ['install', '--no-save', '--no-audit', '--no-fund', tarball], {
      cwd: appDir,
      env: cleanEnv(),
      logFile: getLogFile(),
      timeoutMs: 5 * 60_000,
      what: `npm install ${tarball}`,
    })
    fs.writeFileSync(
      stampFile,
      JSON.stringify({ tarball, sha256, installedAt: new Date().toISOString() }, null, 2),
    )
  }
  if (fs.lstatSync(pkgDir).isSymbolicLink()) {
    throw new Error(
      `${pkgDir} is a symlink; fleetcache must be a real copy (install the tarball, not a directory)`,
    )
  }

  const sources = newestSourceMtime(appDir)
  const installedAt = fs.statSync(stampFile).mtimeMs
  const buildAt = fs.existsSync(buildIdFile) ? fs.statSync(buildIdFile).mtimeMs : 0
  const buildOutput = path.join(path.dirname(buildIdFile), BUILD_OUTPUT_FILE)
  const reason = force
    ? 'forced'
    : !buildAt
      ? 'no .next/BUILD_ID'
      : !fs.existsSync(buildOutput)
        ? `no .next/${BUILD_OUTPUT_FILE}`
        : installedAt > buildAt
          ? 'fleetcache was (re)installed after the last build'
          : sources.mtimeMs > buildAt
            ? `${path.relative(appDir, sources.file)} changed after the last build`
            : null
  let buildMs = 0
  if (reason) {
    log(`next build (${reason}; log: ${getLogFile()})`)
    const t0 = Date.now()
    await runBuild([nextBinOf(appDir), 'build'], {
      distDir: path.dirname(buildIdFile),
      cwd: appDir,
      env: cleanEnv(),
      logFile: getLogFile(),
      timeoutMs: 15 * 60_000,
      what: 'next build',
    })
    buildMs = Date.now() - t0
    log(`next build done in ${(buildMs / 1000).toFixed(1)} s`)
  }
  const buildId = fs.readFileSync(buildIdFile, 'utf8').trim()
  return { tarball, buildId, built: Boolean(reason), buildMs, logFile, buildOutput }
}

// Starts one `next start` on a free loopback port with the given env (plus INSTANCE_NAME=name) and
// waits until it answers readyPath with 200. Output goes to <logDir>/<name>.log. `fromDir`:
// `next start <app dir>` run in that working directory instead of the app's own.
export async function startInstance({
  name,
  env = {},
  logDir,
  readyPath = '/',
  startTimeoutMs = 60_000,
  attempts = 3,
  appDir: dir = appDir,
  serverJs,
  fromDir,
}) {
  if (!logDir) throw new Error('startInstance: logDir is required')
  let lastError
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = await freePort()
    const logFile = path.join(logDir, `${name}.log`)
    try {
      return await startInstanceOnPort({
        name,
        env,
        port,
        logFile,
        readyPath,
        startTimeoutMs,
        appDir: releaseAppDir(dir),
        serverJs,
        fromDir,
      })
    } catch (err) {
      lastError = err
      if (!/EADDRINUSE/.test(tailFile(logFile, 30))) break
    }
  }
  throw lastError
}

async function startInstanceOnPort({
  name,
  env,
  port,
  logFile,
  readyPath,
  startTimeoutMs,
  appDir,
  serverJs,
  fromDir,
}) {
  const out = fs.openSync(logFile, 'a')
  // `serverJs`: an `output: 'standalone'` server.js, configured by PORT and HOSTNAME.
  const argv = serverJs
    ? [serverJs]
    : [
        nextBinOf(appDir),
        'start',
        ...(fromDir ? [appDir] : []),
        '-p',
        String(port),
        '-H',
        '127.0.0.1',
      ]
  const serverEnv = serverJs ? { PORT: String(port), HOSTNAME: '127.0.0.1' } : {}
  fs.writeSync(out, `--- ${new Date().toISOString()} ${name}: node ${argv.join(' ')}\n`)
  const child = trackChild(
    spawn(process.execPath, argv, {
      cwd: serverJs ? path.dirname(serverJs) : (fromDir ?? appDir),
      env: cleanEnv({ ...tagSyncEnv(), ...env, ...serverEnv, INSTANCE_NAME: name }),
      stdio: ['ignore', out, out],
    }),
  )
  fs.closeSync(out)
  const url = `http://127.0.0.1:${port}`

  const instance = {
    name,
    port,
    url,
    logFile,
    child,
    get pid() {
      return child.pid
    },
    get running() {
      return child.exitCode === null && child.signalCode === null
    },
    logTail: (lines = 40) => tailFile(logFile, lines),
    // One HTTP request, bounded by timeoutMs. Resolves { status, headers, text, body, ms }
    // (body: the raw bytes, for byte-for-byte comparisons).
    async request(pathname, { method = 'GET', timeoutMs = 30_000, headers } = {}) {
      const t0 = Date.now()
      let res
      try {
        res = await fetch(url + pathname, {
          method,
          headers,
          signal: AbortSignal.timeout(timeoutMs),
          redirect: 'manual',
        })
      } catch (err) {
        const state = instance.running
          ? 'running'
          : `exited (code ${child.exitCode}, signal ${child.signalCode})`
        throw new Error(
          `${name} ${method} ${pathname} failed: ${err.cause?.message ?? err.message} [instance ${state}]`,
        )
      }
      const body = Buffer.from(await res.arrayBuffer())
      const text = body.toString('utf8')
      return { status: res.status, headers: res.headers, text, body, ms: Date.now() - t0 }
    },
    // GET a page of the example and read its <p id="data" ...> element (see components/data-view.tsx).
    async getData(pathname) {
      const res = await instance.request(pathname)
      if (res.status !== 200) {
        throw new Error(
          `${name} GET ${pathname} -> HTTP ${res.status}\n${indent(res.text.slice(0, 2000))}`,
        )
      }
      const data = parseDataElement(res.text)
      if (!data)
        throw new Error(
          `${name} GET ${pathname}: no <p id="data"> in the HTML\n${indent(res.text.slice(0, 2000))}`,
        )
      return { ...data, ms: res.ms, cache: res.headers.get('x-nextjs-cache') }
    },
    // POST a route handler of the example and check it answered { ok: true }.
    async call(pathname) {
      const res = await instance.request(pathname, { method: 'POST' })
      let body
      try {
        body = JSON.parse(res.text)
      } catch {
        body = null
      }
      if (res.status !== 200 || !body || body.ok !== true) {
        throw new Error(`${name} POST ${pathname} -> HTTP ${res.status}: ${res.text.slice(0, 500)}`)
      }
      return body
    },
    stop: () => stopChild(child, { termTimeoutMs: 10_000 }),
  }

  try {
    await waitFor(
      async () => {
        if (!instance.running) {
          const e = new Error(
            `${name} exited during start-up (code ${child.exitCode}, signal ${child.signalCode})`,
          )
          e.fatal = true
          throw e
        }
        const res = await fetch(url + readyPath, { signal: AbortSignal.timeout(5000) })
        await res.arrayBuffer()
        if (res.status !== 200) throw new Error(`GET ${readyPath} -> HTTP ${res.status}`)
        return true
      },
      {
        timeoutMs: startTimeoutMs,
        intervalMs: 200,
        what: `${name} (${url}) to answer GET ${readyPath}`,
        stopOn: (e) => e.fatal,
      },
    )
  } catch (err) {
    await stopChild(child, { termTimeoutMs: 5000 }).catch(() => {})
    throw new Error(`${err.message}\n--- last lines of ${logFile} ---\n${tailFile(logFile, 40)}`)
  }
  return instance
}

// Starts several instances (in parallel) with a shared env. names: e.g. ['A', 'B'].
export async function startFleet({ names, env = {}, logDir, ...rest }) {
  const settled = await Promise.allSettled(
    names.map((name) => startInstance({ name, env, logDir, ...rest })),
  )
  const instances = settled.filter((s) => s.status === 'fulfilled').map((s) => s.value)
  const failed = settled.filter((s) => s.status === 'rejected')
  if (failed.length) {
    await Promise.allSettled(instances.map((i) => i.stop()))
    throw new Error(failed.map((f) => f.reason.message).join('\n\n'))
  }
  return instances
}

// Reads <p id="data" data-*="..."> (components/data-view.tsx) from a page's HTML.
export function parseDataElement(html) {
  const tag = /<p id="data"([^>]*)>/.exec(html)
  if (!tag) return null
  const attrs = {}
  for (const [, key, value] of tag[1].matchAll(/\sdata-([a-z-]+)="([^"]*)"/g))
    attrs[key] = unescapeHtml(value)
  const num = (v) => (v === undefined ? NaN : Number(v))
  return {
    name: attrs.name,
    version: num(attrs.version),
    calls: num(attrs.calls),
    generatedAt: num(attrs['generated-at']),
    generatedBy: attrs['generated-by'],
    renderedBy: attrs['rendered-by'],
    error: attrs.error ?? null,
  }
}

function unescapeHtml(s) {
  return s.replace(
    /&(quot|amp|lt|gt|#x27|#39);/g,
    (_, e) => ({ quot: '"', amp: '&', lt: '<', gt: '>', '#x27': "'", '#39': "'" })[e],
  )
}

// ---- output: 'standalone' ----------------------------------------------------------------------
// The example's next.config switches to `output: 'standalone'` in .next-standalone/ when
// EXAMPLE_STANDALONE=1 at build time, so the standalone build and the `next start` build live
// side by side (two builds of one app, with two build ids).
export const STANDALONE_DIST_DIR = '.next-standalone'

// The same standalone build made by webpack (`next build --webpack`), in its own directory
// (EXAMPLE_DIST_DIR): a third build beside the two Turbopack ones. `next start` serves it too when
// given WEBPACK_ENV (next.config is read again at start, and must name the same directory).
export const WEBPACK_DIST_DIR = '.next-webpack'
export const WEBPACK_ENV = { EXAMPLE_STANDALONE: '1', EXAMPLE_DIST_DIR: WEBPACK_DIST_DIR }

// The throwaway build of tests/e2e/settings.test.mjs (EXAMPLE_DIST_DIR), never a source.
export const BUILD_PHASE_DIST_DIR = '.next-build-phase'

// Makes sure the app has its dependencies, the fleetcache tarball and a current standalone build;
// copies the static assets into the standalone tree as Next's docs prescribe. Returns
// { buildId, serverJs, standaloneDir, distDir, built, buildMs, buildOutput, app } (app:
// prepareApp's result, for the regular build). Start instances with
// startInstance({ serverJs, ... }). `webpack: true`: the webpack build in WEBPACK_DIST_DIR
// instead of Turbopack's.
export async function prepareStandalone({
  log = defaultLog,
  logDir,
  force = false,
  appDir: appDirArg = appDir,
  webpack = false,
} = {}) {
  const dir = releaseAppDir(appDirArg)
  // Dependencies and the tarball (and the regular build, which the other e2e tests use too).
  const app = await prepareApp({ log, logDir, appDir: dir })
  const distName = webpack ? WEBPACK_DIST_DIR : STANDALONE_DIST_DIR
  const what = webpack
    ? "next build --webpack, output: 'standalone'"
    : "next build, output: 'standalone'"
  const distDir = path.join(dir, distName)
  const buildIdFile = path.join(distDir, 'BUILD_ID')
  const standaloneDir = path.join(distDir, 'standalone')
  const serverJs = path.join(standaloneDir, 'server.js')
  const builtAt = fs.existsSync(buildIdFile) ? fs.statSync(buildIdFile).mtimeMs : 0
  const installedAt = fs.statSync(stampFileOf(dir)).mtimeMs
  const sources = newestSourceMtime(dir)
  const reason = force
    ? 'forced'
    : !builtAt || !fs.existsSync(serverJs)
      ? `no ${distName}/standalone/server.js`
      : !fs.existsSync(path.join(distDir, BUILD_OUTPUT_FILE))
        ? `no ${distName}/${BUILD_OUTPUT_FILE}`
        : installedAt > builtAt
          ? 'fleetcache was (re)installed after the last build'
          : sources.mtimeMs > builtAt
            ? `${path.relative(dir, sources.file)} changed after the last build`
            : null
  let buildMs = 0
  if (reason) {
    const logFile = path.join(
      logDir ?? makeLogDir('fleetcache-build-'),
      webpack ? 'webpack-build.log' : 'standalone-build.log',
    )
    log(`${what} (${reason}; log: ${logFile})`)
    const t0 = Date.now()
    await runBuild([nextBinOf(dir), 'build', ...(webpack ? ['--webpack'] : [])], {
      distDir,
      cwd: dir,
      env: cleanEnv(webpack ? WEBPACK_ENV : { EXAMPLE_STANDALONE: '1' }),
      logFile,
      timeoutMs: 15 * 60_000,
      what,
    })
    buildMs = Date.now() - t0
    log(`${what} done in ${(buildMs / 1000).toFixed(1)} s`)
    fs.cpSync(path.join(distDir, 'static'), path.join(standaloneDir, distName, 'static'), {
      recursive: true,
    })
  }
  const buildId = fs.readFileSync(buildIdFile, 'utf8').trim()
  if (buildId === app.buildId) throw new Error(`the standalone build reused build id ${buildId}`)
  return {
    buildId,
    serverJs,
    standaloneDir,
    distDir,
    built: Boolean(reason),
    buildMs,
    buildOutput: path.join(distDir, BUILD_OUTPUT_FILE),
    app,
  }
}

// ---- Next's default cache (no fleetcache) --------------------------------------------------------
// The example's next.config leaves fleetcache out and builds into .next-default/ when
// EXAMPLE_DEFAULT_CACHE=1 (at build time and at `next start`, which reads the config again): the
// per-process baseline of bench/fleet.mjs. Start its instances with
// startInstance({ env: { ...DEFAULT_CACHE_ENV, ... } }).
export const DEFAULT_CACHE_DIST_DIR = '.next-default'
export const DEFAULT_CACHE_ENV = { EXAMPLE_DEFAULT_CACHE: '1' }

// The default-cache build of `dir`: its stamp (in the build's directory, written after each
// build), what it is made from besides the app's sources (the installed Next release; not
// fleetcache, which it leaves out) and why it must be made again (null: it is current).
export function defaultCacheBuildState(dir) {
  const stampFile = path.join(dir, DEFAULT_CACHE_DIST_DIR, 'fleetcache-build.json')
  const inputs = { next: installedNextVersion(dir) }
  const reason = buildStaleReason({ dir, distDir: DEFAULT_CACHE_DIST_DIR, stampFile, inputs })
  return { stampFile, inputs, reason }
}

// Makes sure the app has its dependencies and a current default-cache build
// (defaultCacheBuildState). Returns { buildId, built, buildMs }.
export async function prepareDefaultCache({
  log = defaultLog,
  logDir,
  force = false,
  appDir: appDirArg = appDir,
} = {}) {
  const dir = releaseAppDir(appDirArg)
  const app = await prepareApp({ log, logDir, appDir: dir })
  const buildIdFile = path.join(dir, DEFAULT_CACHE_DIST_DIR, 'BUILD_ID')
  const stale = defaultCacheBuildState(dir)
  const reason = force ? 'forced' : stale.reason
  let buildMs = 0
  if (reason) {
    dropBuildStamp(stale.stampFile)
    const logFile = path.join(logDir ?? makeLogDir('fleetcache-build-'), 'default-cache-build.log')
    log(`next build without fleetcache (${reason}; log: ${logFile})`)
    const t0 = Date.now()
    await runLogged(process.execPath, [nextBinOf(dir), 'build'], {
      cwd: dir,
      env: cleanEnv(DEFAULT_CACHE_ENV),
      logFile,
      timeoutMs: 15 * 60_000,
      what: 'next build (default cache)',
    })
    buildMs = Date.now() - t0
    log(`default-cache build done in ${(buildMs / 1000).toFixed(1)} s`)
    writeBuildStamp(stale.stampFile, stale.inputs)
  }
  const buildId = fs.readFileSync(buildIdFile, 'utf8').trim()
  if (buildId === app.buildId) throw new Error(`the default-cache build reused build id ${buildId}`)
  return { buildId, built: Boolean(reason), buildMs }
}

// Next 16.4 answers an RSC request without the matching `_rsc` cache-busting parameter with a
// 307 to the URL that has it, as the client router would have sent; follow that once.
export async function rscRequest(inst, pathname, headers) {
  let res = await inst.request(pathname, { headers })
  const location = res.headers.get('location')
  if (res.status === 307 && location?.includes('_rsc'))
    res = await inst.request(location, { headers })
  return res
}

// ---- a deployment adapter (examples/next-incremental) ----------------------------------------------
// EXAMPLE_ADAPTER=1 at build time and at `next start` sets `adapterPath` to a no-op adapter and
// builds into .next-adapter/ (examples/next-incremental/next.config.mjs): the layout Next 16.3.8
// and later write with an adapter, prerenders under server/route-cache/.
export const ADAPTER_DIST_DIR = '.next-adapter'
// Every build directory above is an output (BUILD_OUTPUTS): one missing there would count as a
// source of the app, and its own build would make every other build stale.
for (const dir of [WEBPACK_DIST_DIR, BUILD_PHASE_DIST_DIR, ADAPTER_DIST_DIR]) {
  if (!BUILD_OUTPUTS.includes(dir)) throw new Error(`${dir} is missing from BUILD_OUTPUTS`)
}
export const ADAPTER_ENV = { EXAMPLE_ADAPTER: '1' }

// Makes sure the app has its dependencies and a current adapter build. Returns
// { buildId, distDir, built, buildMs }.
export async function prepareAdapterBuild({ log = defaultLog, logDir, appDir: appDirArg }) {
  const dir = releaseAppDir(appDirArg)
  const app = await prepareApp({ log, logDir, appDir: dir })
  const distDir = path.join(dir, ADAPTER_DIST_DIR)
  const buildIdFile = path.join(distDir, 'BUILD_ID')
  const builtAt = fs.existsSync(buildIdFile) ? fs.statSync(buildIdFile).mtimeMs : 0
  const installedAt = fs.statSync(stampFileOf(dir)).mtimeMs
  const sources = newestSourceMtime(dir)
  const reason = !builtAt
    ? `no ${ADAPTER_DIST_DIR}/BUILD_ID`
    : installedAt > builtAt
      ? 'fleetcache was (re)installed after the last build'
      : sources.mtimeMs > builtAt
        ? `${path.relative(dir, sources.file)} changed after the last build`
        : null
  let buildMs = 0
  if (reason) {
    const logFile = path.join(logDir ?? makeLogDir('fleetcache-build-'), 'adapter-build.log')
    log(`next build with adapterPath (${reason}; log: ${logFile})`)
    const t0 = Date.now()
    await runLogged(process.execPath, [nextBinOf(dir), 'build'], {
      cwd: dir,
      env: cleanEnv(ADAPTER_ENV),
      logFile,
      timeoutMs: 15 * 60_000,
      what: 'next build (adapterPath)',
    })
    buildMs = Date.now() - t0
    log(`adapter build done in ${(buildMs / 1000).toFixed(1)} s`)
  }
  const buildId = fs.readFileSync(buildIdFile, 'utf8').trim()
  if (buildId === app.buildId) throw new Error(`the adapter build reused build id ${buildId}`)
  return { buildId, distDir, built: Boolean(reason), buildMs }
}
