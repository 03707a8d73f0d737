// Two builds under one deployment id serve each other's entries as hits: from Next 16.3.8 on,
// page, route and fetch keys are the same in every release, so a 16.4.6 server served a 16.5.0
// build's pages (HTML naming the other build's script chunks) and RSC payloads of another build
// id. docs/configuration.md told users to give each deploy its own id, but nothing detected a
// fleet that did not: each server process now records its build (Next release and build id)
// under its deployment, `<prefix>:<deployment>:builds`, and warns once per other live build.
//
// Server processes here are children started in fake app directories (`.next/BUILD_ID`, a
// `node_modules/next/package.json` for the release), as Next loads the handler module. Renewals
// come every `maxTtlSeconds / 2` (at most an hour): FLEETCACHE_MAX_TTL_SECONDS=2 makes them a
// second apart, and the tests wait for the children's debug lines, never for time.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { startRedis } from '../../tests/support/redis.mjs'

const require = createRequire(import.meta.url)
const { buildRecord } = require('../dist/build-record.js')
const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const run = promisify(execFile)
/** The debug line each check of the record writes (build-record.ts). */
const CHECKED = /\[fleetcache\] builds under /
const WARNING = /serve under one deployment id/

let redis
let dir
const children = new Set()

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-build-guard-'))
  redis = await startRedis({ logDir: dir })
})

after(async () => {
  for (const c of children) c.kill('SIGKILL')
  await redis?.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** A fake app directory: `.next/BUILD_ID` and the `next` it resolves (its release). */
function app(buildId, release) {
  const d = fs.mkdtempSync(path.join(dir, 'app-'))
  fs.mkdirSync(path.join(d, '.next'))
  if (buildId !== undefined) fs.writeFileSync(path.join(d, '.next', 'BUILD_ID'), buildId)
  fs.mkdirSync(path.join(d, 'node_modules', 'next'), { recursive: true })
  fs.writeFileSync(
    path.join(d, 'node_modules', 'next', 'package.json'),
    JSON.stringify({ name: 'next', version: release }),
  )
  return d
}

/**
 * A server process: loads the handler module from `cwd` with `env`, reads one key (so Redis is
 * connected), and stays up until `stop()`, which closes the handlers and resolves once it exits.
 * `lines(re)` counts its output lines matching `re`; `waitFor(re, n)` resolves once `n` have.
 */
function server(cwd, env) {
  const script = `
    const { close } = require(${JSON.stringify(require.resolve('../dist/index.js'))})
    const handler = require(${JSON.stringify(require.resolve('../dist/use-cache.js'))})
    void (handler.default ?? handler).get('probe', [])
    process.stdin.on('data', () => undefined)
    process.stdin.on('end', () => void close().then(() => process.exit(0)))
  `
  const child = spawn(process.execPath, ['-e', script], {
    cwd,
    env: { PATH: process.env.PATH, FLEETCACHE_DEBUG: '1', REDIS_URL: redis.url, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  children.add(child)
  let out = ''
  const waiting = []
  const check = () => {
    for (const w of [...waiting]) {
      if (count(w.re) >= w.n) {
        waiting.splice(waiting.indexOf(w), 1)
        w.resolve()
      }
    }
  }
  const count = (re) => out.split('\n').filter((l) => re.test(l)).length
  for (const s of [child.stdout, child.stderr]) {
    s.setEncoding('utf8')
    s.on('data', (d) => {
      out += d
      check()
    })
  }
  const exited = new Promise((resolve) => child.on('exit', resolve))
  exited.then(() => {
    for (const w of waiting) w.reject(new Error(`exited before ${w.n} of ${w.re}:\n${out}`))
  })
  return {
    get output() {
      return out
    },
    lines: (re) => out.split('\n').filter((l) => re.test(l)),
    waitFor: (re, n = 1) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${String(n)} lines of ${re} within 20 s:\n${out}`)),
          20_000,
        )
        const done = (f) => (v) => {
          clearTimeout(timer)
          f(v)
        }
        waiting.push({ re, n, resolve: done(resolve), reject: done(reject) })
        check()
      }),
    stop: async () => {
      child.stdin.end()
      const code = await exited
      children.delete(child)
      assert.equal(code, 0, out)
    },
  }
}

test('two builds under one deployment id: each warns once, naming the other', async () => {
  const env = { FLEETCACHE_DEPLOYMENT_ID: 'shared', FLEETCACHE_MAX_TTL_SECONDS: '2' }
  const a = server(app('build-a', '16.3.8'), env)
  await a.waitFor(CHECKED)
  const b = server(app('build-b', '16.5.0'), env)
  await b.waitFor(CHECKED)
  // B found A's record at once; A finds B's at its next renewal.
  await a.waitFor(WARNING)
  // Two more renewals each: still one warning each.
  await a.waitFor(CHECKED, a.lines(CHECKED).length + 2)
  await b.waitFor(CHECKED, b.lines(CHECKED).length + 2)
  for (const [self, mine, theirs] of [
    [a, 'Next 16.3.8, build id build-a', 'Next 16.5.0, build id build-b'],
    [b, 'Next 16.5.0, build id build-b', 'Next 16.3.8, build id build-a'],
  ]) {
    const warned = self.lines(WARNING)
    assert.equal(warned.length, 1, self.output)
    assert.ok(warned[0].includes(`this process, ${mine}, and another, ${theirs};`), warned[0])
    assert.ok(warned[0].includes('"shared"'), warned[0])
    assert.ok(warned[0].includes("each other's entries"), warned[0])
    assert.ok(warned[0].includes('docs/configuration.md#deployment-namespace'), warned[0])
  }
  // The whole line: where the id came from (the setting to change) and both fixes.
  assert.equal(
    b.lines(WARNING)[0],
    `[fleetcache] two builds serve under one deployment id "shared" (from FLEETCACHE_DEPLOYMENT_ID, namespace fleetcache:shared): this process, Next 16.5.0, build id build-b, and another, Next 16.3.8, build id build-a; they serve each other's entries as hits (HTML naming the other build's script chunks, RSC payloads of another build id); give each deploy its own deployment id, and separate builds of one deploy one build id (generateBuildId): https://github.com/fleetcache/fleetcache/blob/main/docs/configuration.md#deployment-namespace`,
  )
  const fields = await redis.command('HGETALL', 'fleetcache:shared:builds')
  assert.deepEqual(fields.filter((_, i) => i % 2 === 0).sort(), [
    '16.3.8 build-a',
    '16.5.0 build-b',
  ])
  await Promise.all([a.stop(), b.stop()])
})

test('the same build twice under one deployment id: no warning', async () => {
  const env = { FLEETCACHE_DEPLOYMENT_ID: 'same', FLEETCACHE_MAX_TTL_SECONDS: '2' }
  const c = server(app('build-c', '16.5.0'), env)
  await c.waitFor(CHECKED)
  const d = server(app('build-c', '16.5.0'), env)
  await d.waitFor(CHECKED)
  await c.waitFor(CHECKED, c.lines(CHECKED).length + 1)
  assert.equal(c.lines(WARNING).length, 0, c.output)
  assert.equal(d.lines(WARNING).length, 0, d.output)
  assert.deepEqual(
    (await redis.command('HGETALL', 'fleetcache:same:builds')).filter((_, i) => i % 2 === 0),
    ['16.5.0 build-c'],
  )
  await Promise.all([c.stop(), d.stop()])
})

test('a record past its time is no warning, and is removed', async () => {
  const key = 'fleetcache:gone:builds'
  await redis.command('HSET', key, '16.4.6 old-build', String(Date.now() - 1000))
  const e = server(app('build-e', '16.5.0'), { FLEETCACHE_DEPLOYMENT_ID: 'gone' })
  await e.waitFor(CHECKED)
  assert.equal(e.lines(WARNING).length, 0, e.output)
  assert.equal(await redis.command('HEXISTS', key, '16.4.6 old-build'), 0)
  // Its own: until now + maxTtlSeconds (default 30 days), and the key lives as long.
  const until = Number(await redis.command('HGET', key, '16.5.0 build-e'))
  const month = 30 * 86_400_000
  assert.ok(Math.abs(until - (Date.now() + month)) < 60_000, String(until))
  const pttl = Number(await redis.command('PTTL', key))
  assert.ok(pttl > month - 60_000 && pttl <= month, String(pttl))
  await e.stop()
})

test('many other builds under one id: one line, naming three and counting the rest', async () => {
  // One id kept across a month of daily deploys is some 30 builds in time: a line for each
  // was 30 long lines from every process that starts, thousands in a fleet's deploy.
  const key = 'fleetcache:many:builds'
  const until = String(Date.now() + 600_000)
  for (let i = 1; i <= 5; i++) await redis.command('HSET', key, `16.5.0 old-${String(i)}`, until)
  const g = server(app('build-g', '16.5.0'), { FLEETCACHE_DEPLOYMENT_ID: 'many' })
  await g.waitFor(WARNING)
  await g.waitFor(CHECKED)
  const warned = g.lines(WARNING)
  assert.equal(warned.length, 1, g.output)
  assert.match(
    warned[0],
    /this process, Next 16\.5\.0, build id build-g, and 5 others, Next 16\.5\.0, build id old-\d; Next 16\.5\.0, build id old-\d; Next 16\.5\.0, build id old-\d and 2 more;/,
  )
  await g.stop()
})

test('renewals keep the record alive past its first time', async () => {
  const key = 'fleetcache:renewed:builds'
  const f = server(app('build-f', '16.5.0'), {
    FLEETCACHE_DEPLOYMENT_ID: 'renewed',
    FLEETCACHE_MAX_TTL_SECONDS: '2',
  })
  await f.waitFor(CHECKED)
  const first = Number(await redis.command('HGET', key, '16.5.0 build-f'))
  // Renewals until one comes after the first record's time has passed.
  for (let n = 2; Date.now() <= first + 100; n++) await f.waitFor(CHECKED, n)
  const now = Date.now()
  const until = Number(await redis.command('HGET', key, '16.5.0 build-f'))
  assert.ok(until > now, `${String(until)} <= ${String(now)}`)
  assert.ok(Number(await redis.command('PTTL', key)) > 0)
  await f.stop()
})

test('no record without a build id (none found), and none without Redis', async () => {
  const none = server(app(undefined, '16.5.0'), {})
  await none.waitFor(/no deployment id and no build id/)
  const memory = server(app('build-g', '16.5.0'), { REDIS_URL: '' })
  await memory.waitFor(/in-process store/)
  await Promise.all([none.stop(), memory.stop()])
  assert.equal(none.lines(CHECKED).length, 0, none.output)
  assert.equal(memory.lines(CHECKED).length, 0, memory.output)
  assert.equal(await redis.command('EXISTS', 'fleetcache:default:builds'), 0)
})

test('stats ignore the record, purge deletes it with the entries and says so', async () => {
  const h = server(app('build-h', '16.5.0'), { FLEETCACHE_DEPLOYMENT_ID: 'purged' })
  await h.waitFor(CHECKED)
  await h.stop()
  const cli = async (...args) => {
    const r = await run(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH, REDIS_URL: redis.url },
      timeout: 60_000,
    })
    return r.stdout
  }
  const stats = JSON.parse(await cli('stats', '--json'))
  assert.ok(!stats.rows.some((r) => r.interface === 'builds'), JSON.stringify(stats.rows))
  // The record, and the lease of the read that missed.
  const [, keys] = await redis.command('SCAN', '0', 'MATCH', 'fleetcache:purged:*', 'COUNT', '1000')
  assert.ok(keys.includes('fleetcache:purged:builds'), keys.join(', '))
  const dry = await cli('purge', '--deployment', 'purged', '--dry-run')
  assert.ok(
    dry.includes(
      `dry run: ${String(keys.length)} keys of deployment purged would be deleted (its entries, leases and record of builds, fleetcache:purged:builds)`,
    ),
    dry,
  )
  await cli('purge', '--deployment', 'purged')
  assert.equal(await redis.command('EXISTS', ...keys), 0)
})

/**
 * The rules of docs/operating.md's `ACL SETUSER` line, after `on >password` (acl.test.mjs reads
 * it the same way): the least-privilege user the docs tell operators to create.
 */
function aclRulesOfDocs() {
  const doc = fs.readFileSync(new URL('../../docs/operating.md', import.meta.url), 'utf8')
  const line = doc.split('\n').find((l) => l.startsWith('ACL SETUSER fleetcache on >CHANGE-ME '))
  assert.ok(line, "docs/operating.md has the handlers' ACL SETUSER line")
  return line.split(' ').slice(5)
}

test('the documented ACL user records and reads the builds, with nothing in ACL LOG', async () => {
  await redis.command('ACL', 'SETUSER', 'fcbuilds', 'on', '>s3cret', ...aclRulesOfDocs())
  await redis.command('ACL', 'LOG', 'RESET')
  const url = new URL(redis.url)
  url.username = 'fcbuilds'
  url.password = 's3cret'
  const env = { FLEETCACHE_DEPLOYMENT_ID: 'acl', REDIS_URL: url.toString() }
  const i = server(app('build-i', '16.5.0'), env)
  await i.waitFor(CHECKED)
  const j = server(app('build-j', '16.5.0'), env)
  await j.waitFor(CHECKED)
  const log = await redis.command('ACL', 'LOG')
  await Promise.all([i.stop(), j.stop()])
  assert.deepEqual(log, [], `ACL LOG:\n${JSON.stringify(log)}\n${j.output}`)
  assert.equal(j.lines(WARNING).length, 1, j.output)
  assert.equal(j.lines(/not recorded/).length, 0, j.output)
})

/**
 * A record of the build `own` under `fc:<id>:builds`, on `transport` (a fake), logging every
 * line (debug included) into the array it returns with it.
 */
function fakeRecord(id, transport, extra = {}) {
  const logged = []
  const push = (m) => logged.push(m)
  const log = { debugEnabled: true, info: push, warn: push, error: push, debug: push }
  const record = buildRecord({
    transport,
    key: `fc:${id}:builds`,
    deploymentId: id,
    deploymentSource: 'FLEETCACHE_DEPLOYMENT_ID',
    namespace: `fc:${id}`,
    release: '16.5.0',
    buildId: 'own',
    maxTtlMs: 60_000,
    budgetMs: 100,
    log,
    ...extra,
  })
  return { record, logged }
}

/**
 * Resolves after every promise settled so far has run its callbacks: those are microtasks,
 * which all run before the next turn of the event loop.
 */
const afterSettled = () => new Promise((r) => setImmediate(r))

test('a renewal in flight at stop() sends nothing more and logs nothing, and the key has a TTL already', async () => {
  const sent = []
  const pending = []
  const transport = {
    send: (argv) =>
      new Promise((resolve, reject) => {
        sent.push(argv.map(String))
        pending.push({ argv, resolve, reject })
      }),
    close: async () => undefined,
  }
  const { record, logged } = fakeRecord('x', transport, { clock: () => 1_000_000 })
  record.start()
  // The first round is on the wire; close() comes now (runtime.ts: stop(), then the connection).
  const first = sent.length
  assert.ok(first > 0)
  assert.ok(
    sent.some((c) => c[0] === 'PEXPIRE'),
    `the first round gives the key a TTL (a record cut short must not stay forever): ${JSON.stringify(sent)}`,
  )
  record.stop()
  // Redis answers what was sent (a graceful close waits for the replies): another build live.
  for (const p of pending.splice(0)) {
    const cmd = String(p.argv[0])
    if (cmd === 'HGETALL') p.resolve({ '16.4.6 other': String(2_000_000) })
    else if (cmd === 'HSCAN')
      p.resolve([Buffer.from('0'), [Buffer.from('16.4.6 other'), Buffer.from('2000000')]])
    else p.resolve(1)
  }
  await afterSettled()
  assert.deepEqual(sent.slice(first), [], 'nothing sent after stop()')
  assert.deepEqual(logged, [], 'nothing logged after stop()')
})

test('a renewal that fails at close logs nothing after stop()', async () => {
  const rejects = []
  const transport = {
    send: () => new Promise((_, reject) => rejects.push(reject)),
    close: async () => undefined,
  }
  const { record, logged } = fakeRecord('y', transport)
  record.start()
  record.stop()
  for (const r of rejects.splice(0)) r(new Error('redis transport is closed'))
  await afterSettled()
  assert.deepEqual(logged, [])
})

test('Redis hung during renewals: they fail at debug only, and close() still ends the process', async () => {
  const own = await startRedis({ logDir: dir })
  try {
    const k = server(app('build-k', '16.5.0'), {
      REDIS_URL: own.url,
      FLEETCACHE_DEPLOYMENT_ID: 'hung',
      FLEETCACHE_MAX_TTL_SECONDS: '2',
    })
    await k.waitFor(CHECKED)
    process.kill(own.pid, 'SIGSTOP')
    try {
      await k.waitFor(/builds under fleetcache:hung: 16\.5\.0 build-k not recorded: /)
      await k.stop()
    } finally {
      process.kill(own.pid, 'SIGCONT')
    }
    assert.equal(k.lines(/unhandled|UnhandledPromiseRejection/i).length, 0, k.output)
    assert.equal(k.lines(WARNING).length, 0, k.output)
  } finally {
    await own.stop()
  }
})

test('a process that finds no Next release is taken for the build with its build id, not warned of', () => {
  const { sortBuilds } = require('../dist/build-record.js')
  const now = 1_000_000
  const later = String(now + 60_000)
  // The same build, one process of which found no release: one build, either way round.
  for (const [own, other] of [
    ['16.5.0 b1', 'unknown b1'],
    ['unknown b1', '16.5.0 b1'],
  ]) {
    const seen = sortBuilds([other, later], own, now + 30_000, now)
    assert.deepEqual([...seen.live.keys()], [], `${own} / ${other}`)
    assert.deepEqual(seen.past, [])
    assert.equal(seen.furthest, now + 60_000)
  }
  // Another build id is another build, found release or not.
  assert.deepEqual(
    [...sortBuilds(['unknown b2', later], '16.5.0 b1', now, now).live.keys()],
    ['unknown b2'],
  )
})
