// End to end: deployments side by side on one Redis, as during a rolling deploy.
//
//   X  `next start` of the regular build         namespace: .next/BUILD_ID
//   Y  `node server.js` of the standalone build   namespace: .next-standalone/BUILD_ID (another build)
//   Z  `next start` of X's build with FLEETCACHE_DEPLOYMENT_ID=override-z
//   W  `node server.js` of Y's build with FLEETCACHE_DEPLOYMENT_ID=override-z (Z's namespace)
//
// No deployment serves another's entries (each regenerates its own), while a tag revalidation
// on any of them reaches all of them (tag state is shared per prefix). Z and W are two builds
// under one deployment id, which serve each other's entries: each warns of the other (each
// server records its build under its deployment, `<prefix>:<deployment>:builds`). They renew
// the record every maxTtlSeconds / 2: FLEETCACHE_MAX_TTL_SECONDS=20 makes that 10 s, so the
// one that started first learns of the other within the test, not an hour later.
//
// Run: node --test tests/e2e/deployments.test.mjs   (E2E_KEEP_LOGS=1 keeps the logs)
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
  startInstance,
} from '../support/fleet.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'
import { revalidateOn, waitForQuiet } from '../support/observe.mjs'
import { waitFor } from '../support/util.mjs'

// Next runs a route handler's revalidateTag after the response (waitUntil): the reads that must
// see it wait until Redis's tag state holds it (revalidateOn).
const PATHNAME = '/products?list=deploy'
const NAME = 'products-deploy'

let logDir
let redis
let origin
let X
let Y
let Z
let W
let ids
/** The standalone server's directory, which its server.js changes to. */
let standaloneDir

async function entryKeys() {
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

async function read(inst) {
  const d = await inst.getData(PATHNAME)
  assert.equal(d.error, null, `${inst.name}: the page rendered an origin error: ${d.error}`)
  return d
}

describe('fleetcache e2e: deployments side by side on one Redis', () => {
  const { wrap: withDiagnostics } = fleetSuite({
    tag: 'deployments',
    scene: () => ({ logDir, origin, redis: [redis], instances: [X, Y, Z, W] }),
    setUp: async () => {
      logDir = makeLogDir('fleetcache-deployments-')
      const standalone = await prepareStandalone({ logDir })
      standaloneDir = path.dirname(standalone.serverJs)
      const app = await prepareApp({ logDir })
      ids = { X: app.buildId, Y: standalone.buildId, Z: 'override-z', W: 'override-z' }
      redis = await startRedis({ logDir })
      origin = await startOrigin()
      const env = { REDIS_URL: redis.url, ORIGIN_URL: origin.url, FLEETCACHE_DEBUG: '1' }
      const shared = { FLEETCACHE_DEPLOYMENT_ID: ids.Z, FLEETCACHE_MAX_TTL_SECONDS: '20' }
      ;[X, Y, Z, W] = await Promise.all([
        startInstance({ name: 'X', env, logDir }),
        startInstance({ name: 'Y', env, logDir, serverJs: standalone.serverJs }),
        startInstance({ name: 'Z', env: { ...env, ...shared }, logDir }),
        startInstance({
          name: 'W',
          env: { ...env, ...shared },
          logDir,
          serverJs: standalone.serverJs,
        }),
      ])
      process.stderr.write(
        `[deployments] X=${X.url} (${ids.X}) Y=${Y.url} (${ids.Y}) Z=${Z.url} (${ids.Z}) W=${W.url} (${ids.W}, build ${ids.Y}) redis=${redis.url} logs=${logDir}\n`,
      )
    },
  })

  test(
    'each instance logs the namespace it uses, once, with where the id came from',
    { timeout: 30_000 },
    withDiagnostics(async () => {
      const sources = {
        // The file read, resolved: server.js changes to its own directory first.
        X: path.join(fs.realpathSync(appDir), '.next', 'BUILD_ID'),
        Y: path.join(fs.realpathSync(standaloneDir), '.next-standalone', 'BUILD_ID'),
        Z: 'FLEETCACHE_DEPLOYMENT_ID',
        W: 'FLEETCACHE_DEPLOYMENT_ID',
      }
      for (const inst of [X, Y, Z, W]) {
        // The first request loads the handlers (and so logs the line) if start-up did not.
        await inst.request('/')
        const lines = inst
          .logTail(500)
          .split('\n')
          .filter((l) => l.includes('[fleetcache] namespace'))
        assert.equal(lines.length, 1, `${inst.name} logged ${lines.length} namespace lines`)
        assert.ok(
          lines[0].includes(
            `namespace fleetcache:${ids[inst.name]} (deployment from ${sources[inst.name]})`,
          ),
          `${inst.name}: ${lines[0]}`,
        )
      }
    }),
  )

  test(
    "no deployment serves another's entries",
    { timeout: 60_000 },
    withDiagnostics(async () => {
      const x = await read(X)
      assert.equal(x.generatedBy, 'X')
      const y = await read(Y)
      assert.equal(y.generatedBy, 'Y', "Y served X's entry")
      const z = await read(Z)
      assert.equal(
        z.generatedBy,
        'Z',
        "Z (same build as X, other deployment id) served another's entry",
      )
      assert.equal(origin.calls(NAME), 3, 'each deployment regenerates once')
      // Each keeps serving its own entry.
      for (const [inst, own] of [
        [X, x],
        [Y, y],
        [Z, z],
      ]) {
        const again = await read(inst)
        assert.equal(again.generatedBy, inst.name)
        assert.equal(again.generatedAt, own.generatedAt, `${inst.name} regenerated a cached value`)
      }
      // Each entry is written after its response: count and look once none is in flight.
      await waitForQuiet({ redis, origin, names: [NAME] })
      assert.equal(origin.calls(NAME), 3)
      const keys = await entryKeys()
      for (const id of Object.values(ids)) {
        assert.ok(
          keys.some((k) => k.startsWith(`fleetcache:${id}:uc-default:`)),
          `no 'use cache' entry under deployment ${id}: ${keys.join(', ')}`,
        )
      }
    }),
  )

  for (const [from, label] of [
    ['X', 'a revalidation on X reaches Y and Z'],
    ['Y', 'a revalidation on Y reaches X and Z'],
  ]) {
    test(
      label,
      { timeout: 60_000 },
      withDiagnostics(async () => {
        const source = { X, Y, Z }[from]
        const others = [X, Y, Z].filter((i) => i !== source)
        for (const inst of [X, Y, Z]) await read(inst)
        await waitForQuiet({ redis, origin, names: [NAME] }) // all cached
        const newV = origin.bump(NAME)
        await revalidateOn(source, '/api/expire?tag=products', redis, 'products', {
          mode: 'expire',
        })
        for (const inst of others) {
          const d = await read(inst)
          assert.equal(
            d.version,
            newV,
            `${inst.name} served v${d.version} (generated by ${d.generatedBy}) after the revalidation on ${from}; expected v${newV}`,
          )
          assert.equal(d.generatedBy, inst.name)
        }
      }),
    )
  }

  test(
    'two builds under one deployment id (Z and W) each warn once, naming the other; X and Y do not',
    { timeout: 60_000 },
    withDiagnostics(async () => {
      const warnings = (inst) =>
        fs
          .readFileSync(inst.logFile, 'utf8')
          .split('\n')
          .filter((l) => l.includes('[fleetcache] two builds serve under one deployment id'))
      // The later of the two warned at its first connection; the other warns at its renewal.
      await waitFor(() => warnings(Z).length > 0 && warnings(W).length > 0, {
        timeoutMs: 40_000,
        intervalMs: 200,
        what: 'both Z and W to warn of the other build under override-z',
      })
      for (const [inst, own, other] of [
        [Z, ids.X, ids.Y],
        [W, ids.Y, ids.X],
      ]) {
        const lines = warnings(inst)
        assert.equal(lines.length, 1, `${inst.name}: ${lines.join('\n')}`)
        assert.match(
          lines[0],
          /deployment id "override-z" \(from FLEETCACHE_DEPLOYMENT_ID, namespace fleetcache:override-z\)/,
        )
        assert.ok(lines[0].includes(`, build id ${own}, and another, Next `), lines[0])
        assert.ok(lines[0].includes(`, build id ${other};`), lines[0])
        assert.ok(lines[0].includes('docs/configuration.md#deployment-namespace'), lines[0])
      }
      for (const inst of [X, Y]) {
        assert.deepEqual(warnings(inst), [], `${inst.name} warned`)
      }
    }),
  )
})
