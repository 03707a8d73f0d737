// `fleetcache seed` against a real redis-server: a seeded entry carries the
// time the build wrote it, and seeding never replaces an entry created at or after that time
// (the comparison is the core's seed_write script, run in Redis). The build is a minimal
// `.next` tree of one Pages Router ISR route, in the shape `next build` writes it.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { createIncrementalCacheHandler, close } from '../esm/index.mjs'
import { readSeeds } from '../cli/seed.js'
import { startRedis } from '../../tests/support/redis.mjs'

const require = createRequire(import.meta.url)
const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const run = promisify(execFile)
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const KEY = '/route-cache/PAGES/test/$/isr'
const DEPLOYMENT = 'seed-test'
const PREFIX = 'seedtest'

let logDir
let redis
let dist

// The value of /isr as a render with counter `n` produces it.
const page = (n) => ({
  kind: 'PAGES',
  html: `<p>n=${n}</p>`,
  pageData: { pageProps: { n }, __N_SSG: true },
  headers: undefined,
  status: 200,
})
const CTX = { kind: 'PAGES', cacheControl: { revalidate: 3600, expire: 31536000 } }

// A `.next` directory holding the build's /isr (n=1), its files written at `builtAt` (ms).
function writeBuild(dir, builtAt) {
  const pages = path.join(dir, 'server', 'pages')
  fs.mkdirSync(pages, { recursive: true })
  fs.writeFileSync(path.join(dir, 'BUILD_ID'), 'b1')
  fs.writeFileSync(
    path.join(dir, 'prerender-manifest.json'),
    JSON.stringify({
      routes: { '/isr': { initialRevalidateSeconds: 3600, initialExpireSeconds: 31536000 } },
    }),
  )
  const v = page(1)
  fs.writeFileSync(path.join(pages, 'isr.html'), v.html)
  fs.writeFileSync(path.join(pages, 'isr.json'), JSON.stringify(v.pageData))
  fs.writeFileSync(
    path.join(pages, 'isr.meta'),
    JSON.stringify({ status: 200, routeCache: { key: KEY, owner: { kind: 'PAGES' } } }),
  )
  const t = new Date(builtAt)
  for (const f of ['isr.html', 'isr.json', 'isr.meta']) fs.utimesSync(path.join(pages, f), t, t)
  return fs.statSync(path.join(pages, 'isr.html')).mtimeMs
}

/** Runs `fleetcache seed` on `dist`; `args` replaces the deployment's, `env` adds variables. */
function runSeed(args = ['--deployment', DEPLOYMENT], env = {}) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k)),
  )
  return run(process.execPath, [CLI, 'seed', dist, ...args, '--json'], {
    env: { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: PREFIX, ...env },
    timeout: 60_000,
  })
}

async function seed() {
  return JSON.parse((await runSeed()).stdout)
}

/**
 * Runs the CLI with `args` as a user types them (no `--json` added), `env` added to its
 * environment: exit code and both streams.
 */
async function cli(args, env = {}) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k)),
  )
  try {
    const r = await run(process.execPath, [CLI, ...args], {
      env: { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: PREFIX, ...env },
      timeout: 60_000,
    })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    if (typeof err.code !== 'number') throw err
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

/**
 * The creation time stored with KEY's entry (`fleetcache inspect`): a read of a fresh entry
 * shows Next the time of the read as its `lastModified`, not this.
 */
async function stamped() {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k)),
  )
  const args = ['inspect', '--cache-key', KEY, '--deployment', DEPLOYMENT, '--interface', 'inc']
  const { stdout } = await run(process.execPath, [CLI, ...args, '--json'], {
    env: { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: PREFIX },
    timeout: 60_000,
  })
  return JSON.parse(stdout).header.timestamp
}

// The singular handler a server of this deployment runs (no in-process tier: Redis is read).
function server() {
  const Handler = createIncrementalCacheHandler({
    redisUrl: redis.url,
    prefix: PREFIX,
    deploymentId: DEPLOYMENT,
    memoryBytes: 0,
    leases: false,
  })
  return new Handler()
}

describe('fleetcache seed', () => {
  before(async () => {
    logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-seed-'))
    redis = await startRedis({ logDir })
    dist = path.join(logDir, '.next')
  })

  after(async () => {
    await close()
    await redis?.stop()
    fs.rmSync(logDir, { recursive: true, force: true })
  })

  test('stamps the time the build wrote the page, and never replaces a newer entry', async () => {
    // Built ten minutes ago: inside its revalidate (3600 s), so a hit, not a stale serve.
    const builtAt = writeBuild(dist, Date.now() - 10 * 60_000)
    const first = await seed()
    assert.equal(first.written, 1, JSON.stringify(first))
    const h = server()
    const seeded = await h.get(KEY, { kind: 'PAGES' })
    assert.ok(seeded, 'the seeded entry is read')
    assert.equal(seeded.value.pageData.pageProps.n, 1)
    const seededAt = await stamped()
    assert.ok(Math.abs(seededAt - builtAt) < 1, `stamped ${seededAt}, built ${builtAt}`)

    // The fleet renders the page again (n=100): a newer entry than the build's.
    await h.set(KEY, page(100), CTX)
    const runtime = await h.get(KEY, { kind: 'PAGES' })
    assert.equal(runtime.value.pageData.pageProps.n, 100)
    const runtimeAt = await stamped()
    const again = await seed()
    assert.equal(again.written, 0, JSON.stringify(again))
    assert.deepEqual(again.kept, ['/isr'])
    const still = await h.get(KEY, { kind: 'PAGES' })
    assert.equal(still.value.pageData.pageProps.n, 100, 'seeding moved the page backwards')
    assert.equal(await stamped(), runtimeAt)

    // A build newer than the stored entry replaces it.
    await close()
    const rebuilt = writeBuild(dist, Date.now())
    assert.ok(rebuilt > runtimeAt)
    const newer = await seed()
    assert.equal(newer.written, 1, JSON.stringify(newer))
    const h2 = server()
    const replaced = await h2.get(KEY, { kind: 'PAGES' })
    assert.equal(replaced.value.pageData.pageProps.n, 1)
    assert.ok(Math.abs((await stamped()) - rebuilt) < 1)
    // Seeding the same build twice keeps the first copy (equal times: nothing newer to bring).
    const twice = await seed()
    assert.equal(twice.written, 0, JSON.stringify(twice))
    assert.deepEqual(twice.kept, ['/isr'])
  })

  // A throw after the seed's runtime connected (its tag refresh is its first command) must
  // close it: its Redis connection would keep the process from ever exiting. The refresh is
  // made to reject after its pull, as anything that throws between the two would. A child
  // process of its own, which loads the tools module as the CLI does.
  test('a seed that throws before its first write closes its runtime: the process exits', async () => {
    writeBuild(dist, Date.now())
    const dir = (rel) => JSON.stringify(fileURLToPath(new URL(rel, import.meta.url)))
    const script = `
      require(${dir('../cli/use-tools.js')})
      const { TagSync } = require(${dir('../dist/tag-sync.js')})
      const refresh = TagSync.prototype.refresh
      TagSync.prototype.refresh = function () {
        return refresh.call(this).then(() => { throw new Error('thrown after the pull') })
      }
      const { seed } = require(${dir('../cli/seed.js')})
      const noop = { tick() {}, done() {} }
      const options = { redisUrl: ${JSON.stringify(redis.url)}, prefix: 'seedthrow', deploymentId: 'd1' }
      seed(${JSON.stringify(dist)}, options, { send: async () => 1 }, noop).then(
        () => console.log('resolved'),
        (err) => console.log('rejected: ' + err.message),
      )
    `
    // A process the runtime kept alive would run until this timeout ends it (SIGTERM).
    const out = await run(process.execPath, ['-e', script], { timeout: 30_000 }).catch((err) => err)
    assert.equal(out.signal ?? null, null, 'the process did not exit by itself')
    assert.match(out.stdout, /^rejected: thrown after the pull$/m)
  })

  // seed() as a library call: it closes its own runtime, not every runtime of the process. A
  // handler opened before it still reads Redis after it, and the seed's runtime is gone (the
  // handler's is the only one left). A child process of its own, which loads the tools
  // module as the CLI does.
  test('seed() closes its own runtime only: a handler opened before it still serves', async () => {
    await redis.command('FLUSHALL')
    writeBuild(dist, Date.now() - 60_000)
    const dir = (rel) => JSON.stringify(fileURLToPath(new URL(rel, import.meta.url)))
    const url = JSON.stringify(redis.url)
    const script = `
      require(${dir('../cli/use-tools.js')})
      const { createUseCacheHandler, close } = require(${dir('../dist/index.js')})
      const { seed } = require(${dir('../cli/seed.js')})
      const noop = { tick() {}, done() {} }
      const options = { redisUrl: ${url}, prefix: 'seedlib', deploymentId: 'd1' }
      // No in-process tier: every get reads Redis.
      const h = createUseCacheHandler({ ...options, memoryBytes: 0, leases: false })
      const entry = {
        value: new Response('v').body,
        tags: [],
        stale: 30,
        timestamp: performance.timeOrigin + performance.now(),
        expire: 3600,
        revalidate: 900,
      }
      const read = async () => {
        const got = await h.get('k', [])
        return got === undefined ? 'miss' : await new Response(got.value).text()
      }
      ;(async () => {
        await h.set('k', Promise.resolve(entry))
        const before = await read()
        const r = await seed(${JSON.stringify(dist)}, options, { send: async () => 1 }, noop)
        const after = await read()
        const left = [...globalThis[Symbol.for('fleetcache.runtimes')].values()]
        console.log(JSON.stringify({ before, written: r.written, after, left: left.length, handlers: left[0] === h.rt }))
        await close()
      })().catch((err) => console.log('rejected: ' + err.message))
    `
    const out = await run(process.execPath, ['-e', script], { timeout: 30_000 }).catch((err) => err)
    assert.equal(out.signal ?? null, null, 'the process did not exit by itself')
    assert.deepEqual(JSON.parse(out.stdout.trim().split('\n').at(-1)), {
      before: 'v',
      written: 1,
      after: 'v',
      left: 1,
      handlers: true,
    })
  })

  // Two seeds of one build in one process: each has a runtime of its own, so the first to end
  // closes none the other still uses. The second is held after its tag refresh until the first
  // has resolved (its runtime closed), then writes.
  test('two seed() calls of one build: the first to end leaves the other its runtime', async () => {
    await redis.command('FLUSHALL')
    writeBuild(dist, Date.now() - 60_000)
    const dir = (rel) => JSON.stringify(fileURLToPath(new URL(rel, import.meta.url)))
    const script = `
      require(${dir('../cli/use-tools.js')})
      const { TagSync } = require(${dir('../dist/tag-sync.js')})
      const { seed } = require(${dir('../cli/seed.js')})
      const refresh = TagSync.prototype.refresh
      let calls = 0
      let release
      const gate = new Promise((resolve) => { release = resolve })
      TagSync.prototype.refresh = function () {
        calls += 1
        const pulled = refresh.call(this)
        return calls === 2 ? pulled.then(() => gate) : pulled
      }
      const noop = { tick() {}, done() {} }
      const options = { redisUrl: ${JSON.stringify(redis.url)}, prefix: 'seedtwice', deploymentId: 'd1' }
      const verify = { send: async () => 1 }
      ;(async () => {
        const first = seed(${JSON.stringify(dist)}, options, verify, noop)
        const second = seed(${JSON.stringify(dist)}, options, verify, noop)
        const a = await first
        release()
        const b = await second
        const sum = (r) => ({ stored: r.written + r.kept.length, failed: r.failed })
        console.log(JSON.stringify([sum(a), sum(b)]))
      })().catch((err) => console.log('rejected: ' + err.message))
    `
    const out = await run(process.execPath, ['-e', script], { timeout: 30_000 }).catch((err) => err)
    assert.equal(out.signal ?? null, null, 'the process did not exit by itself')
    assert.deepEqual(JSON.parse(out.stdout.trim().split('\n').at(-1)), [
      { stored: 1, failed: [] },
      { stored: 1, failed: [] },
    ])
  })

  test('a page whose expire is over, counted from the build, is not stored', async () => {
    await redis.command('FLUSHALL')
    const pages = path.join(dist, 'server', 'pages')
    writeBuild(dist, Date.now())
    fs.writeFileSync(
      path.join(pages, 'isr.meta'),
      JSON.stringify({
        status: 200,
        cacheControl: { revalidate: 60, expire: 600 },
        routeCache: { key: KEY, owner: { kind: 'PAGES' } },
      }),
    )
    const old = new Date(Date.now() - 3600_000)
    for (const f of ['isr.html', 'isr.json', 'isr.meta'])
      fs.utimesSync(path.join(pages, f), old, old)
    const r = await seed()
    assert.equal(r.written, 0, JSON.stringify(r))
    assert.deepEqual(r.expired, ['/isr'])
    assert.equal(Number(await redis.command('DBSIZE')), 0)
  })

  // The handlers keep to the process in a development server, which `next dev` marks in its
  // server's environment (docs/configuration.md); a seed run from that environment must not turn
  // the CLI's writes into writes to nowhere.
  test('a shell with the variables next dev sets still seeds Redis', async () => {
    await redis.command('FLUSHALL')
    writeBuild(dist, Date.now() - 60_000)
    const env = { NODE_ENV: 'development', NEXT_PRIVATE_WORKER: '1', __NEXT_DEV_SERVER: '1' }
    const r = JSON.parse((await runSeed(undefined, env)).stdout)
    assert.equal(r.written, 1, JSON.stringify(r))
    assert.equal(Number(await redis.command('DBSIZE')) > 0, true)
  })

  test('the namespace line names where the deployment id came from', async () => {
    writeBuild(dist, Date.now() - 60_000)
    const from = async (args, env) => {
      const { stderr } = await runSeed(args, env)
      const line = stderr.split('\n').find((l) => l.includes('] namespace '))
      assert.ok(line, `a namespace line in:\n${stderr}`)
      return line
    }
    assert.match(
      await from([]),
      new RegExp(
        `namespace ${PREFIX}:b1 \\(deployment from ${escape(path.join(dist, 'BUILD_ID'))}\\)`,
      ),
    )
    assert.match(
      await from([], { NEXT_DEPLOYMENT_ID: 'n7' }),
      /:n7 \(deployment from NEXT_DEPLOYMENT_ID\)/,
    )
    assert.match(
      await from([], { FLEETCACHE_DEPLOYMENT_ID: 'f3', NEXT_DEPLOYMENT_ID: 'n7' }),
      /:f3 \(deployment from FLEETCACHE_DEPLOYMENT_ID\)/,
    )
    assert.match(
      await from(['--deployment', 'o9'], { FLEETCACHE_DEPLOYMENT_ID: 'f3' }),
      /:o9 \(deployment from --deployment\)/,
    )
  })

  // `deploymentId` in next.config is the server's namespace (Next sets NEXT_DEPLOYMENT_ID from
  // it when it constructs its server, unless the environment has one), and not the build id: a
  // seed that took BUILD_ID wrote where no server of that build reads (seen on Next 16.5.0).
  test('a build whose config set deploymentId is seeded under it, as its servers read', async () => {
    writeBuild(dist, Date.now() - 60_000)
    const file = path.join(dist, 'required-server-files.json')
    fs.writeFileSync(file, JSON.stringify({ version: 1, config: { deploymentId: 'v42' } }))
    try {
      const line = async (env) =>
        (await runSeed([], env)).stderr.split('\n').find((l) => l.includes('] namespace '))
      assert.match(
        await line(),
        new RegExp(`namespace ${PREFIX}:v42 \\(deployment from deploymentId in ${escape(file)}\\)`),
      )
      // The environment's NEXT_DEPLOYMENT_ID wins over the config, as Next's own config load has it.
      assert.match(
        await line({ NEXT_DEPLOYMENT_ID: 'n7' }),
        /:n7 \(deployment from NEXT_DEPLOYMENT_ID\)/,
      )
    } finally {
      fs.rmSync(file, { force: true })
    }
  })

  // An app built with a custom distDir has no .next: the seed said only
  // "fleetcache: ENOENT: ENOENT: no such file or directory, open 'BUILD_ID'".
  test('a directory that holds no build is a usage error naming it and what to pass', async () => {
    const empty = fs.mkdtempSync(path.join(logDir, 'app-'))
    const r = await cli(['seed', empty])
    assert.equal(r.code, 2, r.stderr)
    assert.match(
      r.stderr,
      new RegExp(
        `^fleetcache: seed: no Next.js build in ${escape(empty)}: neither it nor a directory directly in it holds a BUILD_ID, nor a custom distDir up to 4 levels down \\(with a build elsewhere, pass that directory\\)\\n`,
      ),
    )
  })

  /**
   * A build in `app/<rel>` with build id `id`, whose required-server-files.json records distDir
   * `recorded`, made a minute ago.
   */
  function recordedBuild(app, rel, id, recorded) {
    const dir = path.join(app, rel)
    writeBuild(dir, Date.now() - 60_000)
    fs.writeFileSync(path.join(dir, 'BUILD_ID'), id)
    fs.writeFileSync(
      path.join(dir, 'required-server-files.json'),
      JSON.stringify({ version: 1, config: { distDir: recorded } }),
    )
    return dir
  }
  /** The start of seed's refusal of `app` for holding the builds `old` and `current` (a RegExp source). */
  const twoBuilds = (app, old, current) =>
    `^fleetcache: seed: ${escape(app)} holds more than one Next\\.js build: ${escape(old)} \\(BUILD_ID old, built [^)]+\\), ${escape(current)} \\(BUILD_ID new, built [^)]+\\); `
  /** The seed's namespace line in `stderr`. */
  const namespace = (stderr) => stderr.split('\n').find((l) => l.includes('] namespace ')) ?? ''

  // `seed .` in an app whose next.config sets distDir: 'build-out' took the `.next` an older
  // build had left there, and seeded that build without a word. It now looks for the build as
  // a server of the app would, and refuses (exit 2) to guess between two.
  test('an app directory with a build under its custom distDir and an older .next is refused, naming both', async () => {
    const app = fs.mkdtempSync(path.join(logDir, 'two-builds-'))
    const build = (name, id, recorded = name) => recordedBuild(app, name, id, recorded)
    try {
      const old = build('.next', 'old')
      const current = build('build-out', 'new')
      await redis.command('FLUSHALL')
      const both = await cli(['seed', app])
      assert.equal(both.code, 2, both.stderr)
      assert.match(
        both.stderr,
        new RegExp(
          `${twoBuilds(app, old, current)}pass the one your next\\.config's distDir names \\(the servers' build\\), or set FLEETCACHE_DIST_DIR to it\\n`,
        ),
      )
      assert.equal(Number(await redis.command('DBSIZE')), 0, 'nothing seeded')
      // FLEETCACHE_DIST_DIR, which a server reads first, decides, as the build dir itself does.
      const chosen = await cli(['seed', app], { FLEETCACHE_DIST_DIR: 'build-out' })
      assert.equal(chosen.code, 0, chosen.stderr)
      assert.match(namespace(chosen.stderr), /:new \(deployment from /)
      const given = await cli(['seed', current])
      assert.equal(given.code, 0, given.stderr)
      assert.match(namespace(given.stderr), /:new \(deployment from /)
      // The custom distDir's build alone: found, not refused for want of a .next.
      fs.rmSync(old, { recursive: true })
      const alone = await cli(['seed', app])
      assert.equal(alone.code, 0, alone.stderr)
      assert.match(namespace(alone.stderr), /:new \(deployment from /)
      // A .next whose build recorded another distDir (copied there from it): said, and refused.
      fs.rmSync(current, { recursive: true })
      const copied = build('.next', 'copied', 'dist/next')
      const moved = await cli(['seed', app])
      assert.equal(moved.code, 2, moved.stderr)
      assert.match(
        moved.stderr,
        new RegExp(
          `^fleetcache: seed: the build in ${escape(copied)} records distDir 'dist/next' \\(its required-server-files\\.json\\): a server of that config reads ${escape(path.join(app, 'dist', 'next'))}, which holds no build; pass ${escape(copied)} to seed it all the same\\n`,
        ),
      )
      assert.equal((await cli(['seed', copied])).code, 0)
      // FLEETCACHE_DIST_DIR naming a directory without a build: said, not searched around.
      const wrong = await cli(['seed', app], { FLEETCACHE_DIST_DIR: 'nowhere' })
      assert.equal(wrong.code, 2, wrong.stderr)
      assert.match(
        wrong.stderr,
        new RegExp(
          `^fleetcache: seed: no Next\\.js build in ${escape(path.join(app, 'nowhere'))} \\(FLEETCACHE_DIST_DIR\\)\\n`,
        ),
      )
    } finally {
      fs.rmSync(app, { recursive: true, force: true })
    }
  })

  // distDir: 'out/build' (two levels down) and a `.next` an older build left: `seed .` took
  // that `.next` without a word, the case the search for builds refuses one level down. A
  // build lying where its own required-server-files.json says (from the directory searched) is
  // the app's, however deep; one lying elsewhere (a fixture's copy) is not.
  test('a build under a distDir two levels down is found, and refused beside an older .next', async () => {
    const app = fs.mkdtempSync(path.join(logDir, 'nested-'))
    const build = (rel, id, recorded) => recordedBuild(app, rel, id, recorded)
    try {
      const old = build('.next', 'old', '.next')
      const current = build(path.join('out', 'build'), 'new', 'out/build')
      build(path.join('fixtures', 'copy', '.next'), 'fixture', '.next')
      // A standalone tree of it: server.js's directory, with the build at out/build inside.
      const standalone = path.join(current, 'standalone')
      build(path.join('out', 'build', 'standalone', 'out', 'build'), 'new', 'out/build')
      await redis.command('FLUSHALL')
      const both = await cli(['seed', app])
      assert.equal(both.code, 2, both.stderr)
      assert.match(both.stderr, new RegExp(twoBuilds(app, old, current)))
      assert.equal(Number(await redis.command('DBSIZE')), 0, 'nothing seeded')
      fs.rmSync(old, { recursive: true })
      const alone = await cli(['seed', app])
      assert.equal(alone.code, 0, alone.stderr)
      assert.ok(namespace(alone.stderr).includes(`:new (deployment from ${current}`), alone.stderr)
      const tree = await cli(['seed', standalone])
      assert.equal(tree.code, 0, tree.stderr)
      assert.match(namespace(tree.stderr), /:new \(deployment from /)
    } finally {
      fs.rmSync(app, { recursive: true, force: true })
    }
  })

  // A deploy that keeps its builds elsewhere and links the app's `.next` to the current one
  // (`.next -> /releases/<n>/.next`): `seed <app>` took it up to the search for builds, which
  // looked at directories only and refused (exit 2: no build), though a server reads it.
  test('an app directory whose .next is a symlink to the build is seeded from it', async () => {
    const app = fs.mkdtempSync(path.join(logDir, 'linked-'))
    const release = fs.mkdtempSync(path.join(logDir, 'release-'))
    try {
      writeBuild(path.join(release, '.next'), Date.now() - 60_000)
      fs.symlinkSync(path.join(release, '.next'), path.join(app, '.next'))
      // A file and a dangling link beside it are no builds, and no reason to fail.
      fs.writeFileSync(path.join(app, 'package.json'), '{}')
      fs.symlinkSync(path.join(release, 'gone'), path.join(app, 'gone'))
      await redis.command('FLUSHALL')
      const r = await cli(['seed', app, '--deployment', DEPLOYMENT])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /^seeded 1 prerendered route for deployment seed-test\n$/)
      const line = r.stderr.split('\n').find((l) => l.includes('] namespace ')) ?? ''
      assert.ok(line.includes(`:${DEPLOYMENT} (deployment from --deployment)`), r.stderr)
    } finally {
      fs.rmSync(app, { recursive: true, force: true })
      fs.rmSync(release, { recursive: true, force: true })
    }
  })

  // A standalone server.js replaces an exported NEXT_DEPLOYMENT_ID with the deploymentId its
  // build recorded (or '' and then the build id); `next start` keeps the exported one. The seed
  // cannot tell which will run the build: it takes the variable, as `next start` does, and says
  // what a standalone fleet would read instead.
  test('a NEXT_DEPLOYMENT_ID other than the deploymentId the build recorded is warned about', async () => {
    writeBuild(dist, Date.now() - 60_000)
    const file = path.join(dist, 'required-server-files.json')
    const warning = (stderr) => stderr.split('\n').filter((l) => l.includes('warning'))
    try {
      fs.writeFileSync(file, JSON.stringify({ version: 1, config: { deploymentId: 'v42' } }))
      const differs = await cli(['seed', dist], { NEXT_DEPLOYMENT_ID: 'n7' })
      assert.equal(differs.code, 0, differs.stderr)
      assert.deepEqual(warning(differs.stderr), [
        `fleetcache: warning: seeding namespace ${PREFIX}:n7 (deployment n7 from NEXT_DEPLOYMENT_ID, as next start of this build reads it); a standalone server.js of this build replaces NEXT_DEPLOYMENT_ID with the deploymentId the build recorded, v42 (${file}), and reads namespace ${PREFIX}:v42: for a standalone fleet, seed with --deployment v42, or without NEXT_DEPLOYMENT_ID`,
      ])
      // The build recorded none: a standalone server takes the build id.
      fs.writeFileSync(file, JSON.stringify({ version: 1, config: {} }))
      const none = await cli(['seed', dist], { NEXT_DEPLOYMENT_ID: 'n7' })
      assert.deepEqual(warning(none.stderr), [
        `fleetcache: warning: seeding namespace ${PREFIX}:n7 (deployment n7 from NEXT_DEPLOYMENT_ID, as next start of this build reads it); a standalone server.js of this build empties NEXT_DEPLOYMENT_ID, the build having recorded no deploymentId (${file}), and reads namespace ${PREFIX}:b1 (${path.join(dist, 'BUILD_ID')}): for a standalone fleet, seed with --deployment b1, or without NEXT_DEPLOYMENT_ID`,
      ])
      // Nothing to say: the same id, the id given another way, or the variable not read.
      fs.writeFileSync(file, JSON.stringify({ version: 1, config: { deploymentId: 'v42' } }))
      const quiet = [
        [[], { NEXT_DEPLOYMENT_ID: 'v42' }],
        [[], {}],
        [['--deployment', 'n7'], { NEXT_DEPLOYMENT_ID: 'n7' }],
        [[], { FLEETCACHE_DEPLOYMENT_ID: 'f3', NEXT_DEPLOYMENT_ID: 'n7' }],
      ]
      for (const [args, env] of quiet) {
        const r = await cli(['seed', dist, ...args], env)
        assert.equal(r.code, 0, r.stderr)
        assert.deepEqual(warning(r.stderr), [], JSON.stringify(env))
      }
      // With --quiet too: a warning is not progress.
      const q = await cli(['seed', dist, '--quiet'], { NEXT_DEPLOYMENT_ID: 'n7' })
      assert.equal(warning(q.stderr).length, 1, q.stderr)
    } finally {
      fs.rmSync(file, { force: true })
    }
  })

  // With experimental.useSkewCookie, Next's server sets NEXT_DEPLOYMENT_ID to '' whatever the
  // config or the environment held, before it loads the handlers (base-server.js, from 16.1.0;
  // 16.0.x: the next test), and they take the deploymentId the build recorded: its build id is
  // the same in every build that sets one (16.2.0 on), so the seed must not write there either.
  test('a build with useSkewCookie is seeded under its recorded deploymentId, as its servers read', async () => {
    writeBuild(dist, Date.now() - 60_000)
    const file = path.join(dist, 'required-server-files.json')
    fs.writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        config: { deploymentId: 'v42', experimental: { useSkewCookie: true } },
      }),
    )
    try {
      const line = async (env) =>
        (await runSeed([], env)).stderr.split('\n').find((l) => l.includes('] namespace '))
      const fromRecord = new RegExp(
        `namespace ${PREFIX}:v42 \\(deployment from deploymentId in ${escape(file)}\\)`,
      )
      assert.match(await line(), fromRecord)
      assert.match(await line({ NEXT_DEPLOYMENT_ID: 'n7' }), fromRecord)
      // FLEETCACHE_DEPLOYMENT_ID is fleetcache's own: Next does not touch it.
      assert.match(
        await line({ FLEETCACHE_DEPLOYMENT_ID: 'f3' }),
        /:f3 \(deployment from FLEETCACHE_DEPLOYMENT_ID\)/,
      )
      // The variable it was given and did not use is said, once, with the namespace used and
      // why (before, nothing said it was ignored); not when it took another id over it anyway,
      // nor when it was given none; with --quiet too (a note is not progress).
      const notes = async (env, args = []) =>
        (await runSeed(args, env)).stderr.split('\n').filter((l) => l.includes('note:'))
      const expected = [
        `fleetcache: note: NEXT_DEPLOYMENT_ID (n7) ignored: this build sets experimental.useSkewCookie, ` +
          `so its servers (Next 16.1 on) empty NEXT_DEPLOYMENT_ID before fleetcache loads and read ` +
          `deployment v42 (deploymentId in ${file}); seeding namespace ${PREFIX}:v42`,
      ]
      assert.deepEqual(await notes({ NEXT_DEPLOYMENT_ID: 'n7' }), expected)
      assert.deepEqual(await notes({ NEXT_DEPLOYMENT_ID: 'n7' }, ['--quiet']), expected)
      assert.deepEqual(await notes({}), [])
      assert.deepEqual(
        await notes({ NEXT_DEPLOYMENT_ID: 'n7', FLEETCACHE_DEPLOYMENT_ID: 'f3' }),
        [],
      )
      assert.deepEqual(await notes({ NEXT_DEPLOYMENT_ID: 'v42' }), [])
    } finally {
      fs.rmSync(file, { force: true })
    }
  })

  // 16.0.x has useSkewCookie too (config-schema.js) but its server sets NEXT_DEPLOYMENT_ID from
  // the config whatever that option says (base-server.js, 16.0.0 and 16.0.11; the '' for
  // useSkewCookie came in 16.1.0): `next start` of a 16.0 build reads an exported variable as
  // any other build's does. The seed skipped the variable for every useSkewCookie build, and
  // wrote where no `next start` of a 16.0 build given it reads.
  test('a 16.0 build with useSkewCookie is seeded as its servers read, the variable included', async () => {
    writeBuild(dist, Date.now() - 60_000)
    const file = path.join(dist, 'required-server-files.json')
    const framework = path.join(dist, 'diagnostics', 'framework.json')
    fs.writeFileSync(
      file,
      JSON.stringify({
        version: 1,
        config: { deploymentId: 'v42', experimental: { useSkewCookie: true } },
      }),
    )
    const built = (version) => {
      fs.mkdirSync(path.dirname(framework), { recursive: true })
      fs.writeFileSync(framework, JSON.stringify({ name: 'Next.js', version }))
    }
    try {
      const run = async (env) => {
        const r = await cli(['seed', dist], env)
        assert.equal(r.code, 0, r.stderr)
        const lines = r.stderr.split('\n')
        return {
          line: lines.find((l) => l.includes('] namespace ')) ?? '',
          warnings: lines.filter((l) => l.includes('warning')),
        }
      }
      const fromRecord = `:v42 (deployment from deploymentId in ${file})`
      for (const version of ['16.0.0', '16.0.11']) {
        built(version)
        const given = await run({ NEXT_DEPLOYMENT_ID: 'n7' })
        assert.ok(given.line.includes(':n7 (deployment from NEXT_DEPLOYMENT_ID)'), given.line)
        // A standalone server.js of it reads the recorded one, as for any other build.
        assert.equal(given.warnings.length, 1, given.warnings.join('\n'))
        assert.match(given.warnings[0], new RegExp(`reads namespace ${PREFIX}:v42`))
        assert.ok((await run({})).line.includes(fromRecord), version)
      }
      // From 16.1.0 (and with no release named) the server empties the variable.
      for (const version of ['16.1.0', undefined]) {
        if (version === undefined) fs.rmSync(framework)
        else built(version)
        const given = await run({ NEXT_DEPLOYMENT_ID: 'n7' })
        assert.ok(given.line.includes(fromRecord), `${version}: ${given.line}`)
        assert.deepEqual(given.warnings, [])
      }
    } finally {
      fs.rmSync(file, { force: true })
      fs.rmSync(path.join(dist, 'diagnostics'), { recursive: true, force: true })
    }
  })

  // With experimental.runtimeServerDeploymentId, the server takes NEXT_DEPLOYMENT_ID from its
  // environment as it is (it refuses to start without it), useSkewCookie or not, and the build
  // records deploymentId '' (base-server.js, config-shared.js's getNextConfigRuntime, 16.4.6):
  // a standalone server.js reads the variable as next start does. The seed warned that it
  // would read the build id, and with useSkewCookie seeded under the build id itself.
  test('a build with runtimeServerDeploymentId is seeded under NEXT_DEPLOYMENT_ID, without a warning', async () => {
    writeBuild(dist, Date.now() - 60_000)
    const file = path.join(dist, 'required-server-files.json')
    const write = (experimental) =>
      fs.writeFileSync(
        file,
        JSON.stringify({ version: 1, config: { deploymentId: '', experimental } }),
      )
    try {
      for (const experimental of [
        { runtimeServerDeploymentId: true },
        { runtimeServerDeploymentId: true, useSkewCookie: true },
      ]) {
        write(experimental)
        const r = await cli(['seed', dist], { NEXT_DEPLOYMENT_ID: 'n7' })
        assert.equal(r.code, 0, r.stderr)
        const lines = r.stderr.split('\n')
        assert.deepEqual(
          lines.filter((l) => l.includes('warning')),
          [],
          JSON.stringify(experimental),
        )
        const line = lines.find((l) => l.includes('] namespace ')) ?? ''
        assert.match(
          line,
          /:n7 \(deployment from NEXT_DEPLOYMENT_ID\)/,
          JSON.stringify(experimental),
        )
      }
    } finally {
      fs.rmSync(file, { force: true })
    }
  })

  test('--quiet leaves stderr to errors: no namespace line, no progress, no timing line', async () => {
    writeBuild(dist, Date.now() - 60_000)
    const seedArgs = ['seed', dist, '--deployment', DEPLOYMENT]
    // Without --quiet the lines it removes are there.
    await redis.command('FLUSHALL')
    const loud = await cli(seedArgs)
    assert.equal(loud.code, 0, loud.stderr)
    assert.match(loud.stderr, /\] namespace /)
    assert.match(loud.stderr, /^seeded 1 routes? in [\d.]+ s$/m)
    await redis.command('FLUSHALL')
    // The result still goes to stdout (the exact words: the next test).
    const seeded = await cli([...seedArgs, '--quiet'])
    assert.equal(seeded.code, 0, seeded.stderr)
    assert.equal(seeded.stderr, '')
    assert.match(
      seeded.stdout,
      new RegExp(`^seeded 1 prerendered routes? for deployment ${DEPLOYMENT}\n$`),
    )
    const purged = await cli(['purge', '--deployment', DEPLOYMENT, '--quiet'])
    assert.equal(purged.code, 0, purged.stderr)
    assert.equal(purged.stderr, '')
    assert.match(purged.stdout, new RegExp(`^deleted 1 keys? of deployment ${DEPLOYMENT}\n$`))
    // An error still reaches stderr (a directory with no build is a usage error).
    const failed = await cli(['seed', path.join(logDir, 'no-such-dir'), '--quiet'])
    assert.equal(failed.code, 2)
    assert.match(failed.stderr, /^fleetcache: .*no-such-dir/)
  })

  // Run in the app's directory, the seed finds the build's durable 'use cache' setting as a
  // server there would; the server's warning about the variables in those keys is not the
  // seed's to print (it writes no 'use cache' entry).
  test("a seed run in an app directory does not print the server's durable-keys warning", async () => {
    const app = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-seed-app-'))
    try {
      const appDist = path.join(app, '.next')
      writeBuild(appDist, Date.now() - 60_000)
      fs.mkdirSync(path.join(app, 'node_modules', 'next'), { recursive: true })
      fs.writeFileSync(
        path.join(app, 'node_modules', 'next', 'package.json'),
        JSON.stringify({ name: 'next', version: '16.5.0' }),
      )
      fs.writeFileSync(
        path.join(appDist, 'required-server-files.json'),
        JSON.stringify({ version: 1, config: { experimental: { durableUseCacheEntries: true } } }),
      )
      fs.writeFileSync(
        path.join(appDist, 'server', 'server-reference-manifest.json'),
        JSON.stringify({
          node: { fn: { durability: { d: { runtimeEnvVarsRead: ['HOSTNAME'] } } } },
        }),
      )
      const base = Object.fromEntries(
        Object.entries(process.env).filter(
          ([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k),
        ),
      )
      const env = { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: PREFIX }
      // A server started there warns (the fixture is one that does).
      const handler = require.resolve('../dist/index.js')
      const server = await run(
        process.execPath,
        ['-e', `require(${JSON.stringify(handler)}).createUseCacheHandler({ prefix: 'x' })`],
        { cwd: app, env, timeout: 60_000 },
      )
      assert.match(server.stderr, /include the values of HOSTNAME \(environment variables/)
      const seeded = await run(process.execPath, [CLI, 'seed', '.next'], {
        cwd: app,
        env,
        timeout: 60_000,
      })
      // The seed read the setting (its namespace line says where 'use cache' entries go) ...
      assert.match(seeded.stderr, /'use cache' entries under /)
      // (A relative build directory is named resolved, as a server's start line names it.)
      const buildIdFile = path.join(fs.realpathSync(app), '.next', 'BUILD_ID')
      assert.ok(seeded.stderr.includes(`(deployment from ${buildIdFile})`), seeded.stderr)
      // ... and printed no warning about it.
      assert.doesNotMatch(seeded.stderr, /environment variables/)
      assert.match(seeded.stdout, /^seeded 1 prerendered route for deployment b1\n$/)
    } finally {
      fs.rmSync(app, { recursive: true, force: true })
    }
  })

  // Whether 'use cache' keys are durable (the namespace line says where those entries go) is
  // the seeded build's: the directory the command is given, not the one it runs in.
  test("the namespace line follows the seeded build's durable 'use cache' setting, not the working directory's", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-seed-apps-'))
    try {
      /** An app directory whose build has `experimental.durableUseCacheEntries` at `durable`. */
      const app = (name, durable) => {
        const dir = path.join(root, name)
        writeBuild(path.join(dir, '.next'), Date.now() - 60_000)
        fs.writeFileSync(
          path.join(dir, '.next', 'required-server-files.json'),
          JSON.stringify({
            version: 1,
            config: { experimental: { durableUseCacheEntries: durable } },
          }),
        )
        return dir
      }
      // Found from either app's directory (16.4.0 on keys durably when the setting is on).
      fs.mkdirSync(path.join(root, 'node_modules', 'next'), { recursive: true })
      fs.writeFileSync(
        path.join(root, 'node_modules', 'next', 'package.json'),
        JSON.stringify({ name: 'next', version: '16.5.0' }),
      )
      const durableApp = app('durable', true)
      const plainApp = app('plain', false)
      const base = Object.fromEntries(
        Object.entries(process.env).filter(
          ([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k),
        ),
      )
      const env = { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: PREFIX }
      const namespaceLine = async (cwd, target) => {
        const r = await run(process.execPath, [CLI, 'seed', target], { cwd, env, timeout: 60_000 })
        const line = r.stderr.split('\n').find((l) => l.includes('] namespace '))
        assert.ok(line, `a namespace line in:\n${r.stderr}`)
        return line
      }
      // Run elsewhere, given the durable build: its entries go under the release.
      assert.match(
        await namespaceLine(root, path.join(durableApp, '.next')),
        /'use cache' entries under /,
      )
      // Run in the durable app, given the other build: under the deployment, as its servers.
      assert.doesNotMatch(
        await namespaceLine(durableApp, path.join(plainApp, '.next')),
        /'use cache' entries under /,
      )
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  })

  // The release is the seeded build's (diagnostics/framework.json): the `next` the working
  // directory resolves may be another one, or none; the namespace line shows what the seed
  // derived from it ('use cache' keys under the release from 16.4.0 on, docs/decisions/0024).
  test("the release is the seeded build's, not the one the working directory resolves", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-seed-release-'))
    try {
      /** A durable Turbopack build by Next `version`, in `<root>/<name>/.next`. */
      const build = (name, version) => {
        const d = path.join(root, name, '.next')
        writeBuild(d, Date.now() - 60_000)
        fs.mkdirSync(path.join(d, 'diagnostics'), { recursive: true })
        fs.writeFileSync(
          path.join(d, 'diagnostics', 'framework.json'),
          JSON.stringify({ name: 'Next.js', version }),
        )
        fs.writeFileSync(
          path.join(d, 'required-server-files.json'),
          JSON.stringify({
            version: 1,
            config: { experimental: { durableUseCacheEntries: true } },
          }),
        )
        return d
      }
      /** A directory whose `next` is `version` (none when undefined). */
      const cwd = (name, version) => {
        const d = path.join(root, name)
        fs.mkdirSync(d, { recursive: true })
        if (version !== undefined) {
          fs.mkdirSync(path.join(d, 'node_modules', 'next'), { recursive: true })
          fs.writeFileSync(
            path.join(d, 'node_modules', 'next', 'package.json'),
            JSON.stringify({ name: 'next', version }),
          )
        }
        return d
      }
      const base = Object.fromEntries(
        Object.entries(process.env).filter(
          ([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k),
        ),
      )
      const env = { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: PREFIX }
      const namespaceLine = async (dir, target) => {
        // Each run stores the page (none is kept from the last one).
        await redis.command('FLUSHALL')
        const r = await run(process.execPath, [CLI, 'seed', target], {
          cwd: dir,
          env,
          timeout: 60_000,
        })
        assert.match(r.stdout, /^seeded 1 prerendered route for deployment b1\n$/)
        const line = r.stderr.split('\n').find((l) => l.includes('] namespace '))
        assert.ok(line, `a namespace line in:\n${r.stderr}`)
        return line
      }
      const by165 = build('built-16.5.0', '16.5.0')
      const by163 = build('built-16.3.8', '16.3.8')
      // The release's segment, whatever the working directory resolves.
      const under165 = new RegExp(`'use cache' entries under ${PREFIX}:next-16\\.5\\.0 `)
      assert.match(await namespaceLine(cwd('older', '16.4.6'), by165), under165)
      assert.match(await namespaceLine(cwd('newer', '16.6.0'), by165), under165)
      // fleetcache's own directory resolves no `next` either (an optional peer dependency).
      assert.match(await namespaceLine(cwd('none', undefined), by165), under165)
      // Before 16.4.0 the setting does not exist: the build's entries stay under the
      // deployment, though the working directory's release would key them durably.
      assert.doesNotMatch(
        await namespaceLine(cwd('newer', '16.6.0'), by163),
        /'use cache' entries under /,
      )
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  })

  test('purge --dry-run stopped by --max-keys says so, and says nothing of the kinds it may not have reached', async () => {
    // Before: 'dry run: 2 keys ... would be deleted (its entries and leases)', the record of
    // builds past the cut left unsaid and the cut too, where the deleting run says 'run again'.
    await redis.command('FLUSHALL')
    const record = `${PREFIX}:${DEPLOYMENT}:builds`
    for (let i = 0; i < 6; i++)
      await redis.command('SET', `${PREFIX}:${DEPLOYMENT}:inc:{k${String(i)}}:e`, 'x')
    await redis.command('HSET', record, 'b1', '1')
    const dry = await cli(['purge', '--deployment', DEPLOYMENT, '--dry-run', '--max-keys', '2'])
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(
      dry.stdout,
      /^dry run: \d+ keys of deployment \S+ would be deleted, and more: stopped at --max-keys\n$/,
    )
    assert.equal(
      JSON.parse(
        (await cli(['purge', '--deployment', DEPLOYMENT, '--dry-run', '--max-keys', '2', '--json']))
          .stdout,
      ).dryRun,
      true,
    )
    await redis.command('FLUSHALL')
  })

  test('counts the CLI prints are singular for one and plural otherwise', async () => {
    writeBuild(dist, Date.now() - 60_000)
    await redis.command('FLUSHALL')
    const one = await cli(['seed', dist, '--deployment', DEPLOYMENT])
    assert.equal(one.stdout, `seeded 1 prerendered route for deployment ${DEPLOYMENT}\n`)
    assert.match(one.stderr, /^seeded 1 route in /m)
    const dry = await cli(['purge', '--deployment', DEPLOYMENT, '--dry-run'])
    // The seed writes no record of builds: the line names none (before, it named the record's
    // key whether or not it was there, also when it found 0 keys).
    assert.equal(
      dry.stdout,
      `dry run: 1 key of deployment ${DEPLOYMENT} would be deleted (its entries and leases)\n`,
    )
    assert.match(dry.stderr, new RegExp(`^found 1 key of deployment ${DEPLOYMENT} in `, 'm'))
    const purged = await cli(['purge', '--deployment', DEPLOYMENT])
    assert.equal(purged.stdout, `deleted 1 key of deployment ${DEPLOYMENT}\n`)
    assert.match(purged.stderr, new RegExp(`^deleted 1 key of deployment ${DEPLOYMENT} in `, 'm'))
    const none = await cli(['purge', '--deployment', DEPLOYMENT])
    assert.equal(none.stdout, `deleted 0 keys of deployment ${DEPLOYMENT}\n`)
    const dryNone = await cli(['purge', '--deployment', DEPLOYMENT, '--dry-run'])
    assert.equal(dryNone.stdout, `dry run: 0 keys of deployment ${DEPLOYMENT} would be deleted\n`)
    // A record of builds (as a server writes it) is named when it is there.
    const record = `${PREFIX}:${DEPLOYMENT}:builds`
    await redis.command('HSET', record, 'b1', '1')
    const dryRecord = await cli(['purge', '--deployment', DEPLOYMENT, '--dry-run'])
    assert.equal(
      dryRecord.stdout,
      `dry run: 1 key of deployment ${DEPLOYMENT} would be deleted (its record of builds, ${record})\n`,
    )
    await redis.command('DEL', record)
    await cli(['seed', dist, '--deployment', DEPLOYMENT])
    const kept = await cli(['seed', dist, '--deployment', DEPLOYMENT])
    assert.match(
      kept.stdout,
      new RegExp(`^seeded 0 prerendered routes for deployment ${DEPLOYMENT}\n`),
    )
    assert.match(kept.stderr, /^seeded 0 routes in /m)
  })
})

// What `next build` of each release leaves in .next, reduced to the files seed reads: before
// 16.3.8 no `.meta` has `routeCache` and a server asks for the prerender's own path
// (`/index` for `/`); from 16.3.8 with `adapterPath` the prerenders are under server/route-cache/.
describe('seed reads the keys each Next release asks for', () => {
  let root
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-seed-keys-'))
  })
  after(() => fs.rmSync(root, { recursive: true, force: true }))

  function tree(name, { version, routeCache }) {
    const dir = path.join(root, name)
    const put = (rel, body) => {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true })
      fs.writeFileSync(path.join(dir, rel), body)
    }
    put('BUILD_ID', 'b1')
    if (version) put('diagnostics/framework.json', JSON.stringify({ name: 'Next.js', version }))
    put(
      'prerender-manifest.json',
      JSON.stringify({
        routes: {
          '/': { initialRevalidateSeconds: false },
          '/isr': { initialRevalidateSeconds: 3600 },
          '/api/data': { initialRevalidateSeconds: 60 },
        },
        dynamicRoutes: { '/blog/[slug]': { fallback: '/blog/[slug].html' } },
      }),
    )
    const meta = (kind, key, isFallback = false) =>
      JSON.stringify(routeCache ? { routeCache: { key, owner: { kind }, isFallback } } : {})
    put('server/app/index.html', '<p>home</p>')
    put('server/app/index.rsc', 'rsc')
    put('server/app/index.meta', meta('APP_PAGE', '/route-cache/APP_PAGE/h1/$/index'))
    put('server/app/api/data.body', '{"ok":true}')
    put('server/app/api/data.meta', meta('APP_ROUTE', '/route-cache/APP_ROUTE/h2/$/api/data'))
    put('server/app/blog/[slug].html', '<p>shell</p>')
    put('server/app/blog/[slug].rsc', 'rsc')
    put(
      'server/app/blog/[slug].meta',
      meta('APP_PAGE', '/route-cache/APP_PAGE/h3/$/blog/[slug]', true),
    )
    put('server/pages/isr.html', '<p>isr</p>')
    put('server/pages/isr.json', '{"pageProps":{}}')
    // Pages Router prerenders got a .meta in 16.3.8, with routeCache.
    if (routeCache) put('server/pages/isr.meta', meta('PAGES', '/route-cache/PAGES/h4/$/isr'))
    return dir
  }
  const keys = (r) => r.seeds.map((s) => [s.route, s.key, s.ctx.kind]).sort()

  test('before 16.3.8: the prerender path, kind from its files, fallback shells left out', () => {
    const r = readSeeds(tree('16.0.11', { version: '16.0.11', routeCache: false }))
    assert.deepEqual(keys(r), [
      ['/', '/index', 'APP_PAGE'],
      ['/api/data', '/api/data', 'APP_ROUTE'],
      ['/isr', '/isr', 'PAGES'],
    ])
    assert.deepEqual(r.skipped, ['/blog/[slug]: fallback shell'])
    assert.equal(r.seeds.find((s) => s.route === '/isr').ctx.cacheControl.revalidate, 3600)
  })

  test('from 16.3.8: routeCache.key; a .meta without one is refused, naming the release', () => {
    const r = readSeeds(tree('16.3.8', { version: '16.3.8', routeCache: true }))
    assert.deepEqual(keys(r), [
      ['/', '/route-cache/APP_PAGE/h1/$/index', 'APP_PAGE'],
      ['/api/data', '/route-cache/APP_ROUTE/h2/$/api/data', 'APP_ROUTE'],
      ['/isr', '/route-cache/PAGES/h4/$/isr', 'PAGES'],
    ])
    const bare = readSeeds(tree('16.3.8-bare', { version: '16.3.8', routeCache: false }))
    assert.equal(bare.seeds.length, 0)
    assert.ok(
      bare.skipped.includes(
        '/: its .meta has no routeCache key, which Next.js 16.3.8 writes for every prerender it reads back',
      ),
      bare.skipped.join('\n'),
    )
    const unknown = readSeeds(tree('unknown', { routeCache: false }))
    assert.equal(unknown.seeds.length, 0)
    assert.match(unknown.skipped[0], /no diagnostics\/framework\.json says which Next\.js release/)
  })

  test('from 16.3.8 with adapterPath: prerenders under server/route-cache/, once per key', () => {
    const dir = tree('adapter', { version: '16.3.8', routeCache: true })
    const key = '/route-cache/PAGES/h5/$/other'
    const scoped = path.join(dir, 'server', 'route-cache', 'PAGES', 'h5', '$')
    fs.mkdirSync(scoped, { recursive: true })
    fs.writeFileSync(path.join(scoped, 'other.html'), '<p>other</p>')
    fs.writeFileSync(path.join(scoped, 'other.json'), '{"pageProps":{}}')
    const m = JSON.stringify({ routeCache: { key, owner: { kind: 'PAGES' } } })
    fs.writeFileSync(path.join(scoped, 'other.meta'), m)
    // The same prerender in both places (legacy path and scoped path) is one seed.
    const twin = path.join(dir, 'server', 'route-cache', 'PAGES', 'h4', '$')
    fs.mkdirSync(twin, { recursive: true })
    for (const ext of ['html', 'json', 'meta'])
      fs.copyFileSync(
        path.join(dir, 'server', 'pages', `isr.${ext}`),
        path.join(twin, `isr.${ext}`),
      )
    const r = readSeeds(dir)
    assert.deepEqual(
      keys(r).filter(([, , kind]) => kind === 'PAGES'),
      [
        ['/isr', '/route-cache/PAGES/h4/$/isr', 'PAGES'],
        ['/other', key, 'PAGES'],
      ],
    )
  })
})
