// make test-compat: the two-instance e2e suites (both cache interfaces, the three revalidation
// modes, seed and the CLI), the tag pulls per page request, the own-read stamping through
// Next's own modules and a webpack standalone build against each Next release, one release after another, each with its own
// build of the example apps (tests/support/next-release.mjs) and a time budget.
//
// Writes a machine-readable result, release -> suite -> pass/fail/skip counts with the failing
// and skipped test names, and prints one summary line per release. Exits non-zero when a
// release has a failing test, did not finish in its budget or could not run.
//
//   node tests/compat/run.mjs [--releases 16.0.11,16.3.8] [--results <file>]
//   Env: COMPAT_RELEASES (same as --releases), COMPAT_TIMEOUT_MINUTES (per release, default 25).
//
// The result file is updated, not replaced: releases not run keep their last result.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

// The oldest supported release, the last patch of every 16.x minor and, when the registry has
// one newer than the newest release, the newest canary (`npm view next time --json`; on
// 2026-12-03 none was newer than 16.5.0); 16.4.6 is also what the examples pin.
// js-host/package.json's `next` peer range follows this list.
export const RELEASES = ['16.0.0', '16.0.11', '16.1.7', '16.2.12', '16.3.8', '16.4.6', '16.5.0']
export const SUITES = [
  'tests/e2e/use-cache.test.mjs',
  'tests/e2e/incremental.test.mjs',
  'tests/e2e/cli.test.mjs',
  'tests/e2e/tag-pulls.test.mjs',
  // `next build --webpack`: its trace obeys other exclusion keys than Turbopack's.
  'tests/e2e/webpack.test.mjs',
  // Own-read stamping driven by the release's own fetch patch, IncrementalCache and
  // unstable_cache: the Next internals it relies on are the release's.
  'js-host/test/next-modules-stamping.test.mjs',
]

const { values } = parseArgs({
  options: {
    releases: { type: 'string', default: process.env.COMPAT_RELEASES || RELEASES.join(',') },
    results: { type: 'string', default: path.join(repoRoot, 'tests', 'compat', 'RESULTS.json') },
  },
})
const releases = values.releases
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
const resultsFile = path.resolve(values.results)
const timeoutMs = Number(process.env.COMPAT_TIMEOUT_MINUTES || 25) * 60_000
const logRoot = path.join(repoRoot, 'target', 'compat-logs')
fs.mkdirSync(logRoot, { recursive: true })

function readResults() {
  try {
    return JSON.parse(fs.readFileSync(resultsFile, 'utf8'))
  } catch {
    return { releases: {} }
  }
}

// One release: the suites in one `node --test` run (one build per app, reused by every suite),
// in their own process group so that a run past its budget is stopped with everything it started.
async function runRelease(version) {
  const logFile = path.join(logRoot, `${version}.log`)
  const jsonFile = path.join(logRoot, `${version}.json`)
  fs.rmSync(jsonFile, { force: true })
  const out = fs.openSync(logFile, 'w')
  const args = [
    '--test',
    '--test-concurrency=1',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${path.join(repoRoot, 'tests', 'compat', 'reporter.mjs')}`,
    `--test-reporter-destination=${jsonFile}`,
    ...SUITES,
  ]
  const t0 = Date.now()
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, E2E_NEXT_VERSION: version },
    stdio: ['ignore', out, out],
    detached: true,
  })
  fs.closeSync(out)
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    try {
      process.kill(-child.pid, 'SIGTERM')
    } catch {
      // Already gone.
    }
    setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }, 15_000).unref()
  }, timeoutMs)
  const code = await new Promise((resolve) => child.once('exit', (c, s) => resolve(c ?? s)))
  clearTimeout(timer)
  if (timedOut) {
    // What the test runner started may outlive it: an `npm ci` stalled on the registry
    // survived the SIGTERM, and this process ended before the SIGKILL above was due.
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // The whole group is gone.
    }
  }
  const seconds = Math.round((Date.now() - t0) / 1000)
  let suites = {}
  try {
    suites = JSON.parse(fs.readFileSync(jsonFile, 'utf8'))
  } catch {
    // No report: the run was stopped or crashed before the end; the status says which.
  }
  const byName = {}
  for (const [file, r] of Object.entries(suites)) byName[file.replace(/\.test\.mjs$/, '')] = r
  const total = (k) => Object.values(byName).reduce((n, r) => n + r[k], 0)
  const status = timedOut
    ? 'timeout'
    : total('fail') > 0
      ? 'fail'
      : code !== 0 || Object.keys(byName).length !== SUITES.length
        ? 'error'
        : 'pass'
  return {
    status,
    seconds,
    exit: code,
    pass: total('pass'),
    fail: total('fail'),
    skip: total('skip'),
    suites: byName,
    log: path.relative(repoRoot, logFile),
  }
}

const results = readResults()
results.releases ??= {}
let bad = 0
for (const version of releases) {
  process.stdout.write(`[compat] Next ${version}: running ${SUITES.length} suites ...\n`)
  const r = await runRelease(version)
  results.node = process.version
  results.suites = SUITES
  results.releases[version] = { ...r, finishedAt: new Date().toISOString() }
  // Written after each release so that an interrupted run keeps what it finished.
  fs.mkdirSync(path.dirname(resultsFile), { recursive: true })
  fs.writeFileSync(resultsFile, JSON.stringify(results, null, 2) + '\n')
  if (r.status !== 'pass') bad++
  process.stdout.write(
    `[compat] Next ${version}: ${r.status.toUpperCase()} pass ${r.pass} fail ${r.fail} skip ${r.skip} (${r.seconds} s, log ${r.log})\n`,
  )
  for (const [suite, s] of Object.entries(r.suites))
    for (const f of s.failing)
      process.stdout.write(`[compat]   FAIL ${suite}: ${f.name}: ${f.error}\n`)
}
process.stdout.write(`[compat] results in ${path.relative(repoRoot, resultsFile)}\n`)
process.exit(bad ? 1 : 0)
