// `fleetcache inspect` judges an entry against the live tag state as a server holding its
// tags' records exactly does, however many tags Redis holds: past the mirror's default bound
// (tagMirrorMaxTags, 100,000) it must not fold a tag of the entry into a bucket shared with
// later revalidations, which would report stale or expired what servers set higher serve
// (nor hold every live tag in memory to avoid that).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createClient } from 'redis'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { useCacheEntry } from './helpers.mjs'

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const run = promisify(execFile)
const PREFIX = 'ci'
const DEPLOYMENT = 'd1'

let redis
let client
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cli-inspect-'))
  redis = await startRedis({ logDir })
  client = createClient({ url: redis.url })
  await client.connect()
})

after(async () => {
  await close()
  await client?.close()
  await redis?.stop()
  fs.rmSync(logDir, { recursive: true, force: true })
})

async function inspect(cacheKey) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k)),
  )
  const args = ['inspect', '--cache-key', cacheKey, '--deployment', DEPLOYMENT]
  const { stdout } = await run(
    process.execPath,
    [CLI, ...args, '--interface', 'default', '--json'],
    {
      env: { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: PREFIX },
      timeout: 120_000,
    },
  )
  return JSON.parse(stdout)
}

test("inspect reads the entry's tag records exactly, past the default bound of a server", async () => {
  const Handler = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: PREFIX,
    deploymentId: DEPLOYMENT,
    memoryBytes: 0,
  })
  await Handler.set('k', Promise.resolve(useCacheEntry('v', { tags: ['x'] })))
  const made = (await inspect('k')).header.timestamp
  assert.equal(typeof made, 'number')

  // The tag state: "x" revalidated a minute before the entry was made (updated longest ago,
  // so a bounded mirror folds it first), and 120,000 other tags expired after it (updated
  // later, each at its own time so that a fold takes a quarter of them): in a mirror folded
  // down to 75,000, about thirty of them share the bucket of "x".
  const key = (part) => `${PREFIX}:tags:{${PREFIX}}:${part}`
  // Records are whole milliseconds; the entry's time is not.
  const x = Math.floor(made) - 60_000
  const later = Math.ceil(made) + 1
  await client.hSet(key('state'), 'x', `${x},0,0,0,${x}`)
  const others = 120_000
  for (let from = 0; from < others; from += 10_000) {
    const fields = {}
    for (let i = from; i < from + 10_000; i++) {
      fields[`other-${i}`] = `0,${later},0,0,${later + i}`
    }
    await client.hSet(key('state'), fields)
  }
  await client.hSet(key('meta'), { epoch: 'E', ver: '1', 'v:1': 'id1' })
  assert.ok(Date.now() > later, 'the other revalidations are in the past')

  const seen = await inspect('k')
  assert.equal(seen.verdict, 'hit', JSON.stringify(seen))
})

/** A prefix of its own: the test above leaves 120,000 tags in PREFIX's tag state. */
const KEYS_PREFIX = 'ck'

/** `fleetcache inspect <key>` (a Redis key given as it is), with its exit code and output. */
async function inspectRaw(key, json = false, prefix = KEYS_PREFIX) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k)),
  )
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [CLI, 'inspect', key, ...(json ? ['--json'] : [])],
      { env: { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: prefix }, timeout: 60_000 },
    )
    return { code: 0, stdout, stderr }
  } catch (err) {
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

test('inspect on a tag key or the record of builds says what kind of key it is and shows its fields', async () => {
  // Before: each failed, "WRONGTYPE Operation against a key holding the wrong kind of value".
  const builds = `${KEYS_PREFIX}:${DEPLOYMENT}:builds`
  const until = Date.UTC(2030, 0, 1)
  await client.sendCommand(['HSET', builds, '16.5.0 b1', String(until)])
  const record = await inspectRaw(builds)
  assert.equal(record.code, 0, record.stderr)
  assert.match(
    record.stdout,
    new RegExp(`^kind +record of builds of deployment ${DEPLOYMENT}$`, 'm'),
  )
  assert.match(record.stdout, /^fields +1$/m)
  assert.match(
    record.stdout,
    /^16\.5\.0 b1 +served until 2030-01-01T00:00:00\.000Z \(1893456000000\)$/m,
  )
  const asJson = JSON.parse((await inspectRaw(builds, true)).stdout)
  assert.equal(asJson.type, 'hash')
  assert.deepEqual(asJson.fields, [['16.5.0 b1', String(until)]])

  const state = `${KEYS_PREFIX}:tags:{${KEYS_PREFIX}}:state`
  await client.sendCommand(['HSET', state, 'products', '1,2,0,0,3'])
  const tags = await inspectRaw(state)
  assert.equal(tags.code, 0, tags.stderr)
  assert.match(tags.stdout, /^kind +tag state \(one record per tag\)$/m)
  assert.match(tags.stdout, /^products +1,2,0,0,3$/m)

  const meta = `${KEYS_PREFIX}:tags:{${KEYS_PREFIX}}:meta`
  await client.sendCommand(['HSET', meta, 'epoch', 'e1', 'ver', '3'])
  const m = await inspectRaw(meta)
  assert.equal(m.code, 0, m.stderr)
  assert.match(m.stdout, /^kind +tag state's meta \(epoch, versions\)$/m)
  assert.match(m.stdout, /^ver +3$/m)
  await client.sendCommand(['DEL', builds, state, meta])
})

test('inspect on the tag state shows no control character: the folded record by what it is, others escaped', async () => {
  // Tags are the application's strings, and the folded record's field starts with \u0001:
  // printed as they are, a tag holding ESC or a newline drove the terminal or forged a row.
  const state = `${KEYS_PREFIX}:tags:{${KEYS_PREFIX}}:state`
  await client.sendCommand(['HSET', state, '\u0001folded', '1,2,0,0,3'])
  await client.sendCommand(['HSET', state, 'evil\u001b[2J\nforged', '4,5,0,0,6'])
  const r = await inspectRaw(state)
  assert.equal(r.code, 0, r.stderr)
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(r.stdout, /[\u0000-\u0009\u000b-\u001f\u007f]/, JSON.stringify(r.stdout))
  assert.match(r.stdout, /^\(folded revalidations: every tagged entry\) +1,2,0,0,3$/m)
  assert.match(r.stdout, /^evil\\x1b\[2J\\nforged +4,5,0,0,6$/m)
  assert.doesNotMatch(r.stdout, /^forged/m)
  // --json keeps the fields as Redis holds them.
  const asJson = JSON.parse((await inspectRaw(state, true)).stdout)
  assert.ok(asJson.fields.some(([f]) => f === '\u0001folded'))
  await client.sendCommand(['DEL', state])
})

/** The CLI's exit code, stdout and stderr for `args`, against the test's Redis and prefix. */
async function cli(args) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k)),
  )
  try {
    const r = await run(process.execPath, [CLI, ...args], {
      env: { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: PREFIX },
      timeout: 120_000,
    })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    if (typeof err.code !== 'number') throw err
    return { code: err.code, stdout: err.stdout, stderr: err.stderr }
  }
}

// Next hands a 'use cache' entry without an expiry its INFINITE_CACHE (0xfffffffe seconds),
// which the core reads as no limit, as it reads a singular entry's Infinity: inspect showed
// `expire 4294967294` for one and `Infinity` for the other.
test("inspect shows a 'use cache' entry's INFINITE_CACHE lifetimes as Infinity, as a singular entry's", async () => {
  const Handler = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: PREFIX,
    deploymentId: DEPLOYMENT,
    memoryBytes: 0,
  })
  const INFINITE_CACHE = 0xfffffffe
  await Handler.set(
    'forever',
    Promise.resolve(
      useCacheEntry('v', { tags: [], expire: INFINITE_CACHE, revalidate: INFINITE_CACHE }),
    ),
  )
  const inspect = (...extra) =>
    cli([
      'inspect',
      '--cache-key',
      'forever',
      '--deployment',
      DEPLOYMENT,
      '--interface',
      'default',
      ...extra,
    ])
  const r = await inspect()
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^expire +Infinity$/m, r.stdout)
  assert.match(r.stdout, /^revalidate +Infinity$/m, r.stdout)
  assert.doesNotMatch(r.stdout, /4294967294/, r.stdout)
  // --json: null for no limit, as JSON.stringify writes a singular entry's Infinity (before,
  // 4294967294 here and null there).
  const asJson = await inspect('--json')
  assert.equal(asJson.code, 0, asJson.stderr)
  const { header } = JSON.parse(asJson.stdout)
  assert.deepEqual([header.expire, header.revalidate], [null, null], asJson.stdout)
})

// `fleetcache/use-cache` is one key space, `default`, whatever cacheHandlers key Next loads it
// under: `--interface remote` looks under uc-remote, where it stores nothing.
test("inspect --interface remote that finds nothing names the key under default, where 'use cache: remote' entries are", async () => {
  const Handler = createUseCacheHandler({
    redisUrl: redis.url,
    prefix: PREFIX,
    deploymentId: DEPLOYMENT,
    memoryBytes: 0,
  })
  await Handler.set('remote-k', Promise.resolve(useCacheEntry('v', { tags: [] })))
  const r = await cli([
    'inspect',
    '--cache-key',
    'remote-k',
    '--deployment',
    DEPLOYMENT,
    '--interface',
    'remote',
  ])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^no value at ci:d1:uc-remote:/m, r.stderr)
  assert.match(
    r.stderr,
    /fleetcache\/use-cache stores every 'use cache' entry under default, 'use cache: remote' and withFleetcache's handlers names included: there is one at ci:d1:uc-default:\S+ \(--interface default\)/,
    r.stderr,
  )
})
