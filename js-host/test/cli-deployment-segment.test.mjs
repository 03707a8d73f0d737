// A deployment id outside `[A-Za-z0-9._-]{1,64}` (a space, a long id) is hashed into its key
// segment, `h` + 16 hex digits, and that segment is all an operator sees of it: the server's
// namespace line and `fleetcache stats` print it. `purge --deployment` and `inspect
// --deployment` must find the deployment by that segment as well as by the id itself; they
// hashed the segment again and reported 0 keys (exit 0), so the old deployment was never purged.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { useCacheEntry } from './helpers.mjs'

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const run = promisify(execFile)
const DEPLOYMENT = 'release 7 (blue)'

let redis
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cli-segment-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
  fs.rmSync(logDir, { recursive: true, force: true })
})

async function cliRun(prefix, ...args) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/REDIS|^FLEETCACHE_|^NEXT_DEPLOYMENT_ID$/.test(k)),
  )
  return run(process.execPath, [CLI, ...args, '--json'], {
    env: { ...base, REDIS_URL: redis.url, FLEETCACHE_PREFIX: prefix },
    timeout: 60_000,
  })
}

async function cli(prefix, ...args) {
  return JSON.parse((await cliRun(prefix, ...args)).stdout)
}

async function store(prefix, key, deploymentId = DEPLOYMENT) {
  const Handler = createUseCacheHandler({
    redisUrl: redis.url,
    prefix,
    deploymentId,
  })
  await Handler.set(key, Promise.resolve(useCacheEntry('v')))
}

/** The deployment column `stats` prints for the one deployment stored. */
async function shownSegment(prefix) {
  const rows = (await cli(prefix, 'stats')).rows
  assert.equal(rows.length, 1, JSON.stringify(rows))
  return rows[0].deployment
}

test('purge and inspect take a hashed deployment as stats prints it', async () => {
  const prefix = 'shown'
  await store(prefix, 'k1')
  const segment = await shownSegment(prefix)
  assert.match(segment, /^h[0-9a-f]{16}$/)

  const inspected = await cli(
    prefix,
    'inspect',
    '--cache-key',
    'k1',
    '--deployment',
    segment,
    '--interface',
    'default',
  )
  assert.equal(inspected.key, `${prefix}:${segment}:uc-default:${inspected.key.split(':')[3]}:e`)

  const dry = await cli(prefix, 'purge', '--deployment', segment, '--dry-run')
  assert.equal(dry.matched, 1, JSON.stringify(dry))
  const purged = await cli(prefix, 'purge', '--deployment', segment)
  assert.deepEqual([purged.deployment, purged.deleted], [segment, 1])
  assert.deepEqual((await cli(prefix, 'stats')).rows, [])
})

test('purge and inspect still take the deployment id as configured', async () => {
  const prefix = 'configured'
  await store(prefix, 'k2')
  const segment = await shownSegment(prefix)
  const inspected = await cli(
    prefix,
    'inspect',
    '--cache-key',
    'k2',
    '--deployment',
    DEPLOYMENT,
    '--interface',
    'default',
  )
  assert.ok(inspected.key.startsWith(`${prefix}:${segment}:uc-default:`), inspected.key)
  const purged = await cli(prefix, 'purge', '--deployment', DEPLOYMENT)
  assert.deepEqual([purged.deployment, purged.deleted], [segment, 1])
  assert.deepEqual((await cli(prefix, 'stats')).rows, [])
})

// An id configured with the hashed shape (`h` + 16 lowercase hex digits) is stored hashed
// again, so `--deployment` given that id names another segment: the printed form wins, as
// the docs say. A purge or inspect that finds nothing under it said only `0 keys` (exit 0),
// and the operator who passed the id as configured believed the deployment gone.
test('a configured id of the hashed shape: the CLI names the segment it is stored under', async () => {
  const prefix = 'shaped'
  const configured = 'h0123456789abcdef'
  await store(prefix, 'k3', configured)
  const segment = await shownSegment(prefix)
  assert.notEqual(segment, configured)
  const dry = await cliRun(prefix, 'purge', '--deployment', configured, '--dry-run')
  assert.equal(JSON.parse(dry.stdout).matched, 0, dry.stdout)
  assert.match(
    dry.stderr,
    new RegExp(
      `fleetcache: warning: .*${configured}.* stored under ${prefix}:${segment}: .*--deployment ${segment}`,
    ),
    dry.stderr,
  )
  const purged = await cliRun(prefix, 'purge', '--deployment', configured)
  assert.equal(JSON.parse(purged.stdout).deleted, 0)
  assert.match(purged.stderr, new RegExp(`--deployment ${segment}`), purged.stderr)
  assert.equal((await cli(prefix, 'stats')).rows.length, 1, 'nothing was deleted')
  const missed = await cliRun(
    prefix,
    'inspect',
    '--cache-key',
    'k3',
    '--deployment',
    configured,
    '--interface',
    'default',
  ).catch((err) => err)
  assert.equal(missed.code, 1)
  assert.match(missed.stderr, new RegExp(`--deployment ${segment}`), missed.stderr)
  // By its printed form it is found, with no such line.
  const found = await cliRun(prefix, 'purge', '--deployment', segment)
  assert.equal(JSON.parse(found.stdout).deleted, 1)
  assert.doesNotMatch(found.stderr, /warning/, found.stderr)
})

// A hashed-looking id in upper case is a valid id the engine keeps as is (the hashed form is
// lower case only), and the CLI takes it as configured.
test('an upper-case hashed-looking id is kept as is, and purged by it', async () => {
  const prefix = 'upper'
  const configured = 'h0123456789ABCDEF'
  await store(prefix, 'k4', configured)
  assert.equal(await shownSegment(prefix), configured)
  const purged = await cli(prefix, 'purge', '--deployment', configured)
  assert.deepEqual([purged.deployment, purged.deleted], [configured, 1])
})
