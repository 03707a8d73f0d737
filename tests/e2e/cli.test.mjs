// The `fleetcache` CLI against a real redis-server holding data written by a real
// `next start` of examples/next-incremental:
// - seed: the build's prerendered routes are stored before any instance runs, and a fresh
//   instance answers its first request for each from the shared cache (x-nextjs-cache: HIT)
//   without rendering (the counting origin is never called), and seeding again never replaces
//   a page the fleet rendered after the build;
// - stats, tags, inspect: what the instance wrote and revalidated is visible;
// - purge: one old deployment's keys go, in several SCAN pages, and the live one's stay.
//
// Run: node --test tests/e2e/cli.test.mjs   Env: FLEETCACHE_TARBALL, E2E_KEEP_LOGS=1.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'
import { fleetSuite } from '../support/diagnostics.mjs'
import {
  ADAPTER_ENV,
  exampleDir,
  makeLogDir,
  parseDataElement,
  prepareAdapterBuild,
  prepareApp,
  startInstance,
} from '../support/fleet.mjs'
import { skipBefore } from '../support/next-release.mjs'
import { startOrigin } from '../support/origin.mjs'
import { startRedis } from '../support/redis.mjs'
import { indent, waitFor } from '../support/util.mjs'

// examples/next-incremental, or its copy for E2E_NEXT_VERSION (tests/support/next-release.mjs).
const APP_DIR = exampleDir('next-incremental')
// The CLI as installed in the app from the tarball (its `bin`), not the working tree.
const CLI = path.join(APP_DIR, 'node_modules', 'fleetcache', 'cli', 'main.js')
const run = promisify(execFile)

let logDir
let redis
let origin
let A
// An instance of the adapterPath build (the last test).
let D
let buildId

async function cli(args, { ok = true } = {}) {
  try {
    const r = await run(process.execPath, [CLI, ...args], {
      env: { ...process.env, REDIS_URL: redis.url, FLEETCACHE_PREFIX: '' },
      timeout: 60_000,
    })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    if (ok) {
      throw new Error(
        `fleetcache ${args.join(' ')} exited ${err.code}\n${indent(err.stdout ?? '')}\n${indent(err.stderr ?? '')}`,
      )
    }
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

const cliJson = async (args) => JSON.parse((await cli([...args, '--json'])).stdout)

describe('fleetcache CLI against a real Redis and a real next start', () => {
  const { wrap: withDiagnostics } = fleetSuite({
    tag: 'cli',
    scene: () => ({ logDir, origin, redis: [redis], instances: [A, D] }),
    setUp: async () => {
      logDir = makeLogDir('fleetcache-e2e-cli-')
      const app = await prepareApp({ logDir, appDir: APP_DIR })
      buildId = app.buildId
      redis = await startRedis({ logDir })
      origin = await startOrigin()
    },
  })

  test(
    'seed: a fresh instance answers its first requests from the build, without rendering',
    withDiagnostics(async () => {
      const r = await cli(['seed', path.join(APP_DIR, '.next')])
      assert.match(r.stdout, new RegExp(`seeded \\d+ prerendered routes for deployment ${buildId}`))
      const seeded = Number(/seeded (\d+)/.exec(r.stdout)[1])
      assert.ok(seeded >= 4, r.stdout) // /, /_not-found, /app-page, /api/route-data, /isr

      // Only now does the first instance start; it has never rendered anything.
      A = await startInstance({
        name: 'A',
        env: {
          REDIS_URL: redis.url,
          ORIGIN_URL: origin.url,
          FLEETCACHE_DEBUG: '1',
          // This checks seeding, not deadlines: on a loaded machine the first tag pull of a
          // process just started can pass the default 300 ms, and without a trusted tag state
          // the seeded entries are rightly refused and rendered, which this test would count.
          FLEETCACHE_READ_TIMEOUT_MS: '5000',
        },
        logDir,
        appDir: APP_DIR,
        readyPath: '/api/route-data',
      })
      // Seeded entries carry the time the build wrote them: within the routes' revalidate
      // (3600 s) of the build they are hits, after it stale (served, regenerated behind).
      // Builds are reused between runs, so which one applies depends on the build's age.
      const age = Date.now() - fs.statSync(path.join(APP_DIR, '.next', 'BUILD_ID')).mtimeMs
      const expected = age < 3000_000 ? ['HIT'] : age > 3600_000 ? ['STALE'] : ['HIT', 'STALE']
      // readyPath itself was the first request for the route handler.
      const route = await A.request('/api/route-data')
      assert.ok(expected.includes(route.headers.get('x-nextjs-cache')), `build ${age} ms old`)
      for (const p of [
        { path: '/app-page', name: 'app-page' },
        { path: '/isr', name: 'isr' },
      ]) {
        const res = await A.request(p.path)
        assert.equal(res.status, 200)
        assert.ok(
          expected.includes(res.headers.get('x-nextjs-cache')),
          `${p.path} on its first request: ${res.headers.get('x-nextjs-cache')}, build ${age} ms old`,
        )
        // The build rendered without an origin: the page is the build's output, not a render.
        assert.match(res.text, /ORIGIN_URL is not set/)
      }
      if (expected.length === 1 && expected[0] === 'HIT') {
        assert.equal(origin.calls('app-page'), 0, 'no render of /app-page')
        assert.equal(origin.calls('isr'), 0, 'no render of /isr')
        assert.equal(origin.calls('route-data'), 0, 'no render of /api/route-data')
      }
    }),
  )

  test(
    'seed never moves a page backwards: a page the fleet rendered after the build is kept',
    withDiagnostics(async () => {
      // The fleet renders /isr again (on-demand ISR), with the origin's data this time.
      await A.call('/api/revalidate-isr?path=/isr')
      const rendered = await waitFor(
        async () => {
          const res = await A.request('/isr')
          return /ORIGIN_URL is not set/.test(res.text) ? null : res.text
        },
        { timeoutMs: 15_000, intervalMs: 100, what: '/isr rendered with the origin' },
      )
      const before = parseDataElement(rendered)
      assert.ok(before?.generatedAt, rendered.slice(0, 500))
      // Seeding the build again brings an older /isr: Redis keeps the newer one.
      const r = await cli(['seed', path.join(APP_DIR, '.next')])
      const after = parseDataElement((await A.request('/isr')).text)
      assert.equal(after?.generatedAt, before.generatedAt, `the page moved backwards:\n${r.stdout}`)
      assert.match(r.stdout, /kept \(Redis holds an entry as new as the build's or newer\): \/isr/)
    }),
  )

  test(
    'stats, tags and inspect show what the instance wrote and revalidated',
    withDiagnostics(async () => {
      // A dynamic page whose fetch is cached by the running instance (a FETCH entry).
      const page = await A.getData('/fetch-tags')
      assert.equal(page.error, null)
      const before = await cliJson(['stats'])
      const row = before.rows.find((x) => x.deployment === buildId && x.interface === 'inc')
      assert.ok(row, JSON.stringify(before))
      assert.ok(row.entries >= 6 && row.bytes > 10_000, JSON.stringify(row))
      assert.equal(before.truncated, false)

      const t0 = Date.now()
      await A.call('/api/expire?tag=fetch-tag')
      // Route-handler revalidations finish after the response (waitUntil): wait for the tag.
      let tags
      const rec = await waitFor(
        async () => {
          tags = await cliJson(['tags', '--limit', '5'])
          return tags.find((x) => x.tag === 'fetch-tag')
        },
        { timeoutMs: 15_000, intervalMs: 100, what: 'fetch-tag in the tag state' },
      ).catch((err) => assert.fail(`${err.message}: ${JSON.stringify(tags)}`))
      assert.ok(rec.updatedAt >= t0 - 5 && rec.updatedAt <= Date.now(), JSON.stringify(rec))
      assert.equal(rec.expired, rec.updatedAt, 'an immediate expiry')
      assert.match((await cli(['tags'])).stdout, /expired\s+\d+\s+fetch-tag/)
      const s = await cliJson(['stats'])
      assert.ok(s.tags >= 1)

      // Find the FETCH entry by scanning through redis itself and decode it with the CLI.
      const keys = (await redis.describe({ maxKeys: 100 }))
        .split('\n')
        .filter((k) => k.endsWith(':e'))
      let fetchEntry
      for (const key of keys) {
        const r = await cliJson(['inspect', key])
        if (r.header.valueKind === 'FETCH') fetchEntry = r
      }
      assert.ok(fetchEntry, `no FETCH entry among ${keys.length} keys`)
      assert.ok(fetchEntry.header.tags.includes('fetch-tag'))
      assert.equal(fetchEntry.verdict, 'expired-by-tag', 'judged against the live tag state')
      assert.ok(fetchEntry.ttlMs > 0)
      const text = (await cli(['inspect', fetchEntry.key])).stdout
      assert.match(text, /verdict now\s+expired-by-tag/)
      assert.match(text, /value \(JSON part\)/)
      const missing = await cli(['inspect', 'fleetcache:nope:inc:{0}:e'], { ok: false })
      assert.equal(missing.code, 1)
    }),
  )

  test(
    "purge: one old deployment's keys go in batches, the live deployment's stay",
    withDiagnostics(async () => {
      // An older deployment: the same routes seeded under another id, plus many entries, so
      // the purge takes several SCAN pages.
      await cli(['seed', path.join(APP_DIR, '.next'), '--deployment', 'old-build'])
      await redis.command(
        'EVAL',
        "for i = 1, 1200 do redis.call('SET', 'fleetcache:old-build:inc:{' .. i .. '}:e', 'x', 'PX', 600000) end",
        '0',
      )
      const live = (await cliJson(['stats'])).rows.find((x) => x.deployment === buildId)
      const dry = await cliJson(['purge', '--deployment', 'old-build', '--dry-run'])
      assert.ok(dry.matched >= 1204, JSON.stringify(dry))
      assert.equal(dry.deleted, 0)

      const r = await cli(['purge', '--deployment', 'old-build', '--batch', '100'])
      assert.match(r.stdout, /deleted \d+ keys of deployment old-build/)
      assert.match(r.stderr, /deleted \d+ keys of deployment old-build in [\d.]+ s/)
      const after = await cliJson(['stats'])
      assert.equal(
        after.rows.find((x) => x.deployment === 'old-build'),
        undefined,
        JSON.stringify(after.rows),
      )
      const still = after.rows.find((x) => x.deployment === buildId)
      assert.equal(still.entries, live.entries, "the live deployment's entries are untouched")
      assert.equal((await A.request('/app-page')).headers.get('x-nextjs-cache'), 'HIT')

      const usage = await cli(['purge'], { ok: false })
      assert.equal(usage.code, 2)
      assert.match(usage.stderr, /purge needs --deployment/)
    }),
  )

  test(
    'seed: an adapterPath build keeps its prerenders under server/route-cache/, and they are seeded and served',
    {
      skip: skipBefore(
        '16.3.8',
        'only from 16.3.8 does a build with adapterPath write its prerenders under server/route-cache/',
      ),
    },
    withDiagnostics(async () => {
      const build = await prepareAdapterBuild({ logDir, appDir: APP_DIR })
      const scoped = path.join(build.distDir, 'server', 'route-cache')
      assert.ok(fs.existsSync(scoped), `no ${scoped}: the build did not take the adapter layout`)
      assert.ok(
        !fs.existsSync(path.join(build.distDir, 'server', 'pages', 'isr.html')),
        'the adapter build also wrote /isr under server/pages',
      )
      // `next start` with a custom distDir cannot find the build id: the id is given to both.
      const deployment = `adapter-${build.buildId}`
      const r = await cli(['seed', build.distDir, '--deployment', deployment])
      assert.match(
        r.stdout,
        new RegExp(`seeded \\d+ prerendered routes for deployment ${deployment}`),
      )
      const seeded = Number(/seeded (\d+)/.exec(r.stdout)[1])
      assert.ok(seeded >= 4, r.stdout) // /, /_not-found, /app-page, /api/route-data, /isr

      const calls = () => ['app-page', 'isr', 'route-data'].map((k) => origin.calls(k))
      const before = calls()
      D = await startInstance({
        name: 'D',
        env: {
          ...ADAPTER_ENV,
          REDIS_URL: redis.url,
          ORIGIN_URL: origin.url,
          FLEETCACHE_DEPLOYMENT_ID: deployment,
        },
        logDir,
        appDir: APP_DIR,
        readyPath: '/api/route-data',
      })
      // The adapter build was just made or reused: within its routes' revalidate (3600 s) a hit,
      // after it stale; either way served from the seed, not rendered on the request.
      const age = Date.now() - fs.statSync(path.join(build.distDir, 'BUILD_ID')).mtimeMs
      const expected = age < 3000_000 ? ['HIT'] : age > 3600_000 ? ['STALE'] : ['HIT', 'STALE']
      for (const p of ['/api/route-data', '/app-page', '/isr']) {
        const res = await D.request(p)
        assert.equal(res.status, 200, p)
        assert.ok(
          expected.includes(res.headers.get('x-nextjs-cache')),
          `${p} on its first request: ${res.headers.get('x-nextjs-cache')}, build ${age} ms old\n${r.stdout}`,
        )
      }
      if (expected.length === 1) assert.deepEqual(calls(), before, 'D rendered a seeded page')
    }),
  )
})
