// End to end: `next start <app dir>` run from another working directory (a systemd unit
// without WorkingDirectory, a script at a monorepo's root). Next does not change into the app
// directory; withFleetcache passes the app's build output directory on to the handlers, so
// both instances take the build's namespace (not `fleetcache:default`, which every release
// would share) and share its entries and revalidations. And `next build <app dir>` from
// another directory, `output: 'standalone'`: the tracing globs are the app's (they were
// relative to the working directory, and Turbopack refused the build), and the config the
// standalone server.js announces holds the config's own distDir, not the absolute directory
// withFleetcache passed on to the build's handlers.
//
// Run: node --test tests/e2e/start-elsewhere.test.mjs   (E2E_KEEP_LOGS=1 keeps the logs)
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { fleetSuite } from '../support/diagnostics.mjs'
import {
  appDir,
  cleanEnv,
  makeLogDir,
  nextBinOf,
  prepareApp,
  runLogged,
  startFleet,
} from '../support/fleet.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'
import { revalidateOn, scanKeys, waitForQuiet } from '../support/observe.mjs'

const PATHNAME = '/products?list=elsewhere'
const NAME = 'products-elsewhere'

let logDir
let redis
let origin
let A
let B
let buildId

// `src` re-created at `dest`, its files hard-linked (copied across filesystems): the example's
// node_modules for an app of the test's own, in a fraction of a second.
function linkTree(src, dest) {
  fs.mkdirSync(dest, { recursive: true })
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, entry.name)
    const to = path.join(dest, entry.name)
    if (entry.isDirectory()) linkTree(from, to)
    else if (entry.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to)
    else {
      try {
        fs.linkSync(from, to)
      } catch (err) {
        if (err.code !== 'EXDEV') throw err
        fs.copyFileSync(from, to)
      }
    }
  }
}

async function read(inst) {
  const d = await inst.getData(PATHNAME)
  assert.equal(d.error, null, `${inst.name}: the page rendered an origin error: ${d.error}`)
  return d
}

describe('fleetcache e2e: next start <app dir> from another directory', () => {
  const { wrap: withDiagnostics } = fleetSuite({
    tag: 'start-elsewhere',
    scene: () => ({ logDir, origin, redis: [redis], instances: [A, B] }),
    setUp: async () => {
      logDir = makeLogDir('fleetcache-start-elsewhere-')
      ;({ buildId } = await prepareApp({ logDir }))
      redis = await startRedis({ logDir })
      origin = await startOrigin()
      // The log directory: a temp directory with no build in it, outside the app.
      ;[A, B] = await startFleet({
        names: ['A', 'B'],
        env: { REDIS_URL: redis.url, ORIGIN_URL: origin.url },
        logDir,
        fromDir: logDir,
      })
    },
  })

  test(
    "both take the build's namespace, read from the app's build",
    { timeout: 30_000 },
    withDiagnostics(async () => {
      const source = path.join(fs.realpathSync(appDir), '.next', 'BUILD_ID')
      for (const inst of [A, B]) {
        // The first request loads the handlers (and so logs the line) if start-up did not.
        await inst.request('/')
        const lines = inst
          .logTail(500)
          .split('\n')
          .filter((l) => l.includes('[fleetcache] namespace'))
        assert.equal(lines.length, 1, `${inst.name} logged ${lines.length} namespace lines`)
        assert.ok(
          lines[0].includes(`namespace fleetcache:${buildId} (deployment from ${source})`),
          `${inst.name}: ${lines[0]}`,
        )
      }
    }),
  )

  test(
    "they share the build's entries, and a revalidation on one reaches the other",
    { timeout: 60_000 },
    withDiagnostics(async () => {
      const a = await read(A)
      assert.equal(a.generatedBy, 'A')
      await waitForQuiet({ redis, origin, names: [NAME] })
      const keys = await scanKeys(redis, `fleetcache:${buildId}:uc-default:*`)
      assert.ok(keys.length > 0, `no 'use cache' entry under the build's namespace`)
      const b = await read(B)
      assert.equal(b.generatedBy, 'A', "B did not serve A's entry")
      const newV = origin.bump(NAME)
      await revalidateOn(A, '/api/expire?tag=products', redis, 'products', { mode: 'expire' })
      const after = await read(B)
      assert.equal(after.version, newV, `B served v${after.version} after the revalidation on A`)
    }),
  )

  test(
    "next build <app dir> from another directory: a standalone tree with the server's .wasm and not the CLI",
    { timeout: 5 * 60_000 },
    withDiagnostics(async () => {
      // A one-page app of its own, node_modules hard-linked from the example's: a standalone
      // build of the example itself proves no more and took 31 s against this one's 7 s (2
      // cores, 16.4.6). Its directory is its `turbopack.root` and tracing root, as the example's
      // is. The globs were relative to the working directory, here two levels below the app's
      // parent: they climbed out of that root, which Turbopack refuses ("navigates out of the
      // project root").
      const dir = path.join(logDir, 'app')
      const cwd = path.join(logDir, 'elsewhere', 'below')
      fs.mkdirSync(cwd, { recursive: true })
      linkTree(path.join(appDir, 'node_modules'), path.join(dir, 'node_modules'))
      const files = {
        'package.json': '{ "private": true, "type": "module" }\n',
        'next.config.mjs': [
          "import { dirname } from 'node:path'",
          "import { fileURLToPath } from 'node:url'",
          "import { withFleetcache } from 'fleetcache/config'",
          'const root = dirname(fileURLToPath(import.meta.url))',
          'export default withFleetcache({',
          "  output: 'standalone',",
          "  distDir: 'out',",
          '  outputFileTracingRoot: root,',
          '  turbopack: { root },',
          '})',
          '',
        ].join('\n'),
        'app/layout.js':
          'export default function Layout({ children }) {\n  return <html><body>{children}</body></html>\n}\n',
        'app/page.js': 'export default function Page() {\n  return <p>elsewhere</p>\n}\n',
      }
      for (const [name, text] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
        fs.writeFileSync(path.join(dir, name), text)
      }
      await runLogged(process.execPath, [nextBinOf(dir), 'build', dir], {
        cwd,
        env: cleanEnv(),
        logFile: path.join(logDir, 'build-elsewhere.log'),
        timeoutMs: 5 * 60_000,
        what: 'next build <app dir> from another directory',
      })
      const standaloneDir = path.join(dir, 'out', 'standalone')
      const pkg = path.join(standaloneDir, 'node_modules', 'fleetcache')
      assert.ok(fs.existsSync(path.join(pkg, 'wasm', 'fleetcache_wasm_bg.wasm')), 'no .wasm')
      // The CLI's code (cli/; dist/cli/ before it moved) and its tools module: no server loads them.
      for (const unused of ['wasm/tools', 'cli', 'dist/cli']) {
        assert.ok(!fs.existsSync(path.join(pkg, unused)), `the standalone tree holds ${unused}`)
      }
      // server.js announces the config the build recorded, whose distDir is the config's own:
      // the build's absolute directory reaches no standalone server. (Not started here: Next
      // bakes the project directory into the build relative to the build's working directory,
      // `relativeProjectDir`, and a standalone server.js of a build made from elsewhere then
      // looks for the cache handlers' modules outside its tree: seen on 16.4.6.)
      const serverJs = fs.readFileSync(path.join(standaloneDir, 'server.js'), 'utf8')
      assert.match(serverJs, /"distDir":"(\.\/)?out"/)
      assert.ok(
        !serverJs.includes(fs.realpathSync(path.join(dir, 'out'))),
        "the build's directory is recorded",
      )
    }),
  )
})
