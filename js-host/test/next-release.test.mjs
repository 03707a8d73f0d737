// The running Next release: read from next/package.json, converted for the engine, and what the
// engine then decides for a singular-handler entry (the decisions themselves are tested in
// crates/fleetcache-core/src/incremental.rs; here only that the conversion reaches them).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { parseNextVersion } = require('../dist/next-release.js')
const { durableUseCacheEntries } = require('../dist/config.js')
const wasm = require('../wasm/node/fleetcache_wasm.js')

test('versions convert to the engine setting; anything else is left out', () => {
  assert.deepEqual(parseNextVersion('16.3.8'), {
    major: 16,
    minor: 3,
    patch: 8,
    prerelease: false,
  })
  assert.deepEqual(parseNextVersion('16.5.0-canary.38'), {
    major: 16,
    minor: 5,
    patch: 0,
    prerelease: true,
  })
  assert.deepEqual(parseNextVersion(' 16.0.0+build.1 '), {
    major: 16,
    minor: 0,
    patch: 0,
    prerelease: false,
  })
  for (const bad of ['16.3', 'latest', '', '16.3.x', 42, undefined, '99999999999.0.0'])
    assert.equal(parseNextVersion(bad), undefined, String(bad))
})

test('the engine takes the setting and rejects a malformed one', () => {
  for (const v of ['16.0.11', '16.4.6', '16.5.0-canary.38']) {
    const e = new wasm.Engine({ prefix: 'nr', nextRelease: parseNextVersion(v) })
    e.free()
  }
  assert.throws(() => new wasm.Engine({ prefix: 'nr', nextRelease: { major: 16 } }))
})

test('a handler process reads the release of the app it serves', () => {
  // A fake app whose node_modules/next says 16.2.12, read from the app's directory (cwd).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-next-release-'))
  try {
    fs.mkdirSync(path.join(dir, 'node_modules', 'next'), { recursive: true })
    fs.writeFileSync(
      path.join(dir, 'node_modules', 'next', 'package.json'),
      JSON.stringify({ name: 'next', version: '16.2.12' }),
    )
    fs.writeFileSync(path.join(dir, 'package.json'), '{}')
    const script = `
      const { detectNextRelease } = require(${JSON.stringify(require.resolve('../dist/next-release.js'))})
      process.stdout.write(JSON.stringify(detectNextRelease()))
    `
    const out = spawnSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8' })
    assert.equal(out.status, 0, out.stderr)
    assert.deepEqual(JSON.parse(out.stdout), {
      version: '16.2.12',
      release: { major: 16, minor: 2, patch: 12, prerelease: false },
    })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

/** A fake app: node_modules/next at `version`, and `.next/required-server-files.json`. */
function fakeApp(version, experimental) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-next-release-'))
  fs.mkdirSync(path.join(dir, 'node_modules', 'next'), { recursive: true })
  fs.writeFileSync(
    path.join(dir, 'node_modules', 'next', 'package.json'),
    JSON.stringify({ name: 'next', version }),
  )
  fs.writeFileSync(path.join(dir, 'package.json'), '{}')
  fs.mkdirSync(path.join(dir, '.next'))
  fs.writeFileSync(path.join(dir, '.next', 'BUILD_ID'), 'build-1')
  fs.writeFileSync(
    path.join(dir, '.next', 'required-server-files.json'),
    JSON.stringify({ version: 1, config: { experimental } }),
  )
  return dir
}

test('durableUseCacheEntries is read from the build, or from a standalone server', () => {
  const on = fakeApp('16.4.6', { durableUseCacheEntries: true })
  const off = fakeApp('16.4.6', {})
  try {
    assert.equal(durableUseCacheEntries({}, on), true)
    assert.equal(durableUseCacheEntries({}, off), false)
    assert.equal(durableUseCacheEntries({}, os.tmpdir()), false, 'no build: off')
    const standalone = JSON.stringify({ experimental: { durableUseCacheEntries: true } })
    assert.equal(
      durableUseCacheEntries({ __NEXT_PRIVATE_STANDALONE_CONFIG: standalone }, off),
      true,
    )
    assert.equal(durableUseCacheEntries({ __NEXT_PRIVATE_STANDALONE_CONFIG: '{' }, on), false)
  } finally {
    fs.rmSync(on, { recursive: true, force: true })
    fs.rmSync(off, { recursive: true, force: true })
  }
})

test("with durableUseCacheEntries, 'use cache' entries are kept under the Next release", () => {
  // The server process of each fake app says where its entries go (its start-up log line).
  const namespaceLine = (dir) => {
    const script = `
      const { createUseCacheHandler } = require(${JSON.stringify(require.resolve('../dist/index.js'))})
      createUseCacheHandler({ debug: true })
    `
    const out = spawnSync(process.execPath, ['-e', script], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    })
    assert.equal(out.status, 0, out.stderr)
    return `${out.stdout}${out.stderr}`.split('\n').find((l) => l.includes('namespace')) ?? ''
  }
  const durable = fakeApp('16.4.6', { durableUseCacheEntries: true })
  const plain = fakeApp('16.4.6', {})
  const old = fakeApp('16.3.8', { durableUseCacheEntries: true })
  try {
    assert.match(
      namespaceLine(durable),
      /namespace fleetcache:default .*'use cache' entries under fleetcache:next-16\.4\.6/,
    )
    assert.doesNotMatch(namespaceLine(plain), /'use cache' entries under/)
    // Before 16.4 the setting does not exist: Next keys by build, and so does fleetcache.
    assert.doesNotMatch(namespaceLine(old), /'use cache' entries under/)
  } finally {
    for (const d of [durable, plain, old]) fs.rmSync(d, { recursive: true, force: true })
  }
})
