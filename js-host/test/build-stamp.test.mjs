// When the benchmarks' builds made without fleetcache are made again (tests/support/fleet.mjs:
// buildStaleReason, and prepareDefaultCache's .next-default/ through defaultCacheBuildState):
// on a fake app in a temp dir, its files' mtimes set explicitly, no build run.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

import {
  DEFAULT_CACHE_DIST_DIR,
  buildStaleReason,
  defaultCacheBuildState,
  dropBuildStamp,
  writeBuildStamp,
} from '../../tests/support/fleet.mjs'

const T0 = new Date('2026-12-01T00:00:00Z')
const later = (s) => new Date(T0.getTime() + s * 1000)

// An app with one source and Next `next` installed, built (BUILD_ID newer than the source).
function fakeApp(next) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-build-stamp-'))
  const write = (rel, text, at) => {
    const p = path.join(dir, rel)
    fs.mkdirSync(path.dirname(p), { recursive: true })
    fs.writeFileSync(p, text)
    fs.utimesSync(p, at, at)
  }
  write('app/page.tsx', 'export default function Page() {}\n', T0)
  write('node_modules/next/package.json', JSON.stringify({ name: 'next', version: next }), T0)
  write(`${DEFAULT_CACHE_DIST_DIR}/BUILD_ID`, 'b1', later(10))
  return { dir, write }
}

test('the default-cache build is made again after the Next release changes', (t) => {
  const { dir, write } = fakeApp('16.4.6')
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const built = defaultCacheBuildState(dir)
  assert.match(built.reason, /fleetcache-build\.json: what it was built from is unknown/)
  writeBuildStamp(built.stampFile, built.inputs)
  assert.equal(defaultCacheBuildState(dir).reason, null, 'current once stamped')

  // npm ci to another release: no source of the app changed, its build is older than none.
  write('node_modules/next/package.json', JSON.stringify({ name: 'next', version: '16.5.0' }), T0)
  assert.equal(defaultCacheBuildState(dir).reason, 'next 16.4.6 then, 16.5.0 now')
})

test('the default-cache build is made again after a source changed, or without a build', (t) => {
  const { dir, write } = fakeApp('16.5.0')
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const built = defaultCacheBuildState(dir)
  writeBuildStamp(built.stampFile, built.inputs)
  write('app/page.tsx', 'export default function Page() { return null }\n', later(20))
  assert.equal(defaultCacheBuildState(dir).reason, 'app/page.tsx changed after the last build')

  fs.rmSync(path.join(dir, DEFAULT_CACHE_DIST_DIR, 'BUILD_ID'))
  assert.equal(defaultCacheBuildState(dir).reason, `no ${DEFAULT_CACHE_DIST_DIR}/BUILD_ID`)
})

test('a dropped stamp (a build begun and not finished) leaves the build stale', (t) => {
  const { dir } = fakeApp('16.5.0')
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const built = defaultCacheBuildState(dir)
  writeBuildStamp(built.stampFile, built.inputs)
  dropBuildStamp(built.stampFile)
  assert.match(defaultCacheBuildState(dir).reason, /what it was built from is unknown/)
})

test('nested inputs (the floor build: its handlers by hash) are compared key by key', (t) => {
  const { dir } = fakeApp('16.5.0')
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const stampFile = path.join(dir, 'node_modules', '.stamp.json')
  const inputs = (sha) => ({ next: '16.5.0', handlers: { 'a.cjs': 'aa', 'b.cjs': sha } })
  const reason = (sha) =>
    buildStaleReason({ dir, distDir: DEFAULT_CACHE_DIST_DIR, stampFile, inputs: inputs(sha) })
  writeBuildStamp(stampFile, inputs('0123456789abcdef0123456789abcdef'))
  assert.equal(reason('0123456789abcdef0123456789abcdef'), null)
  assert.equal(
    reason('fedcba9876543210fedcba9876543210'),
    'handlers.b.cjs 0123456789ab… then, fedcba987654… now',
  )
})
