// withFleetcache: what it sets, what it leaves alone.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { withFleetcache } from '../esm/config.mjs'

const require = createRequire(import.meta.url)

test('sets both cache interfaces by absolute path and keeps the rest of the config', () => {
  const user = {
    reactStrictMode: true,
    serverExternalPackages: ['sharp'],
    cacheHandlers: { custom: '/somewhere/else.js' },
    outputFileTracingIncludes: { '/api/*': ['./data/**'] },
    outputFileTracingExcludes: { '/*': ['./fixtures/**'] },
  }
  const out = withFleetcache(user, { projectDir: path.resolve('..') })
  assert.equal(out.reactStrictMode, true)
  assert.equal(out.cacheHandler, require.resolve('fleetcache/incremental'))
  assert.ok(path.isAbsolute(out.cacheHandler))
  assert.equal(out.cacheMaxMemorySize, 0)
  assert.equal(withFleetcache({ cacheMaxMemorySize: 1024 }).cacheMaxMemorySize, 1024)
  assert.equal(out.cacheHandlers.default, require.resolve('fleetcache/use-cache'))
  assert.equal(out.cacheHandlers.remote, out.cacheHandlers.default)
  assert.equal(out.cacheHandlers.custom, '/somewhere/else.js')
  assert.deepEqual(out.serverExternalPackages, ['sharp', 'fleetcache'])
  assert.deepEqual(out.outputFileTracingIncludes['/api/*'], ['./data/**'])
  // For output: 'standalone': the server module (the one file read with fs). No exclude: the
  // CLI's code (cli/) and its tools module are out of every trace's reach (decision 0011), and
  // the config's own excludes pass through as they were.
  assert.deepEqual(out.outputFileTracingIncludes['/*'], ['js-host/wasm/fleetcache_wasm_bg.wasm'])
  assert.deepEqual(out.outputFileTracingExcludes, { '/*': ['./fixtures/**'] })
  assert.equal(withFleetcache({}).outputFileTracingExcludes, undefined)
  // The caller's object is untouched, and applying twice changes nothing more.
  assert.deepEqual(user.serverExternalPackages, ['sharp'])
  assert.equal(user.cacheHandler, undefined)
  assert.deepEqual(withFleetcache(out, { projectDir: path.resolve('..') }), out)
})

test('options choose the interfaces and add named handlers', () => {
  const out = withFleetcache({}, { incremental: false, useCache: false, handlers: ['products'] })
  assert.equal(out.cacheHandler, undefined)
  assert.deepEqual(Object.keys(out.cacheHandlers), ['products'])
  assert.throws(() => withFleetcache({}, { handlers: ['private'] }), /private/)
  assert.throws(() => withFleetcache({}, { handlers: ['Bad'] }), /Bad/)
  // The handler refuses names past 32 characters (the core's rule, ERR_KEY_HANDLER_NAME at
  // server start): the config must refuse them at build already, not accept one the server
  // then cannot load.
  assert.throws(() => withFleetcache({}, { handlers: ['a'.repeat(33)] }), /1 to 32/)
  assert.ok(withFleetcache({}, { handlers: ['a'.repeat(32)] }).cacheHandlers['a'.repeat(32)])
})

test('the CommonJS entry is the same function', () => {
  assert.equal(require('fleetcache/config').withFleetcache, withFleetcache)
})

// Next 16.5.0 turns `experimental.durableUseCacheEntries` on by default. Its 'use cache' keys then
// carry a hash of the values of every environment variable the cached code's modules read
// (next/dist/server/use-cache/use-cache-wrapper.js, computeCacheKeyImplementationPart), so a
// per-instance variable (INSTANCE_NAME, HOSTNAME, ...) gives each instance its own keys and the
// fleet stops sharing. withFleetcache keeps the build-keyed default of 16.4 unless the app chose.
test('keys use cache by deployment on 16.4 and later unless the app chose durable entries', () => {
  for (const nextVersion of ['16.5.0', '16.4.0', '16.5.0-canary.38', '16.6.0-canary.1']) {
    const out = withFleetcache({ experimental: { other: 1 } }, { nextVersion })
    assert.equal(out.experimental.durableUseCacheEntries, false, nextVersion)
    assert.equal(out.experimental.other, 1, nextVersion)
  }
  // The app's own choice stands, either way.
  for (const chosen of [true, false]) {
    const user = { experimental: { durableUseCacheEntries: chosen } }
    const out = withFleetcache(user, { nextVersion: '16.5.0' })
    assert.equal(out.experimental.durableUseCacheEntries, chosen)
  }
  // Releases before 16.4 do not know the option (they would warn about it at every build and
  // start): the config is left without it, as is one that names no release.
  for (const nextVersion of ['16.3.8', '16.0.0', 'not-a-version']) {
    assert.equal(withFleetcache({}, { nextVersion }).experimental, undefined, nextVersion)
  }
  // The caller's experimental object is not modified.
  const user = { experimental: {} }
  withFleetcache(user, { nextVersion: '16.5.0' })
  assert.deepEqual(user.experimental, {})
})

test('leaves durable entries alone when no cacheHandlers name is routed through fleetcache', () => {
  const out = withFleetcache({}, { useCache: false, nextVersion: '16.5.0' })
  assert.equal(out.experimental, undefined)
})

/** What `fn` writes with console.warn, one entry per call, and its result. */
function warnings(fn) {
  const seen = []
  const original = console.warn
  console.warn = (...args) => seen.push(args.join(' '))
  try {
    return { result: fn(), seen }
  } finally {
    console.warn = original
  }
}

// A config that set its own handlers (its own modules configured in code, say) and then went
// through withFleetcache lost them without a word. They are still replaced (a throw would break
// builds that work today), but each replaced key is named once, with the value and how to keep it.
test("a handler of the config's own that withFleetcache replaces is named in one warning line each", () => {
  const useCache = require.resolve('fleetcache/use-cache')
  const incremental = require.resolve('fleetcache/incremental')
  const user = {
    cacheHandler: '/app/my-incremental.cjs',
    cacheHandlers: { default: '/app/my-use-cache.cjs', remote: useCache, products: '/app/p.cjs' },
  }
  const { result: out, seen } = warnings(() =>
    withFleetcache(user, { handlers: ['products'], nextVersion: '16.4.6' }),
  )
  // Replaced as before: the config's other cacheHandlers keys are kept, and remote held ours.
  assert.equal(out.cacheHandler, incremental)
  assert.deepEqual(out.cacheHandlers, { default: useCache, remote: useCache, products: useCache })
  assert.equal(seen.length, 3, seen.join('\n'))
  for (const line of seen) assert.ok(!line.includes('\n'), line)
  assert.equal(
    seen[0],
    "[fleetcache] withFleetcache replaced the config's cacheHandler ('/app/my-incremental.cjs') with fleetcache/incremental: to keep yours, pass { incremental: false } to withFleetcache, or set cacheHandler on the config it returns",
  )
  assert.equal(
    seen[1],
    "[fleetcache] withFleetcache replaced the config's cacheHandlers.default ('/app/my-use-cache.cjs') with fleetcache/use-cache: to keep yours, pass { useCache: false } to withFleetcache (it then sets neither default nor remote), or set cacheHandlers.default on the config it returns",
  )
  assert.equal(
    seen[2],
    "[fleetcache] withFleetcache replaced the config's cacheHandlers.products ('/app/p.cjs') with fleetcache/use-cache: to keep yours, leave 'products' out of withFleetcache's handlers option, or set cacheHandlers.products on the config it returns",
  )
  // Nothing replaced, nothing said: the package's own paths (a config wrapped twice), and the
  // keys an option tells withFleetcache to leave alone.
  assert.deepEqual(warnings(() => withFleetcache(out, { handlers: ['products'] })).seen, [])
  assert.deepEqual(
    warnings(() => withFleetcache(user, { incremental: false, useCache: false })).seen,
    [],
  )
  assert.deepEqual(warnings(() => withFleetcache({ cacheHandlers: { x: '/x.cjs' } })).seen, [])
})

// The package's own handler, spelled as Next accepts it (a `file://` URL, a path relative to
// the project directory: `formatDynamicImportPath`), or its ESM entry (`import.meta.resolve`
// in a next.config.mjs wired by hand, which loads the same class as the CommonJS entry), is
// not the config's own handler: the warning told such a config to pass `{ useCache: false }`
// to keep what withFleetcache sets anyway.
test("the package's own handlers in any spelling Next accepts are not named as replaced", () => {
  const packageDir = path.dirname(require.resolve('fleetcache/package.json'))
  const projectDir = path.dirname(packageDir)
  const own = {
    cacheHandler: import.meta.resolve('fleetcache/incremental'),
    cacheHandlers: {
      default: import.meta.resolve('fleetcache/use-cache'),
      remote: new URL(import.meta.resolve('fleetcache/use-cache')).pathname,
      products: path.relative(projectDir, require.resolve('fleetcache/use-cache')),
      extra: `./${path.basename(packageDir)}/esm/use-cache.mjs`,
    },
  }
  assert.ok(own.cacheHandler.startsWith('file://') && own.cacheHandler.endsWith('.mjs'))
  const options = { handlers: ['products', 'extra'], projectDir, nextVersion: '16.4.6' }
  assert.deepEqual(warnings(() => withFleetcache(own, options)).seen, [])
  // No handler (a config that sets the key only on some condition): nothing to keep, and no
  // reason to fail the config's evaluation.
  const none = { cacheHandler: null, cacheHandlers: { default: '', remote: undefined } }
  assert.deepEqual(warnings(() => withFleetcache(none, options)).seen, [])
  // Another module of the same directory is still named.
  const other = { cacheHandlers: { default: `./${path.basename(packageDir)}/esm/index.mjs` } }
  assert.equal(warnings(() => withFleetcache(other, options)).seen.length, 1)
})

// ---- the app directory, from the config file that called withFleetcache --------------------
// `next start /srv/app` and `next build /srv/app` do not change into the app directory: Next
// evaluates `<app>/next.config.*` in a process whose working directory is another one (a
// systemd unit without WorkingDirectory, a script at a monorepo's root). The handlers then
// looked for `.next/BUILD_ID` under that directory and started in the namespace
// `fleetcache:default`, shared by every release; the tracing globs, relative to the working
// directory, carried the CLI into a standalone output.

const packageDir = fs.realpathSync(fileURLToPath(new URL('..', import.meta.url)))
const esmEntry = pathToFileURL(fileURLToPath(new URL('../esm/config.mjs', import.meta.url))).href
const cjsEntry = fileURLToPath(new URL('../dist/next-config.js', import.meta.url))

const trees = []
after(() => {
  for (const root of trees) fs.rmSync(root, { recursive: true, force: true })
})

/** A temp directory (its real path: the loaders name modules by it), with `files` written. */
function tree(files) {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-config-dir-')))
  trees.push(root)
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true })
    fs.writeFileSync(path.join(root, name), text)
  }
  return root
}

// Loads a config module as Next's loadConfig does (next/dist/server/config.js, 16.0.0 to
// 16.5.0): `import()` of its file URL, or for a next.config.ts, its code compiled to CommonJS
// and compiled as the module `<dir>/next.config.compiled.js`, `dir` being the directory Next
// was given (next/dist/build/next-config-ts/transpile-config.js, `requireFromString`). A
// config that exports a function is called with the phase. In a child process whose working
// directory is `cwd`; returns FLEETCACHE_DIST_DIR as the config left it and the '/*' globs.
function evaluate({ file, cwd, env = {}, compiledIn }) {
  const driver = `
    import Module from 'node:module'
    import path from 'node:path'
    import fs from 'node:fs'
    import { pathToFileURL } from 'node:url'
    const [file, compiledIn] = process.argv.slice(1)
    let config
    if (compiledIn) {
      const filename = path.resolve(compiledIn, 'next.config.compiled.js')
      const m = new Module(filename)
      m.paths = Module._nodeModulePaths(path.dirname(filename))
      m._compile(fs.readFileSync(file, 'utf8'), filename)
      config = m.exports.default ?? m.exports
    } else {
      config = (await import(pathToFileURL(file).href)).default
    }
    if (typeof config === 'function') config = await config('phase-production-server', {})
    process.stdout.write(JSON.stringify({
      distDir: process.env.FLEETCACHE_DIST_DIR ?? null,
      includes: config.outputFileTracingIncludes['/*'],
      excludes: config.outputFileTracingExcludes ?? null,
    }))
  `
  const childEnv = { ...process.env, ...env }
  if (!('FLEETCACHE_DIST_DIR' in env)) delete childEnv.FLEETCACHE_DIST_DIR
  const out = execFileSync(
    process.execPath,
    ['--input-type=module', '-e', driver, file, compiledIn ?? ''],
    { cwd, env: childEnv, encoding: 'utf8' },
  )
  return JSON.parse(out)
}

/** The '/*' globs withFleetcache writes for the project directory `dir` (it writes no exclude). */
function globsFor(dir) {
  const inPackage = (sub) =>
    path.relative(dir, path.join(packageDir, sub)).split(path.sep).join('/')
  return {
    includes: [inPackage('wasm/fleetcache_wasm_bg.wasm')],
    excludes: null,
  }
}

const mjsConfig = (body) =>
  `import { withFleetcache } from ${JSON.stringify(esmEntry)}\nexport default ${body}\n`

test('a next.config evaluated from another directory names its own directory: dist dir and tracing globs', () => {
  const root = tree({
    'apps/web/next.config.mjs': mjsConfig("withFleetcache({ distDir: 'out/build' })"),
    'plain/next.config.js': `const { withFleetcache } = require(${JSON.stringify(cjsEntry)})\nmodule.exports = withFleetcache({})\n`,
    'elsewhere/.keep': '',
  })
  const app = path.join(root, 'apps', 'web')
  const elsewhere = path.join(root, 'elsewhere')
  // ESM, a custom distDir: absolute, under the app, whatever the working directory.
  assert.deepEqual(evaluate({ file: path.join(app, 'next.config.mjs'), cwd: elsewhere }), {
    distDir: path.join(app, 'out', 'build'),
    ...globsFor(app),
  })
  // CommonJS, Next's default distDir, started from the filesystem's root.
  const plain = path.join(root, 'plain')
  assert.deepEqual(evaluate({ file: path.join(plain, 'next.config.js'), cwd: '/' }), {
    distDir: path.join(plain, '.next'),
    ...globsFor(plain),
  })
})

test("a next.config.ts, compiled under the project directory's name, names that directory", () => {
  // Next compiles a next.config.ts to `<the directory it was given>/next.config.compiled.js`:
  // that name is the project directory even where the config file is found above it.
  const root = tree({
    'apps/web/next.config.ts': `const { withFleetcache } = require(${JSON.stringify(cjsEntry)})\nexports.default = withFleetcache({})\n`,
    'apps/web/sub/.keep': '',
    'elsewhere/.keep': '',
  })
  const app = path.join(root, 'apps', 'web')
  for (const cwd of [path.join(root, 'elsewhere'), path.join(app, 'sub')]) {
    assert.deepEqual(
      evaluate({ file: path.join(app, 'next.config.ts'), cwd, compiledIn: app }),
      { distDir: path.join(app, '.next'), ...globsFor(app) },
      cwd,
    )
  }
})

test('a config function, sync or after an await, a helper it calls and a config it requires are found the same way', () => {
  const root = tree({
    'shared/with-cache.mjs': `import { withFleetcache } from ${JSON.stringify(esmEntry)}\nexport const make = (c) => withFleetcache(c)\n`,
    'shared/next.config.js': `const { withFleetcache } = require(${JSON.stringify(cjsEntry)})\nmodule.exports = withFleetcache({})\n`,
    'apps/web/next.config.mjs': `import { make } from '../../shared/with-cache.mjs'\nexport default async () => { await null; return make({}) }\n`,
    'apps/fn/next.config.mjs': mjsConfig('(phase) => withFleetcache({})'),
    // The config Next loads is the outermost config module on the stack.
    'apps/base/next.config.js': `module.exports = require('../../shared/next.config.js')\n`,
    'elsewhere/.keep': '',
  })
  const elsewhere = path.join(root, 'elsewhere')
  for (const [dir, name] of [
    ['web', 'next.config.mjs'],
    ['fn', 'next.config.mjs'],
    ['base', 'next.config.js'],
  ]) {
    const app = path.join(root, 'apps', dir)
    assert.deepEqual(
      evaluate({ file: path.join(app, name), cwd: elsewhere }),
      { distDir: path.join(app, '.next'), ...globsFor(app) },
      dir,
    )
  }
})

test('without a config file on the stack, or from within its directory, the working directory stands', () => {
  const root = tree({
    'shared/config.mjs': mjsConfig("withFleetcache({ distDir: 'out' })"),
    'apps/web/next.config.mjs': mjsConfig('withFleetcache({})'),
    'apps/web/custom/next.config.mjs': mjsConfig("withFleetcache({ distDir: 'out' })"),
    'apps/web/sub/.keep': '',
    'elsewhere/.keep': '',
  })
  const app = path.join(root, 'apps', 'web')
  const elsewhere = path.join(root, 'elsewhere')
  // A module of another name (a helper evaluated by itself): as before, the working directory.
  assert.deepEqual(evaluate({ file: path.join(root, 'shared', 'config.mjs'), cwd: elsewhere }), {
    distDir: 'out',
    ...globsFor(elsewhere),
  })
  // Started in the app directory, or below the config's (Next finds a config in its project
  // directory or above it: `next start` there has its project directory as working directory).
  assert.deepEqual(evaluate({ file: path.join(app, 'next.config.mjs'), cwd: app }), {
    distDir: null,
    ...globsFor(app),
  })
  const sub = path.join(app, 'sub')
  assert.deepEqual(evaluate({ file: path.join(app, 'next.config.mjs'), cwd: sub }), {
    distDir: null,
    ...globsFor(sub),
  })
  const custom = path.join(app, 'custom')
  assert.deepEqual(evaluate({ file: path.join(custom, 'next.config.mjs'), cwd: custom }), {
    distDir: 'out',
    ...globsFor(custom),
  })
})

test('a FLEETCACHE_DIST_DIR of the environment and an explicit projectDir stand', () => {
  const root = tree({
    'apps/web/next.config.mjs': mjsConfig(
      "withFleetcache({ distDir: 'out' }, { projectDir: process.env.PROJECT_DIR })",
    ),
    'elsewhere/.keep': '',
  })
  const app = path.join(root, 'apps', 'web')
  const elsewhere = path.join(root, 'elsewhere')
  const file = path.join(app, 'next.config.mjs')
  assert.deepEqual(
    evaluate({ file, cwd: elsewhere, env: { FLEETCACHE_DIST_DIR: 'mine', PROJECT_DIR: root } }),
    { distDir: 'mine', ...globsFor(root) },
  )
  // The explicit projectDir is the tracing globs' base; the dist dir is still the config's.
  assert.deepEqual(evaluate({ file, cwd: elsewhere, env: { PROJECT_DIR: root } }), {
    distDir: path.join(app, 'out'),
    ...globsFor(root),
  })
})

// The module loaders name a module by its real path: a next.config that is a symlink (one config
// shared by a monorepo's apps) is on the stack under its target's directory, which is not the
// app's. From the app directory, a plain `next start`, the working directory is the app's.
test('a next.config that is a symlink to a shared file, evaluated in the app directory, leaves the working directory', () => {
  const root = tree({
    'shared/next.config.mjs': mjsConfig('withFleetcache({})'),
    'shared/custom.mjs': mjsConfig("withFleetcache({ distDir: 'out' })"),
    'apps/web/.keep': '',
    'apps/custom/.keep': '',
  })
  const app = path.join(root, 'apps', 'web')
  fs.symlinkSync(path.join(root, 'shared', 'next.config.mjs'), path.join(app, 'next.config.mjs'))
  assert.deepEqual(evaluate({ file: path.join(app, 'next.config.mjs'), cwd: app }), {
    distDir: null,
    ...globsFor(app),
  })
  const custom = path.join(root, 'apps', 'custom')
  fs.symlinkSync(path.join(root, 'shared', 'custom.mjs'), path.join(custom, 'next.config.mjs'))
  assert.deepEqual(evaluate({ file: path.join(custom, 'next.config.mjs'), cwd: custom }), {
    distDir: 'out',
    ...globsFor(custom),
  })
})

// An ES module's imports are evaluated before it, not below it on the stack: a shared config
// module that is itself named next.config.* and calls withFleetcache at its top level is the
// only config frame there, and its directory is not the app's.
test("a shared next.config.mjs the app's config re-exports, evaluated in the app directory, leaves the working directory", () => {
  const root = tree({
    'packages/config/next.config.mjs': mjsConfig('withFleetcache({})'),
    'apps/web/next.config.mjs': "export { default } from '../../packages/config/next.config.mjs'\n",
  })
  const app = path.join(root, 'apps', 'web')
  assert.deepEqual(evaluate({ file: path.join(app, 'next.config.mjs'), cwd: app }), {
    distDir: null,
    ...globsFor(app),
  })
})

// withFleetcache reads the call stack through Error.prepareStackTrace and puts back what was
// there. One defined as an accessor (a tool that wraps whatever is assigned to it) kept the
// function assigned through its setter: every later error's stack was an array of call sites.
test('an Error.prepareStackTrace accessor is given back its own function', () => {
  const before = Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace')
  let stored = (_e, sites) => `stack of ${sites.length} frames`
  const own = stored
  Object.defineProperty(Error, 'prepareStackTrace', {
    configurable: true,
    get: () => stored,
    set: (v) => {
      stored = v
    },
  })
  try {
    withFleetcache({})
    assert.equal(stored, own)
    assert.match(new Error('x').stack, /^stack of \d+ frames$/)
  } finally {
    if (before === undefined) delete Error.prepareStackTrace
    else Object.defineProperty(Error, 'prepareStackTrace', before)
  }
})
