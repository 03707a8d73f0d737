// End to end: what fleetcache's settings do to real `next build`, `next start` and standalone
// `server.js` processes of examples/next-app.
//
// - a server started with an invalid setting exits at start, status 1, with one line naming
//   the variable (before, it started and answered every request with 500);
// - a `next build` with REDIS_URL set writes nothing to Redis, and says so in one consistent
//   line (before, 'use cache' entries went to Redis under a namespace no server reads);
// - `next start` of a build in a custom distDir keys by that build (before, no build id was
//   found and every deployment shared one namespace).
//
// Run: node --test tests/e2e/settings.test.mjs   (E2E_KEEP_LOGS=1 keeps the logs)
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { tearDown } from '../support/diagnostics.mjs'
import {
  appDir,
  BUILD_PHASE_DIST_DIR,
  cleanEnv,
  makeLogDir,
  nextBinOf,
  prepareApp,
  prepareStandalone,
  runLogged,
  startInstance,
} from '../support/fleet.mjs'
import { freePort } from '../support/ports.mjs'
import { startRedis } from '../support/redis.mjs'
import { stopChild, trackChild, waitForExit } from '../support/util.mjs'

const KEEP_LOGS = process.env.E2E_KEEP_LOGS === '1'
// Next boots in a few seconds; a busy machine gets ten times that before the test gives up.
const EXIT_WITHIN_MS = 60_000

// Each invalid setting, and the variable its line must name.
const BAD = [
  { env: { REDIS_URL: 'localhost:6390' }, variable: 'REDIS_URL', says: /no scheme/ },
  { env: { REDIS_URL: 'http://127.0.0.1:6390' }, variable: 'REDIS_URL', says: /got http:\/\// },
  { env: { REDIS_URL: 'redis://127.0.0.1:abc' }, variable: 'REDIS_URL', says: /not a valid URL/ },
  {
    env: { FLEETCACHE_READ_TIMEOUT_MS: 'abc' },
    variable: 'FLEETCACHE_READ_TIMEOUT_MS',
    says: /"abc"/,
  },
  { env: { FLEETCACHE_READ_TIMEOUT_MS: '0' }, variable: 'FLEETCACHE_READ_TIMEOUT_MS', says: /"0"/ },
  { env: { FLEETCACHE_PREFIX: 'my app' }, variable: 'FLEETCACHE_PREFIX', says: /"my app"/ },
]

let logDir
let redis
let standalone
let failed = false
const children = []
let started = 0

// Starts a server (next start, or a standalone server.js) with `env`; resolves when it exited,
// with its status and output.
async function startExpectingExit(name, env, serverJs) {
  const port = await freePort()
  started += 1
  const logFile = path.join(logDir, `${String(started).padStart(2, '0')}-${name}.log`)
  const out = fs.openSync(logFile, 'a')
  const argv = serverJs
    ? [serverJs]
    : [nextBinOf(appDir), 'start', '-p', String(port), '-H', '127.0.0.1']
  const child = trackChild(
    spawn(process.execPath, argv, {
      cwd: serverJs ? path.dirname(serverJs) : appDir,
      env: cleanEnv({
        ...env,
        ...(serverJs ? { PORT: String(port), HOSTNAME: '127.0.0.1' } : {}),
      }),
      stdio: ['ignore', out, out],
    }),
  )
  fs.closeSync(out)
  children.push(child)
  const exited = await waitForExit(child, EXIT_WITHIN_MS)
  const log = fs.readFileSync(logFile, 'utf8')
  if (!exited) {
    await stopChild(child, { termTimeoutMs: 5000 })
    assert.fail(`${name} still runs ${EXIT_WITHIN_MS} ms after its start:\n${log}`)
  }
  return { code: child.exitCode, log }
}

function assertStopped(r, bad, who) {
  const lines = r.log.split('\n').filter((l) => l.includes('[fleetcache]'))
  assert.equal(r.code, 1, `${who}: exit status\n${r.log}`)
  assert.equal(lines.length, 1, `${who}: one fleetcache line\n${r.log}`)
  assert.match(
    lines[0],
    new RegExp(`invalid setting, the server does not start: ${bad.variable}: `),
    who,
  )
  assert.match(lines[0], bad.says, who)
  assert.doesNotMatch(r.log, /ConfigError|    at /, `${who}: a stack trace instead of the line`)
}

describe('settings of real next build, next start and standalone processes', () => {
  before(
    async () => {
      logDir = makeLogDir('fleetcache-settings-')
      await prepareApp({ logDir })
      standalone = await prepareStandalone({ logDir })
      redis = await startRedis({ logDir })
    },
    { timeout: 30 * 60_000 },
  )

  after(async () => {
    await Promise.allSettled(children.map((c) => stopChild(c, { termTimeoutMs: 5000 })))
    fs.rmSync(path.join(appDir, BUILD_PHASE_DIST_DIR), { recursive: true, force: true })
    await tearDown({ tag: 'settings', logDir, failed, keep: KEEP_LOGS, services: [redis] })
  })

  for (const bad of BAD) {
    const label = Object.entries(bad.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')
    test(
      `next start with ${label} exits at start naming ${bad.variable}`,
      { timeout: 120_000 },
      async () => {
        try {
          assertStopped(
            await startExpectingExit(`start-${bad.variable}`, bad.env),
            bad,
            'next start',
          )
        } catch (err) {
          failed = true
          throw err
        }
      },
    )
  }

  for (const bad of [BAD[0], BAD[4], BAD[5]]) {
    const label = Object.entries(bad.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')
    test(
      `standalone server.js with ${label} exits at start naming ${bad.variable}`,
      { timeout: 120_000 },
      async () => {
        try {
          const r = await startExpectingExit(
            `standalone-${bad.variable}`,
            bad.env,
            standalone.serverJs,
          )
          assertStopped(r, bad, 'standalone')
        } catch (err) {
          failed = true
          throw err
        }
      },
    )
  }

  test(
    'next build with REDIS_URL set stores nothing in Redis and says so once',
    { timeout: 20 * 60_000 },
    async () => {
      try {
        const distDir = path.join(appDir, BUILD_PHASE_DIST_DIR)
        fs.rmSync(distDir, { recursive: true, force: true })
        const logFile = path.join(logDir, 'build-with-redis.log')
        await runLogged(process.execPath, [nextBinOf(appDir), 'build'], {
          cwd: appDir,
          env: cleanEnv({
            EXAMPLE_DIST_DIR: BUILD_PHASE_DIST_DIR,
            REDIS_URL: redis.url,
            FLEETCACHE_PREFIX: 'build-phase',
          }),
          logFile,
          timeoutMs: 15 * 60_000,
          what: 'next build with REDIS_URL',
        })
        assert.ok(fs.existsSync(path.join(distDir, 'BUILD_ID')), 'the build finished')
        const log = fs.readFileSync(logFile, 'utf8')
        const ours = log.split('\n').filter((l) => l.includes('[fleetcache]'))
        assert.ok(ours.length >= 1, `no fleetcache line in the build log:\n${log}`)
        for (const line of ours) {
          assert.match(
            line,
            /next build: in-process store, Redis is not used during a build \(REDIS_URL is read by the server at start\)/,
            `an unexpected line in the build log: ${line}`,
          )
        }
        assert.equal(Number(await redis.command('DBSIZE')), 0, 'the build wrote to Redis')
      } catch (err) {
        failed = true
        throw err
      }
    },
  )

  // Next does not tell a handler its distDir: withFleetcache passes it on from the config,
  // which `next start` evaluates in the server process (before, the log said "deployment from
  // none found" and every deployment shared one namespace). Uses the build of the test above.
  test(
    'next start of a build in a custom distDir keys by that build',
    { timeout: 120_000 },
    async () => {
      let inst
      try {
        const buildId = fs
          .readFileSync(path.join(appDir, BUILD_PHASE_DIST_DIR, 'BUILD_ID'), 'utf8')
          .trim()
        inst = await startInstance({
          name: 'custom-dist-dir',
          logDir,
          env: { EXAMPLE_DIST_DIR: BUILD_PHASE_DIST_DIR, REDIS_URL: redis.url },
        })
        const line = inst
          .logTail(200)
          .split('\n')
          .find((l) => l.includes('[fleetcache] namespace'))
        assert.ok(line, `no namespace line:\n${inst.logTail(200)}`)
        assert.ok(
          line.includes(
            `:${buildId} (deployment from ${path.join(fs.realpathSync(appDir), BUILD_PHASE_DIST_DIR, 'BUILD_ID')})`,
          ),
          line,
        )
      } catch (err) {
        failed = true
        throw err
      } finally {
        await inst?.stop()
      }
    },
  )
})
