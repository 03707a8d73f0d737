// Smoke test of `withFleetcache` from the three kinds of next.config a user may have:
//
//   .mjs  the example's own config (ESM import), built once by prepareApp for every e2e test
//   .ts   next.config.ts as create-next-app writes it (`const nextConfig: NextConfig`, no
//         "type": "module"), built in a copy of the example
//   .js   CommonJS (`require`, no "type": "module"), in another copy
//
// Each build is started as two `next start` instances on one Redis, and one value rendered on
// the first must be served by the second. The .js config also sets a `deploymentId` and
// `experimental.useSkewCookie`: Next then empties NEXT_DEPLOYMENT_ID and writes a build id that
// is the same in every such build, so the namespace must be the recorded `deploymentId`. The
// copies live in $TMPDIR/fleetcache-config-variants (node_modules hard-linked from the example)
// and are rebuilt only when their sources or the installed tarball change, like the example
// itself.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { tearDown } from '../support/diagnostics.mjs'
import { appDir, makeLogDir, prepareApp, startFleet } from '../support/fleet.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'

const KEEP_LOGS = process.env.E2E_KEEP_LOGS === '1'
const VARIANTS_DIR = path.join(os.tmpdir(), 'fleetcache-config-variants')

const BODY = `{
  cacheComponents: true,
  partialPrefetching: true,
  outputFileTracingRoot: root,
  turbopack: { root },
}`
const SKEW_DEPLOYMENT = 'cv-js-skew'
const SKEW_BODY = BODY.replace(
  'turbopack: { root },',
  `turbopack: { root },\n  deploymentId: '${SKEW_DEPLOYMENT}',\n  experimental: { useSkewCookie: true },`,
)

const VARIANTS = {
  ts: {
    file: 'next.config.ts',
    source: `import type { NextConfig } from 'next'
import { withFleetcache } from 'fleetcache/config'

const root = process.cwd()
const nextConfig: NextConfig = ${BODY}

export default withFleetcache(nextConfig)
`,
  },
  js: {
    file: 'next.config.js',
    source: `const { withFleetcache } = require('fleetcache/config')

const root = __dirname

/** @type {import('next').NextConfig} */
module.exports = withFleetcache(${SKEW_BODY})
`,
  },
}

// Writes a file only when its content differs, so an unchanged copy keeps its build.
function writeIfChanged(file, content) {
  if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === content) return
  fs.writeFileSync(file, content)
}

const sha = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')

// A copy of the example with another next.config; node_modules hard-linked (same filesystem) or
// copied, and re-linked whenever the example's installed tarball changed.
function makeVariant(name) {
  const v = VARIANTS[name]
  const dir = path.join(VARIANTS_DIR, name)
  fs.mkdirSync(dir, { recursive: true })
  for (const entry of ['app', 'components', 'lib', 'tsconfig.json', 'package-lock.json']) {
    fs.cpSync(path.join(appDir, entry), path.join(dir, entry), {
      recursive: true,
      preserveTimestamps: true,
    })
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(appDir, 'package.json'), 'utf8'))
  // No "type": CommonJS for .js, and what create-next-app writes. (An explicit "commonjs" makes
  // Turbopack refuse the app's own ESM-syntax .ts files.)
  delete pkg.type
  writeIfChanged(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n')
  for (const other of ['next.config.mjs', 'next.config.ts', 'next.config.js']) {
    if (other !== v.file) fs.rmSync(path.join(dir, other), { force: true })
  }
  writeIfChanged(path.join(dir, v.file), v.source)
  const stamp = path.join('node_modules', '.fleetcache-tarball.json')
  const ours = path.join(dir, stamp)
  if (!fs.existsSync(ours) || sha(ours) !== sha(path.join(appDir, stamp))) {
    fs.rmSync(path.join(dir, 'node_modules'), { recursive: true, force: true })
    try {
      fs.cpSync(path.join(appDir, 'node_modules'), path.join(dir, 'node_modules'), {
        recursive: true,
        mode: fs.constants.COPYFILE_FICLONE,
      })
    } catch (err) {
      throw new Error(`copying node_modules into ${dir} failed: ${err.message}`)
    }
  }
  return dir
}

let logDir
let redis
let origin
let failed = false

describe('withFleetcache from next.config.mjs, .ts and .js', () => {
  before(
    async () => {
      logDir = makeLogDir('fleetcache-variants-')
      // The example (and its node_modules with the current tarball) first.
      await prepareApp({ logDir })
      redis = await startRedis({ logDir })
      origin = await startOrigin()
    },
    { timeout: 20 * 60_000 },
  )

  after(() =>
    tearDown({ tag: 'variants', logDir, failed, keep: KEEP_LOGS, services: [origin, redis] }),
  )

  for (const name of ['mjs', 'ts', 'js']) {
    test(
      `next.config.${name}: build, start two instances, one shared value`,
      { timeout: 10 * 60_000 },
      async () => {
        let fleet = []
        try {
          const dir = name === 'mjs' ? appDir : makeVariant(name)
          const app = await prepareApp({ logDir, appDir: dir })
          fleet = await startFleet({
            names: [`${name}1`, `${name}2`],
            env: { REDIS_URL: redis.url, ORIGIN_URL: origin.url, FLEETCACHE_PREFIX: `v-${name}` },
            logDir,
            appDir: dir,
          })
          const [a, b] = fleet
          const list = `variant-${name}`
          const first = await a.getData(`/products?list=${list}`)
          assert.equal(first.error, null)
          assert.equal(first.generatedBy, a.name)
          const second = await b.getData(`/products?list=${list}`)
          assert.equal(second.generatedBy, a.name, `${b.name} did not get ${a.name}'s entry`)
          assert.equal(second.generatedAt, first.generatedAt)
          assert.equal(origin.calls(`products-${list}`), 1)
          const [id, file] =
            name === 'js'
              ? [SKEW_DEPLOYMENT, 'required-server-files.json']
              : [app.buildId, 'BUILD_ID']
          const source = path.join(fs.realpathSync(dir), '.next', file)
          assert.match(
            a.logTail(200),
            new RegExp(
              `namespace v-${name}:${id} \\(deployment from ${name === 'js' ? 'deploymentId in ' : ''}${source.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`,
            ),
          )
        } catch (err) {
          failed = true
          const tails = fleet.map((i) => `--- ${i.name} ---\n${i.logTail(30)}`).join('\n')
          err.message += `\n${tails}\n(logs in ${logDir})`
          throw err
        } finally {
          await Promise.allSettled(fleet.map((i) => i.stop()))
        }
      },
    )
  }
})
