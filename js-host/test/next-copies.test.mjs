// Which copy of Next's storages fleetcache reads (src/consumer.ts) when more than one `next` is
// installed: a monorepo with one at its root and another in the app, the server started from the
// root with the app's. Next 16.0 to 16.3 give each copy its own AsyncLocalStorage (16.4 and 16.5
// share one between copies of the same version through a global), so a copy that Next did not
// load never holds a store: read as "outside any render", every read, prerenders included, would
// get a stale entry as fresh while another request holds its lease.
//
// Each test runs a child node process with its own working directory (fleetcache resolved Next
// from there), over stand-in `next` packages holding the two storage modules at their real
// paths. No helpers.mjs: it loads a stand-in of its own and makes its temp dir the cwd.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const CONSUMER = fileURLToPath(new URL('../dist/consumer.js', import.meta.url))
const NEXT_RELEASE = fileURLToPath(new URL('../dist/next-release.js', import.meta.url))
const NEXT_VERSION = fileURLToPath(new URL('../dist/next-version.js', import.meta.url))
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-next-copies-'))
after(() => fs.rmSync(tmp, { recursive: true, force: true }))

/**
 * A stand-in `next` installed in `dir`: the two storage modules, each an AsyncLocalStorage of its
 * own (16.0 to 16.3), or with `shared` the one a global holds per name and version (16.4, 16.5).
 */
function installNext(dir, { version = '16.3.8', shared = false } = {}) {
  const next = path.join(dir, 'node_modules', 'next')
  const appRender = path.join(next, 'dist', 'server', 'app-render')
  fs.mkdirSync(appRender, { recursive: true })
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "private": true }\n')
  fs.writeFileSync(path.join(next, 'package.json'), JSON.stringify({ name: 'next', version }))
  const storage = (name) =>
    shared
      ? `(globalThis[Symbol.for('@next/${name}@${version}')] ??= new AsyncLocalStorage())`
      : 'new AsyncLocalStorage()'
  for (const [file, name] of [
    ['work-unit-async-storage', 'workUnitAsyncStorage'],
    ['work-async-storage', 'workAsyncStorage'],
  ]) {
    fs.writeFileSync(
      path.join(appRender, `${file}.external.js`),
      `'use strict'\nconst { AsyncLocalStorage } = require('node:async_hooks')\nexports.${name} = ${storage(file)}\n`,
    )
  }
  return next
}

/**
 * A monorepo: one `next` at its root, another in apps/web (of `appVersion` when given, else the
 * same release).
 */
function monorepo(name, options, appVersion) {
  const root = path.join(tmp, name)
  const app = path.join(root, 'apps', 'web')
  const appOptions = appVersion === undefined ? options : { ...options, version: appVersion }
  return { root, app, rootNext: installNext(root, options), appNext: installNext(app, appOptions) }
}

/**
 * Runs `body` in a child node process in `cwd`, with `c` (fleetcache's consumer module) and
 * `load(dir)` (the storages of the `next` installed in `dir`, loaded as Next loads them).
 * Returns what `body` returns, and the process's stderr (fleetcache's warnings).
 */
async function inChild(cwd, body) {
  const script = `
    const { createRequire } = require('node:module')
    const path = require('node:path')
    const c = require(${JSON.stringify(CONSUMER)})
    const load = (dir) => {
      const r = createRequire(path.join(dir, 'package.json'))
      return {
        units: r('next/dist/server/app-render/work-unit-async-storage.external').workUnitAsyncStorage,
        works: r('next/dist/server/app-render/work-async-storage.external').workAsyncStorage,
      }
    }
    const result = (() => { ${body} })()
    process.stdout.write(JSON.stringify(result))
  `
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['-e', script], { cwd })
  return { result: JSON.parse(stdout), stderr }
}

/** What the reads answer inside and outside the stores of the copy `a`. */
const READS = `
  const willCache = (units, type) => units.run({ type }, () => c.consumerWillServerCache())
  const render = {}
  return {
    prerender: willCache(a.units, 'prerender'),
    request: willCache(a.units, 'request'),
    outside: c.consumerWillServerCache(),
    render: a.works.run(render, () => c.currentRender() === render),
  }
`

const warnings = (stderr) => stderr.split('\n').filter((l) => l.startsWith('[fleetcache] '))

test("the storages of the copy Next loaded, not of the one the cwd's package.json resolves", async () => {
  const { root, app } = monorepo('cwd-resolves-another')
  // `next start apps/web` run from the root with the app's own `next`: nothing fleetcache does
  // follows the root's copy (its release neither, see below), so nothing to warn about.
  const { result, stderr } = await inChild(root, `const a = load(${JSON.stringify(app)}); ${READS}`)
  assert.deepEqual(result, { prerender: true, request: false, outside: false, render: true })
  assert.deepEqual(warnings(stderr), [])
})

test('two loaded copies with storages of their own: every read is taken to be stored', async () => {
  const { root, app, rootNext, appNext } = monorepo('two-loaded')
  const { result, stderr } = await inChild(
    root,
    `const a = load(${JSON.stringify(app)}); const b = load(${JSON.stringify(root)}); ${READS}`,
  )
  assert.deepEqual(result, { prerender: true, request: true, outside: true, render: false })
  const lines = warnings(stderr)
  assert.equal(lines.length, 1, stderr)
  assert.ok(lines[0].includes(appNext) && lines[0].includes(rootNext), lines[0])
})

test('two copies of this package of one version (two bundles) warn of the Next copies once', async () => {
  // Next's server and a route's trace may each load the package: two copies of one version in
  // one process, each with its own module state. The warning is once per process
  // (docs/troubleshooting.md), not once per copy.
  const { root, app, rootNext, appNext } = monorepo('two-bundles')
  const copy = path.join(tmp, 'second-bundle')
  fs.cpSync(path.dirname(CONSUMER), path.join(copy, 'dist'), { recursive: true })
  fs.copyFileSync(
    fileURLToPath(new URL('../package.json', import.meta.url)),
    path.join(copy, 'package.json'),
  )
  const second = path.join(copy, 'dist', 'consumer.js')
  const { result, stderr } = await inChild(
    root,
    `const c2 = require(${JSON.stringify(second)})
     load(${JSON.stringify(app)}); load(${JSON.stringify(root)})
     return [c.consumerWillServerCache(), c2.consumerWillServerCache()]`,
  )
  assert.deepEqual(result, [true, true], 'each copy takes every read to be stored')
  const lines = warnings(stderr)
  assert.equal(lines.length, 1, stderr)
  assert.ok(lines[0].includes(appNext) && lines[0].includes(rootNext), lines[0])
})

test('a copy of this package of another version warns of the Next copies itself', async () => {
  // Once per process and package version (docs/troubleshooting.md): the flag is keyed by the
  // version, so another version's copy, whose own state and log lines are its own, says it too.
  const { root, app, rootNext, appNext } = monorepo('two-versions')
  const copy = path.join(tmp, 'other-version')
  fs.cpSync(path.dirname(CONSUMER), path.join(copy, 'dist'), { recursive: true })
  const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  fs.writeFileSync(
    path.join(copy, 'package.json'),
    JSON.stringify({ ...pkg, version: `${pkg.version}-other` }),
  )
  const second = path.join(copy, 'dist', 'consumer.js')
  const { result, stderr } = await inChild(
    root,
    `const c2 = require(${JSON.stringify(second)})
     load(${JSON.stringify(app)}); load(${JSON.stringify(root)})
     return [c.consumerWillServerCache(), c2.consumerWillServerCache()]`,
  )
  assert.deepEqual(result, [true, true], 'each copy takes every read to be stored')
  const lines = warnings(stderr)
  assert.equal(lines.length, 2, stderr)
  for (const l of lines) assert.ok(l.includes(appNext) && l.includes(rootNext), l)
})

test('copies of one 16.4+ release share their storages: read as one, no warning', async () => {
  const { root, app } = monorepo('shared', { version: '16.4.6', shared: true })
  const { result, stderr } = await inChild(
    root,
    `const a = load(${JSON.stringify(app)}); load(${JSON.stringify(root)}); ${READS}`,
  )
  assert.deepEqual(result, { prerender: true, request: false, outside: false, render: true })
  assert.deepEqual(warnings(stderr), [])
})

test('a read before Next loaded its storages is taken to be stored, and pins nothing', async () => {
  const { app } = monorepo('read-before-load')
  const { result, stderr } = await inChild(
    app,
    `const before = [c.consumerWillServerCache(), c.currentRender() === undefined]
     const a = load(${JSON.stringify(app)})
     return { before, ...(() => { ${READS} })() }`,
  )
  assert.deepEqual(result, {
    before: [true, true],
    prerender: true,
    request: false,
    outside: false,
    render: true,
  })
  assert.deepEqual(warnings(stderr), [])
})

/**
 * Counts reads of a module cache entry at a storage's path in another `next`: a search of the
 * loaded modules reads it once; a read that does not search, not at all.
 */
const COUNT_SEARCHES = `
  let reads = 0
  Object.defineProperty(require.cache, '/elsewhere/node_modules/next/dist/server/app-render/work-unit-async-storage.external.js', {
    enumerable: true, configurable: true, get() { reads++; return undefined },
  })
`

test('a process where Next never loads its storages searches once, not on every read', async () => {
  // `fleetcache seed` in an app directory: `next` resolves, nothing loads it.
  const { app } = monorepo('never-loaded')
  const { result } = await inChild(
    app,
    `${COUNT_SEARCHES}
     const answers = new Set()
     for (let i = 0; i < 100; i++) answers.add(c.consumerWillServerCache())
     return { answers: [...answers], searches: reads }`,
  )
  assert.deepEqual(result, { answers: [true], searches: 1 })
})

test('a process where no `next` resolves searches once, and keeps that', async () => {
  // No `next` from this directory nor from fleetcache's (js-host has none installed).
  const dir = path.join(tmp, 'no-next')
  fs.mkdirSync(dir, { recursive: true })
  const { result } = await inChild(
    dir,
    `${COUNT_SEARCHES}
     const answers = new Set()
     for (let i = 0; i < 100; i++) answers.add(c.consumerWillServerCache())
     return { answers: [...answers], searches: reads }`,
  )
  assert.deepEqual(result, { answers: [true], searches: 1 })
})

test('the loaded modules are searched once, not on every read', async () => {
  const { app } = monorepo('searched-once')
  // A module entry at a storage's path that counts its reads: a search of the loaded modules
  // reads it, a read of a settled storage does not.
  const { result } = await inChild(
    app,
    `let reads = 0
     Object.defineProperty(require.cache, '/elsewhere/node_modules/next/dist/server/app-render/work-unit-async-storage.external.js', {
       enumerable: true, configurable: true, get() { reads++; return undefined },
     })
     const a = load(${JSON.stringify(app)})
     const first = a.units.run({ type: 'request' }, () => c.consumerWillServerCache())
     const afterFirst = reads
     for (let i = 0; i < 100; i++) a.units.run({ type: 'request' }, () => c.consumerWillServerCache())
     return { first, afterFirst, after: reads }`,
  )
  assert.deepEqual(result, { first: false, afterFirst: 1, after: 1 })
})

test("the release fleetcache runs with is the running copy's, not the cwd's", async () => {
  const { root, app } = monorepo('release-of-running', { version: '16.3.8' }, '16.4.6')
  // Next loads its storages at start, before it loads the handlers, whose runtime reads the
  // release.
  const { result, stderr } = await inChild(
    root,
    `load(${JSON.stringify(app)})
     const { detectNextRelease } = require(${JSON.stringify(NEXT_RELEASE)})
     const { runningNextVersion } = require(${JSON.stringify(NEXT_VERSION)})
     return {
       release: detectNextRelease()?.version,
       installed: runningNextVersion(),
       outside: c.consumerWillServerCache(),
     }`,
  )
  assert.deepEqual(result, { release: '16.4.6', installed: '16.4.6', outside: false })
  assert.deepEqual(warnings(stderr), [])
})

test('copies of two releases loaded: the release is the one the cwd resolves', async () => {
  const { root, app } = monorepo('release-of-two', { version: '16.3.8' }, '16.4.6')
  const { result } = await inChild(
    root,
    `load(${JSON.stringify(app)}); load(${JSON.stringify(root)})
     const { runningNextVersion } = require(${JSON.stringify(NEXT_VERSION)})
     return { installed: runningNextVersion() }`,
  )
  assert.deepEqual(result, { installed: '16.3.8' })
})
