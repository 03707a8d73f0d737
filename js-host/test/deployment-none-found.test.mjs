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
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-none-found-'))
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
