// FLEETCACHE_DEBUG's lines as docs/troubleshooting.md and docs/observability.md quote them,
// against a real redis-server: every line fleetcache writes starts with `[fleetcache]` (so
// `grep '\[fleetcache\]'` finds them all), and a 'use cache' hit is one of the decisions logged
// (`[fleetcache] get fleetcache:…:uc-default:{…}:e hit`).
//
// Found by trying the package on a fresh Next 16.5.0 app with FLEETCACHE_DEBUG=1: after a
// revalidation, one read logs three lines and only the first carries the prefix; a hit logs
// nothing. Both tests fail on main at ec9cf1c.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'

import { createCache } from 'fleetcache/worker'

import { createUseCacheHandler, close, stats } from '../esm/index.mjs'
import { waitFor } from '../../tests/support/util.mjs'
import { now, settled, startTestRedis, text, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { createLogger } = require('../dist/log.js')

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-js-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

let seq = 0

/** One "instance" with debugging on: a configuration of its own, so a runtime of its own. */
function instance(extra = {}) {
  seq += 1
  return createUseCacheHandler({
    redisUrl: redis.url,
    prefix: 'jsdebug',
    deploymentId: 'd1',
    connectTimeoutMs: 2000 + seq,
    debug: true,
    ...redis.options,
    ...extra,
  })
}

/** What `fn` writes to stdout through console.log, one array item per printed line. */
async function stdoutLines(fn) {
  const lines = []
  const { log } = console
  console.log = (...a) => lines.push(...a.join(' ').split('\n'))
  try {
    await fn()
  } finally {
    console.log = log
  }
  return lines
}

/** What `fn` prints through console.log, warn and error, one array item per printed line. */
async function printedLines(fn) {
  const lines = []
  const saved = { log: console.log, warn: console.warn, error: console.error }
  for (const k of Object.keys(saved)) console[k] = (...a) => lines.push(...a.join(' ').split('\n'))
  try {
    await fn()
  } finally {
    Object.assign(console, saved)
  }
  return lines
}

const unprefixed = (lines) => lines.filter((l) => !l.startsWith('[fleetcache] '))

describe('FLEETCACHE_DEBUG lines', () => {
  test('every line of a read after a revalidation starts with [fleetcache]', async () => {
    const a = instance()
    const b = instance()
    await a.set('k-lines', Promise.resolve(useCacheEntry('v1', { tags: ['debug-lines'] })))
    await b.refreshTags()
    const first = await b.get('k-lines', [])
    assert.equal(await text(first.value), 'v1')
    await a.updateTags(['debug-lines'])
    await b.refreshTags()
    const lines = await stdoutLines(async () => {
      assert.equal(await b.get('k-lines', []), undefined, 'expired by the revalidation')
    })
    assert.ok(lines.length > 0, 'the read logged its decision')
    const unprefixed = lines.filter((l) => !l.startsWith('[fleetcache] '))
    assert.deepEqual(unprefixed, [], `lines without the prefix, in:\n${lines.join('\n')}`)
  })

  test("a 'use cache' hit logs one line ending in hit", async () => {
    const a = instance()
    const b = instance()
    await a.set('k-hit', Promise.resolve(useCacheEntry('v1', { tags: ['debug-hit'] })))
    await b.refreshTags()
    // The first read comes from Redis, the second from the in-process tier: both are hits.
    for (const from of ['redis', 'tier']) {
      const lines = await stdoutLines(async () => {
        const got = await b.get('k-hit', [])
        assert.equal(await text(got.value), 'v1')
      })
      assert.ok(
        lines.some((l) => /^\[fleetcache\] get \S+:uc-default:\{[0-9a-f]+\}:e hit$/.test(l)),
        `a hit from ${from} logs its decision; logged:\n${lines.join('\n')}`,
      )
    }
  })
})

describe('writes, lease renewals and outages log their decisions', () => {
  test('a stored write logs its size and TTL', async () => {
    const a = instance()
    const lines = await stdoutLines(async () => {
      await a.set('k-set', Promise.resolve(useCacheEntry('v1', { expire: 3600 })))
    })
    assert.ok(
      lines.some((l) =>
        /^\[fleetcache\] set \S+:uc-default:\{[0-9a-f]+\}:e \d+ B ttl 3600 s$/.test(l),
      ),
      `the write logs its line; logged:\n${lines.join('\n')}`,
    )
  })

  test('a lease taken over by another process ends its renewal with a line', async () => {
    // Renewed every second: the lease is replaced before the first renewal.
    const a = instance({ leaseTtlMs: 3000 })
    const lines = []
    const { log } = console
    console.log = (...args) => lines.push(...args.join(' ').split('\n'))
    try {
      assert.equal(await a.get('k-renew', []), undefined, 'a miss: this process regenerates')
      const won = lines
        .map((l) => /^\[fleetcache\] get (\S+:e) miss: regenerating here$/.exec(l)?.[1])
        .find((k) => k !== undefined)
      assert.ok(won, `the read won the lease; logged:\n${lines.join('\n')}`)
      const lease = `${won.slice(0, -1)}l`
      await redis.command('SET', lease, 'another process', 'PX', '60000')
      const line = `[fleetcache] lease ${lease} no longer this process's: not renewed`
      await waitFor(() => lines.includes(line), {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: line,
      })
    } finally {
      console.log = log
    }
  })

  test("a 'use cache' entry served stale while the breaker is open logs its decision", async () => {
    // The breaker stays open for the test's reads: none of them is let through as a probe.
    const a = instance({
      readTimeoutMs: 200,
      breakerFailures: 2,
      breakerOpenMs: 60_000,
      breakerMaxOpenMs: 60_000,
    })
    // Another instance with long budgets runs the scripts first (Redis loads them): the
    // set-up below then runs warm, and is retried when one of its short budgets runs out.
    const w = instance({ readTimeoutMs: 10_000, writeTimeoutMs: 10_000 })
    await w.refreshTags()
    await w.set('k-outage-warm', Promise.resolve(useCacheEntry('warm')))
    // Past its revalidate, inside its expire: stale, kept in this process's tier.
    const entry = useCacheEntry('v-outage', { timestamp: now() - 5000, revalidate: 1 })
    await settled(stats, 'the write', () => a.set('k-outage', Promise.resolve(entry)))
    // As Next does before a request's reads: its tags are then known not to have expired it.
    await settled(stats, 'refreshTags', () => a.refreshTags())
    const pids = redis.pids
    for (const pid of pids) process.kill(pid, 'SIGSTOP')
    try {
      // Reads time out (the copy is served) until the breaker opens.
      const opening = []
      const { error } = console
      console.error = (...args) => opening.push(args.join(' '))
      try {
        for (let i = 0; i < 10 && !opening.some((l) => /redis circuit open/.test(l)); i++) {
          const got = await a.get('k-outage', [])
          assert.equal(await text(got.value), 'v-outage')
        }
      } finally {
        console.error = error
      }
      assert.ok(
        opening.some((l) => /redis circuit open/.test(l)),
        `the breaker opened; logged:\n${opening.join('\n')}`,
      )
      const lines = await stdoutLines(async () => {
        const got = await a.get('k-outage', [])
        assert.equal(await text(got.value), 'v-outage', 'served from this process')
      })
      assert.ok(
        lines.some((l) =>
          /^\[fleetcache\] get \S+:uc-default:\{[0-9a-f]+\}:e stale: regenerating here$/.test(l),
        ),
        `the stale answer logs its decision; logged:\n${lines.join('\n')}`,
      )
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT')
    }
  })
})

describe('every line is prefixed, whatever the message spans', () => {
  test('the logger prefixes each line of a message, at every level', async () => {
    const log = createLogger(true)
    const lines = await printedLines(() => {
      for (const level of ['info', 'warn', 'error', 'debug']) {
        log[level](`${level} one\n${level} two\r\n${level} three`)
      }
    })
    assert.equal(lines.length, 12, lines.join('\n'))
    assert.deepEqual(unprefixed(lines), [])
  })

  test("a Worker cache's default onError prefixes each line of an error's text", async () => {
    const wasmBytes = fs.readFileSync(new URL(import.meta.resolve('fleetcache/wasm')))
    const transport = {
      send: () => Promise.reject(new Error('first line of the error\nsecond line')),
    }
    const c = createCache({ module: wasmBytes, transport, deploymentId: 'd1' })
    const lines = await printedLines(async () => {
      assert.equal(await c.get('k', []), undefined)
    })
    assert.ok(
      lines.some((l) => l.endsWith('second line')),
      `the error's second line is printed:\n${lines.join('\n')}`,
    )
    assert.deepEqual(unprefixed(lines), [])
  })
})

test("a Worker cache's default onLog prints its lines with the prefix, through console.log", async () => {
  const wasmBytes = fs.readFileSync(new URL(import.meta.resolve('fleetcache/wasm')))
  const c = createCache({ module: wasmBytes, deploymentId: 'd1', debug: true })
  const printed = { log: [], other: [] }
  const saved = { log: console.log, warn: console.warn, error: console.error }
  console.log = (...a) => printed.log.push(...a.join(' ').split('\n'))
  console.warn = console.error = (...a) => printed.other.push(...a.join(' ').split('\n'))
  try {
    assert.equal(await c.get('k', []), undefined)
  } finally {
    Object.assign(console, saved)
  }
  assert.ok(
    printed.log.some((l) => /^\[fleetcache\] get \S+ miss/.test(l)),
    `the miss is printed:\n${printed.log.join('\n')}`,
  )
  assert.deepEqual(unprefixed(printed.log), [])
  assert.deepEqual(printed.other, [], 'a debug line is no warning nor error')
})

test('describe() names any thrown value and never throws itself (it runs in catch blocks)', () => {
  const { describe: describeError } = require('../dist/log.js')
  const noString = Object.create(null)
  const badToString = {
    toString() {
      throw new Error('no')
    },
  }
  const badMessage = Object.defineProperty(new Error('x'), 'message', {
    get() {
      throw new Error('no')
    },
  })
  for (const v of [noString, badToString, badMessage]) {
    assert.equal(typeof describeError(v), 'string')
  }
  assert.equal(describeError(new Error('boom')), 'boom')
  assert.equal(describeError('plain'), 'plain')
})
