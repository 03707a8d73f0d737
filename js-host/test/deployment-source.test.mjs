// Where a server takes its deployment id from, and what it says when it finds none.
//
// A server that finds no deployment id and no build id (`next start <app dir>` run from another
// directory, a custom distDir wired by hand) stores under `<prefix>:default`, which every build
// that finds none shares: two such builds on one Redis serve each other's pages. The start line
// said so only as `(deployment from none found)`, on stdout with the other information; it is a
// problem (docs/troubleshooting.md: "problems to stderr"), so a warning names it and the fix.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { startRedis } from '../../tests/support/redis.mjs'

const require = createRequire(import.meta.url)
let redis
let dir

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-deployment-source-'))
  redis = await startRedis({ logDir: dir })
})

after(async () => {
  await redis?.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Loads the handler module as a server does, in `cwd`, with `env`; its stdout and stderr. */
function start(cwd, env) {
  const script = `
    const { close } = require(${JSON.stringify(require.resolve('../dist/index.js'))})
    require(${JSON.stringify(require.resolve('../dist/use-cache.js'))})
    void close()
  `
  const out = spawnSync(process.execPath, ['-e', script], {
    cwd,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...env },
    timeout: 30_000,
  })
  assert.equal(out.status, 0, out.stderr)
  return out
}

test('a server that finds no build id warns on stderr that it shares the default namespace', () => {
  const elsewhere = fs.mkdtempSync(path.join(dir, 'cwd-'))
  const out = start(elsewhere, { REDIS_URL: redis.url })
  assert.match(out.stdout, /namespace fleetcache:default \(deployment from none found\)/)
  const warned = out.stderr.split('\n').filter((l) => l.includes('no build id'))
  assert.equal(warned.length, 1, out.stderr)
  assert.ok(
    warned[0].includes(path.join(fs.realpathSync(elsewhere), '.next', 'BUILD_ID')),
    warned[0],
  )
  assert.match(warned[0], /fleetcache:default/)
  assert.match(warned[0], /FLEETCACHE_DIST_DIR/)
  assert.match(warned[0], /FLEETCACHE_DEPLOYMENT_ID/)
})

test('no such warning with a build id, a deployment id, or no Redis', () => {
  const app = fs.mkdtempSync(path.join(dir, 'app-'))
  fs.mkdirSync(path.join(app, '.next'))
  fs.writeFileSync(path.join(app, '.next', 'BUILD_ID'), 'b1')
  const quiet = (out) => assert.doesNotMatch(out.stderr, /no build id/, out.stderr)
  quiet(start(app, { REDIS_URL: redis.url }))
  quiet(start(dir, { REDIS_URL: redis.url, FLEETCACHE_DEPLOYMENT_ID: 'd1' }))
  // Without Redis each process keeps its own entries: nothing is shared with another build.
  quiet(start(dir, {}))
})

// The warning said `(<dir>/.next/BUILD_ID does not exist)` whatever kept the build id from
// being read: a BUILD_ID that is there but empty (a build interrupted as it wrote it) sent
// the operator looking for a file that exists.
test('a BUILD_ID that exists but is empty is named as such, not as missing', () => {
  const app = fs.mkdtempSync(path.join(dir, 'empty-'))
  fs.mkdirSync(path.join(app, '.next'))
  fs.writeFileSync(path.join(app, '.next', 'BUILD_ID'), '\n')
  const out = start(app, { REDIS_URL: redis.url })
  const warned = out.stderr.split('\n').filter((l) => l.includes('no build id'))
  assert.equal(warned.length, 1, out.stderr)
  const file = path.join(fs.realpathSync(app), '.next', 'BUILD_ID')
  assert.ok(warned[0].includes(`(${file} is empty)`), warned[0])
  assert.doesNotMatch(warned[0], /does not exist/)
})

// A build whose config sets `deploymentId` gets the build id 'build-TfctsWXpff2fKS', the same in
// every build (`getBuildId` in next/dist/build/index.js: 16.2.0 to 16.3.8, and 16.4.0 to 16.5.0
// when it sets no `generateBuildId`), and with `experimental.useSkewCookie` its server sets
// NEXT_DEPLOYMENT_ID to '' before the handlers load (base-server.js, from 16.1.0). Taken from the build id, the
// namespace was one for every such build, of every app and release: each served the pages the
// others stored. The deploymentId the build recorded is the build's own.
const CONSTANT_BUILD_ID = 'build-TfctsWXpff2fKS'

/** An app directory whose `.next` holds `buildId` and, when given, the recorded `config`. */
function build(name, buildId, config) {
  const app = fs.mkdtempSync(path.join(dir, `${name}-`))
  fs.mkdirSync(path.join(app, '.next'))
  fs.writeFileSync(path.join(app, '.next', 'BUILD_ID'), buildId)
  if (config !== undefined) {
    fs.writeFileSync(
      path.join(app, '.next', 'required-server-files.json'),
      JSON.stringify({ version: 1, config }),
    )
  }
  return app
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

test('a useSkewCookie build is namespaced by the deploymentId it recorded, not its constant build id', () => {
  const namespaces = new Set()
  for (const id of ['v41', 'v42']) {
    const app = build(id, CONSTANT_BUILD_ID, {
      deploymentId: id,
      experimental: { useSkewCookie: true },
    })
    // As Next leaves it for the handlers: set, and empty.
    const out = start(app, { REDIS_URL: redis.url, NEXT_DEPLOYMENT_ID: '' })
    const record = path.join(fs.realpathSync(app), '.next', 'required-server-files.json')
    assert.match(
      out.stdout,
      new RegExp(
        `namespace fleetcache:${id} \\(deployment from deploymentId in ${escape(record)}\\)`,
      ),
    )
    namespaces.add(out.stdout.match(/namespace (\S+)/)?.[1])
  }
  assert.equal(namespaces.size, 2, [...namespaces].join(', '))
})

test("a standalone server's recorded deploymentId is read from the config server.js announces", () => {
  // server.js changes to its own directory and puts the config recorded at build into
  // __NEXT_PRIVATE_STANDALONE_CONFIG; its .next is a copy of the build's.
  const config = { distDir: './.next', deploymentId: 'v43', experimental: { useSkewCookie: true } }
  const app = build('standalone', CONSTANT_BUILD_ID)
  const out = start(app, {
    REDIS_URL: redis.url,
    NEXT_DEPLOYMENT_ID: '',
    __NEXT_PRIVATE_STANDALONE_CONFIG: JSON.stringify(config),
  })
  assert.match(
    out.stdout,
    /namespace fleetcache:v43 \(deployment from deploymentId in __NEXT_PRIVATE_STANDALONE_CONFIG\)/,
  )
})

test('the variables still come first, and a build that recorded no deploymentId is its build id', () => {
  const config = { deploymentId: 'v42', experimental: { useSkewCookie: true } }
  const app = build('order', CONSTANT_BUILD_ID, config)
  assert.match(
    start(app, { REDIS_URL: redis.url, FLEETCACHE_DEPLOYMENT_ID: 'f3' }).stdout,
    /namespace fleetcache:f3 \(deployment from FLEETCACHE_DEPLOYMENT_ID\)/,
  )
  // A variable that is set comes before the record: Next sets it from the config (or from the
  // variable exported to `next start`, which replaces the config's) without useSkewCookie, and
  // with it on 16.0.x, which does not empty it.
  assert.match(
    start(app, { REDIS_URL: redis.url, NEXT_DEPLOYMENT_ID: 'n7' }).stdout,
    /namespace fleetcache:n7 \(deployment from NEXT_DEPLOYMENT_ID\)/,
  )
  // runtimeServerDeploymentId records deploymentId '' (its server refuses to start without
  // the variable); a config with none records nothing: both are the build id.
  for (const recorded of [
    { deploymentId: '', experimental: { runtimeServerDeploymentId: true } },
    {},
  ]) {
    const other = build('none', 'b9', recorded)
    assert.match(
      start(other, { REDIS_URL: redis.url }).stdout,
      /namespace fleetcache:b9 \(deployment from \S+BUILD_ID\)/,
      JSON.stringify(recorded),
    )
  }
})
