// The declared `next` range and the start-up warning for a server whose Next.js is outside it:
// once per process, on stderr, through the package's logger, and nothing inside the range.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { SUPPORTED_NEXT, nextVersionProblem } from '../dist/next-version.js'

const run = promisify(execFile)
const pkgDir = fileURLToPath(new URL('..', import.meta.url))

describe('the supported Next.js range', () => {
  let root
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-next-version-'))
  })
  after(() => fs.rmSync(root, { recursive: true, force: true }))

  test('is the peerDependencies range of package.json', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))
    assert.equal(pkg.peerDependencies.next, SUPPORTED_NEXT)
    assert.equal(pkg.peerDependenciesMeta.next.optional, true)
  })

  test('holds every 16.x, canaries of a 16.x release included', () => {
    for (const v of [
      '16.0.0',
      '16.0.11',
      '16.3.8',
      '16.4.6',
      '16.5.0',
      '16.5.0-canary.38',
      '16.6.0-canary.1',
      '16.99.0',
    ])
      assert.equal(nextVersionProblem(v), undefined, v)
    for (const v of ['15.5.4', '16.0.0-canary.19', '17.0.0', '17.0.0-canary.0', 'latest'])
      assert.ok(nextVersionProblem(v), v)
    assert.equal(
      nextVersionProblem('15.5.4'),
      'Next.js 15.5.4 is outside the range fleetcache supports (>=16.0.0 <17.0.0)',
    )
  })

  // A server process as `next start` makes one: its working directory is the app, whose
  // node_modules holds `next`; both handler modules load.
  async function startServer(nextVersion) {
    const app = path.join(root, `app-${nextVersion ?? 'none'}`)
    if (nextVersion) {
      fs.mkdirSync(path.join(app, 'node_modules', 'next'), { recursive: true })
      fs.writeFileSync(
        path.join(app, 'node_modules', 'next', 'package.json'),
        JSON.stringify({ name: 'next', version: nextVersion }),
      )
    } else fs.mkdirSync(app, { recursive: true })
    const script = `require(${JSON.stringify(path.join(pkgDir, 'dist', 'use-cache.js'))}); require(${JSON.stringify(path.join(pkgDir, 'dist', 'incremental.js'))})`
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_|^NEXT_/.test(k)),
    )
    const r = await run(process.execPath, ['-e', script], { cwd: app, env, timeout: 30_000 })
    return r.stderr.split('\n').filter((l) => l.includes('outside the range'))
  }

  test('a server on a Next.js outside the range warns once, on stderr', async () => {
    const lines = await startServer('15.5.4')
    assert.deepEqual(lines, [
      '[fleetcache] Next.js 15.5.4 is outside the range fleetcache supports (>=16.0.0 <17.0.0): it is not tested with this release, and its cache handlers may behave differently (README, "Next.js compatibility")',
    ])
  })

  test('a server inside the range, or without Next.js, does not warn', async () => {
    assert.deepEqual(await startServer('16.0.0'), [])
    assert.deepEqual(await startServer('16.5.0-canary.38'), [])
    assert.deepEqual(await startServer(null), [])
  })
})
