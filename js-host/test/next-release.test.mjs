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
