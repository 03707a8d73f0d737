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
const { durableUseCacheEntries, resolveOptions, useCacheKeyEnvVars } = require('../dist/config.js')
const wasm = require('../wasm/node/fleetcache_wasm.js')
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

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

/**
 * A fake app: node_modules/next at `version`, and `.next/required-server-files.json`; built by
 * webpack when `bundler` says so (Next's server runtime chunk `server/webpack-runtime.js`, which
 * `next build --webpack` writes and Turbopack never does), else by Turbopack (its marker
 * file and `server-reference-manifest.json` with `manifest`, when given).
 */
function fakeApp(
  version,
  experimental,
  { bundler = 'turbopack', manifest, distDir = '.next' } = {},
) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-next-release-'))
  fs.mkdirSync(path.join(dir, 'node_modules', 'next'), { recursive: true })
  fs.writeFileSync(
    path.join(dir, 'node_modules', 'next', 'package.json'),
    JSON.stringify({ name: 'next', version }),
  )
  fs.writeFileSync(path.join(dir, 'package.json'), '{}')
  fs.mkdirSync(path.join(dir, distDir))
  fs.writeFileSync(path.join(dir, distDir, 'BUILD_ID'), 'build-1')
  fs.writeFileSync(
    path.join(dir, distDir, 'required-server-files.json'),
    JSON.stringify({ version: 1, config: { experimental } }),
  )
  fs.mkdirSync(path.join(dir, distDir, 'server'))
  if (bundler === 'webpack') {
    fs.writeFileSync(path.join(dir, distDir, 'server', 'webpack-runtime.js'), '')
  } else {
    fs.writeFileSync(path.join(dir, distDir, 'turbopack'), '')
  }
  if (manifest !== undefined) {
    fs.writeFileSync(
      path.join(dir, distDir, 'server', 'server-reference-manifest.json'),
      JSON.stringify(manifest),
    )
  }
  return dir
}

// The shape Turbopack writes on 16.5.0 (`next build` of examples/next-app): per function, per
// page, a durability key into the function's lists of variables.
const turbopackManifest = {
  node: {
    fn1: {
      workers: { 'app/a/page': { moduleId: 1, async: false, durability: 'd1' } },
      durability: {
        d1: {
          codeHash: 'c1',
          runtimeEnvVarsRead: ['INSTANCE_NAME', 'ORIGIN_URL'],
          runtimeEnvVarsExistence: ['NEXT_PRIVATE_DEBUG_CACHE'],
        },
      },
    },
    fn2: {
      workers: { 'app/b/page': { moduleId: 2, async: false, durability: 'd2' } },
      durability: {
        d2: {
          codeHash: 'c2',
          runtimeEnvVarsRead: ['API_URL', 'ORIGIN_URL'],
          runtimeEnvVarsExistence: [],
        },
      },
    },
  },
  edge: {},
  encryptionKey: 'k',
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

// Next applies the setting to Turbopack builds only (work-store.js: `!!process.env.TURBOPACK &&
// ...`, inlined in the route runtime the build's bundler selects): a webpack build keys by
// build id whatever its config says.
test('durableUseCacheEntries is off for a webpack build, whatever its config says', () => {
  const webpack = fakeApp('16.5.0', { durableUseCacheEntries: true }, { bundler: 'webpack' })
  const turbopack = fakeApp('16.5.0', { durableUseCacheEntries: true })
  try {
    assert.equal(durableUseCacheEntries({}, webpack), false)
    assert.equal(durableUseCacheEntries({}, turbopack), true)
    // A standalone server: the config from its environment, the build from its distDir.
    const standalone = JSON.stringify({ experimental: { durableUseCacheEntries: true } })
    const env = { __NEXT_PRIVATE_STANDALONE_CONFIG: standalone }
    assert.equal(durableUseCacheEntries(env, webpack), false)
    assert.equal(durableUseCacheEntries(env, turbopack), true)
    // The marker alone does not decide: a standalone copy of a Turbopack build lacks it.
    fs.rmSync(path.join(turbopack, '.next', 'turbopack'))
    assert.equal(durableUseCacheEntries({}, turbopack), true)
  } finally {
    fs.rmSync(webpack, { recursive: true, force: true })
    fs.rmSync(turbopack, { recursive: true, force: true })
  }
})

test('the variables Next puts into durable keys are read from the server reference manifest', () => {
  const app = fakeApp('16.5.0', { durableUseCacheEntries: true }, { manifest: turbopackManifest })
  const bare = fakeApp('16.5.0', { durableUseCacheEntries: true })
  try {
    assert.deepEqual(useCacheKeyEnvVars({}, app), {
      read: ['API_URL', 'INSTANCE_NAME', 'ORIGIN_URL'],
      existence: ['NEXT_PRIVATE_DEBUG_CACHE'],
    })
    assert.deepEqual(useCacheKeyEnvVars({}, bare), { read: [], existence: [] }, 'no manifest')
  } finally {
    fs.rmSync(app, { recursive: true, force: true })
    fs.rmSync(bare, { recursive: true, force: true })
  }
})

/**
 * What a server process started in the fake app `dir` logs when it creates a handler: its
 * information (stdout) and its warnings (stderr).
 */
function startStreams(dir, options = { debug: true }) {
  const script = `
    const { createUseCacheHandler } = require(${JSON.stringify(require.resolve('../dist/index.js'))})
    createUseCacheHandler(${JSON.stringify(options)})
  `
  const out = spawnSync(process.execPath, ['-e', script], {
    cwd: dir,
    encoding: 'utf8',
    env: { PATH: process.env.PATH },
  })
  assert.equal(out.status, 0, out.stderr)
  return { stdout: out.stdout, stderr: out.stderr }
}

/** Both streams of `startStreams`, as one text. */
function startLog(dir, options) {
  const { stdout, stderr } = startStreams(dir, options)
  return `${stdout}${stderr}`
}

test("with durableUseCacheEntries, 'use cache' entries are kept under the Next release", () => {
  // The server process of each fake app says where its entries go (its start-up log line).
  const namespaceLine = (dir) =>
    startLog(dir)
      .split('\n')
      .find((l) => l.includes('namespace')) ?? ''
  const durable = fakeApp('16.4.6', { durableUseCacheEntries: true })
  const plain = fakeApp('16.4.6', {})
  const old = fakeApp('16.3.8', { durableUseCacheEntries: true })
  const webpack = fakeApp('16.5.0', { durableUseCacheEntries: true }, { bundler: 'webpack' })
  try {
    assert.match(
      namespaceLine(durable),
      /namespace fleetcache:build-1 .*'use cache' entries under fleetcache:next-16\.4\.6/,
    )
    assert.doesNotMatch(namespaceLine(plain), /'use cache' entries under/)
    // Before 16.4 the setting does not exist: Next keys by build, and so does fleetcache.
    assert.doesNotMatch(namespaceLine(old), /'use cache' entries under/)
    // A webpack build is keyed by build id: its entries stay under the deployment.
    assert.doesNotMatch(namespaceLine(webpack), /'use cache' entries under/)
  } finally {
    for (const d of [durable, plain, old, webpack]) fs.rmSync(d, { recursive: true, force: true })
  }
})

test('with durable entries on, the start-up log names the variables Next puts into the keys', () => {
  const line = (log) => log.split('\n').filter((l) => l.includes('environment variables'))
  const durable = fakeApp(
    '16.5.0',
    { durableUseCacheEntries: true },
    { manifest: turbopackManifest },
  )
  const off = fakeApp('16.5.0', { durableUseCacheEntries: false }, { manifest: turbopackManifest })
  const webpack = fakeApp(
    '16.5.0',
    { durableUseCacheEntries: true },
    { bundler: 'webpack', manifest: turbopackManifest },
  )
  try {
    const { stdout, stderr } = startStreams(durable)
    const lines = line(`${stdout}${stderr}`)
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0], /values of API_URL, INSTANCE_NAME, ORIGIN_URL/)
    assert.match(lines[0], /whether NEXT_PRIVATE_DEBUG_CACHE is set/)
    // A warning (stderr), since it silently splits the fleet's 'use cache' entries when one of
    // these differs per instance, and it names the fix, which withFleetcache applies.
    assert.deepEqual(line(stderr), lines, 'logged as a warning, on stderr')
    assert.match(lines[0], /set experimental\.durableUseCacheEntries: false in next\.config/)
    assert.match(lines[0], /withFleetcache/)
    assert.deepEqual(line(startLog(off)), [])
    assert.deepEqual(line(startLog(webpack)), [])
  } finally {
    for (const d of [durable, off, webpack]) fs.rmSync(d, { recursive: true, force: true })
  }
})

// An app that chose durable entries and knows some variables are the same on every instance
// says so (`uniformEnvVars`, `FLEETCACHE_UNIFORM_ENV_VARS`): the warning names only the others,
// and none when it names them all; a new variable in a cached module brings it back.
test('variables declared the same on every instance are left out of the warning', () => {
  const line = (log) => log.split('\n').filter((l) => l.includes('environment variables'))
  const app = fakeApp('16.5.0', { durableUseCacheEntries: true }, { manifest: turbopackManifest })
  try {
    const some = line(startLog(app, { uniformEnvVars: ['API_URL', 'NEXT_PRIVATE_DEBUG_CACHE'] }))
    assert.equal(some.length, 1, some.join('\n'))
    assert.match(some[0], /include the values of INSTANCE_NAME, ORIGIN_URL \(/)
    assert.doesNotMatch(some[0], /API_URL|NEXT_PRIVATE_DEBUG_CACHE/)
    assert.match(some[0], /list them in FLEETCACHE_UNIFORM_ENV_VARS \(option uniformEnvVars\)/)
    const all = ['API_URL', 'INSTANCE_NAME', 'NEXT_PRIVATE_DEBUG_CACHE', 'ORIGIN_URL']
    assert.deepEqual(line(startLog(app, { uniformEnvVars: all })), [])
    // The handler modules read the environment: the same list, comma-separated.
    const fromModule = (value) => {
      const script = `require(${JSON.stringify(require.resolve('../dist/use-cache.js'))})`
      const out = spawnSync(process.execPath, ['-e', script], {
        cwd: app,
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH,
          ...(value === undefined ? {} : { FLEETCACHE_UNIFORM_ENV_VARS: value }),
        },
      })
      assert.equal(out.status, 0, out.stderr)
      return line(out.stderr)
    }
    assert.equal(fromModule(undefined).length, 1, 'the module warns as the handler does')
    assert.deepEqual(fromModule(' API_URL,INSTANCE_NAME , NEXT_PRIVATE_DEBUG_CACHE,ORIGIN_URL'), [])
    const rest = fromModule('API_URL,INSTANCE_NAME,NEXT_PRIVATE_DEBUG_CACHE')
    assert.equal(rest.length, 1, rest.join('\n'))
    assert.match(rest[0], /include the values of ORIGIN_URL \(/)
    assert.throws(
      () => resolveOptions({ uniformEnvVars: 'API_URL' }),
      /uniformEnvVars: must be an array of environment variable names/,
    )
  } finally {
    fs.rmSync(app, { recursive: true, force: true })
  }
})

// Turbopack lists every variable read in a cached function's module graph, Next's own modules
// included: `__NEXT_DEV_SERVER` (request/params.js and others read it), which only `next dev`
// (and a custom server's `next({ dev: true })`) sets. A production server, the only one that
// warns, never has it, so it is the same on every instance: naming it, as a variable to
// check or to vouch for, asked the user for something there is nothing to do about.
test("the warning leaves out the variables only Next's development server sets", () => {
  const line = (log) => log.split('\n').filter((l) => l.includes('environment variables'))
  const withVars = (read, existence) =>
    fakeApp(
      '16.5.0',
      { durableUseCacheEntries: true },
      {
        manifest: {
          node: {
            fn: {
              durability: { d: { runtimeEnvVarsRead: read, runtimeEnvVarsExistence: existence } },
            },
          },
        },
      },
    )
  const mixed = withVars(['INSTANCE_NAME'], ['__NEXT_DEV_SERVER', 'NEXT_PRIVATE_WORKER', 'FLAG'])
  const nextOnly = withVars([], ['__NEXT_DEV_SERVER', 'NEXT_PRIVATE_WORKER'])
  try {
    const lines = line(startLog(mixed))
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0], /include the values of INSTANCE_NAME and whether FLAG is set \(/)
    assert.doesNotMatch(lines[0], /__NEXT_DEV_SERVER|NEXT_PRIVATE_WORKER/)
    assert.deepEqual(line(startLog(nextOnly)), [], 'nothing left to name')
  } finally {
    for (const d of [mixed, nextOnly]) fs.rmSync(d, { recursive: true, force: true })
  }
})

// A server process may open several runtimes (the handler modules from the environment, a
// handler configured in code): the warning is for the process, once.
test('the warning is printed once per process, however many runtimes it opens', () => {
  const app = fakeApp('16.5.0', { durableUseCacheEntries: true }, { manifest: turbopackManifest })
  try {
    const script = `
      const { createUseCacheHandler } = require(${JSON.stringify(require.resolve('../dist/index.js'))})
      createUseCacheHandler({ prefix: 'one' })
      createUseCacheHandler({ prefix: 'two' })
    `
    const out = spawnSync(process.execPath, ['-e', script], {
      cwd: app,
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    })
    assert.equal(out.status, 0, out.stderr)
    const namespaces = out.stdout.split('\n').filter((l) => l.includes('] namespace '))
    assert.equal(namespaces.length, 2, 'two runtimes were opened')
    const warnings = out.stderr.split('\n').filter((l) => l.includes('environment variables'))
    assert.equal(warnings.length, 1, warnings.join('\n'))
  } finally {
    fs.rmSync(app, { recursive: true, force: true })
  }
})

// Next tells a handler nothing of a custom distDir; withFleetcache passes it on from the config
// Next evaluates in the server process, so the build id and the bundler are found there.
test('a build in a custom distDir is found when the config went through withFleetcache', () => {
  // As `next start` runs: the app's config evaluated, then the handler module loaded, which
  // reads its settings from the environment.
  const namespaceLine = (config) => {
    const script = `
      ${config === undefined ? '' : `require(${JSON.stringify(require.resolve('../dist/next-config.js'))}).withFleetcache(${JSON.stringify(config)})`}
      require(${JSON.stringify(require.resolve('../dist/use-cache.js'))})
    `
    const out = spawnSync(process.execPath, ['-e', script], {
      cwd: app,
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    })
    assert.equal(out.status, 0, out.stderr)
    return `${out.stdout}${out.stderr}`.split('\n').find((l) => l.includes('namespace')) ?? ''
  }
  const app = fakeApp('16.5.0', { durableUseCacheEntries: true }, { distDir: 'build' })
  try {
    assert.match(namespaceLine(undefined), /deployment from none found/)
    const line = namespaceLine({ distDir: 'build' })
    assert.ok(
      line.includes(`deployment from ${path.join(fs.realpathSync(app), 'build', 'BUILD_ID')})`),
      line,
    )
    assert.match(line, /'use cache' entries under fleetcache:next-16\.5\.0/, 'the config was read')
  } finally {
    fs.rmSync(app, { recursive: true, force: true })
  }
})

// Options given in code replace the environment, but a handler given no deployment id must not
// put every build under one namespace (`default`): a rolling deploy would serve one build's
// entries to the other. It takes the running server's, as the handler modules do.
// The line said `deployment from ./.next/BUILD_ID` under a standalone server.js, whose working
// directory is the standalone tree it changed to (not where the user runs it from), and a
// relative path under `next start` too: it names the file read, as an absolute path.
test('the namespace line names the BUILD_ID file it read, resolved', () => {
  const app = fakeApp('16.4.6', {}, { distDir: 'build' })
  fs.mkdirSync(path.join(app, '.next'))
  fs.writeFileSync(path.join(app, '.next', 'BUILD_ID'), 'build-2')
  const real = fs.realpathSync(app)
  const namespaceLine = (env) => {
    const script = `require(${JSON.stringify(require.resolve('../dist/use-cache.js'))})`
    const out = spawnSync(process.execPath, ['-e', script], {
      cwd: app,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, ...env },
    })
    assert.equal(out.status, 0, out.stderr)
    return out.stdout.split('\n').find((l) => l.includes('] namespace ')) ?? ''
  }
  const from = (dir) =>
    new RegExp(`\\(deployment from ${escape(path.join(real, dir, 'BUILD_ID'))}\\)`)
  try {
    assert.match(namespaceLine({}), from('.next'))
    assert.match(namespaceLine({ FLEETCACHE_DIST_DIR: 'build' }), /:build-1 /)
    assert.match(namespaceLine({ FLEETCACHE_DIST_DIR: 'build' }), from('build'))
    // An absolute one (a server started from another directory than the app's) is that
    // directory: it was joined under the working directory, found no build, and put the
    // process under the namespace `default`, which every build without an id shares.
    const absolute = { FLEETCACHE_DIST_DIR: path.join(real, 'build') }
    assert.match(namespaceLine(absolute), /:build-1 /)
    assert.match(namespaceLine(absolute), from('build'))
    // A standalone server.js announces its config, whose distDir Next records as './<dir>'.
    const standalone = JSON.stringify({ distDir: './build' })
    assert.match(namespaceLine({ __NEXT_PRIVATE_STANDALONE_CONFIG: standalone }), from('build'))
  } finally {
    fs.rmSync(app, { recursive: true, force: true })
  }
})

test('a handler configured in code without a deployment id is in its build namespace', () => {
  const namespaceLine = (options, env = {}) => {
    const script = `require(${JSON.stringify(require.resolve('../dist/index.js'))}).createUseCacheHandler(${JSON.stringify(options)})`
    const out = spawnSync(process.execPath, ['-e', script], {
      cwd: app,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, ...env },
    })
    assert.equal(out.status, 0, out.stderr)
    return `${out.stdout}${out.stderr}`.split('\n').find((l) => l.includes('namespace')) ?? ''
  }
  const app = fakeApp('16.4.6', {})
  try {
    assert.match(
      namespaceLine({ prefix: 'shop' }),
      new RegExp(
        `namespace shop:build-1 \\(deployment from ${escape(path.join(fs.realpathSync(app), '.next', 'BUILD_ID'))}\\)`,
      ),
    )
    assert.match(
      namespaceLine({ prefix: 'shop' }, { NEXT_DEPLOYMENT_ID: 'dep-7' }),
      /namespace shop:dep-7 \(deployment from NEXT_DEPLOYMENT_ID\)/,
    )
    // Given in code, it is used as given.
    assert.match(
      namespaceLine({ prefix: 'shop', deploymentId: 'v2' }, { NEXT_DEPLOYMENT_ID: 'dep-7' }),
      /namespace shop:v2 \(deployment from options\)/,
    )
    // '' is not given, as FLEETCACHE_DEPLOYMENT_ID='' is: before, it took the namespace
    // `default`, which every process without an id shares, with no warning
    // (`namespace shop:default (deployment from options)`).
    assert.match(
      namespaceLine({ prefix: 'shop', deploymentId: '' }, { NEXT_DEPLOYMENT_ID: 'dep-7' }),
      /namespace shop:dep-7 \(deployment from NEXT_DEPLOYMENT_ID\)/,
    )
    assert.match(
      namespaceLine({ prefix: 'shop', deploymentId: '' }),
      new RegExp(
        `namespace shop:build-1 \\(deployment from ${escape(path.join(fs.realpathSync(app), '.next', 'BUILD_ID'))}\\)`,
      ),
    )
  } finally {
    fs.rmSync(app, { recursive: true, force: true })
  }
})
