// What comes after a read (its log lines, freeing its answer, recording its Redis command for
// OpenTelemetry) is bookkeeping: when it throws, the call still settles, with the value the read
// found. Next turns a rejected `get` into a failed render, and a rejected `set` or revalidation
// into a failed request. Each case is checked on both handlers against a real redis-server.
//
// The throws are provoked where they come from in production: the console (fleetcache logs
// through it; Next's dev server and logging libraries patch it), the release of a read machine
// behind `answer.free()` (a machine a trap left borrowed throws from every call), and the
// application's TracerProvider.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pathToFileURL } from 'node:url'

import { startTestRedis, text, useCacheEntry } from './helpers.mjs'
import { OURS, installCopy } from './package-copies.mjs'

const require = createRequire(import.meta.url)
const { trace } = require('@opentelemetry/api')

// An application's tracer whose spans throw when they end, or whose `startSpan` throws, while
// `tracing.fails` says so: registered before fleetcache loads, as an instrumentation hook does.
const tracing = { failsAtStart: false, failsAtEnd: false, ended: 0 }
const span = {
  setAttribute: () => span,
  setStatus: () => span,
  end() {
    tracing.ended += 1
    if (tracing.failsAtEnd) throw new Error('span exporter broke')
  },
}
trace.setGlobalTracerProvider({
  getTracer: () => ({
    startSpan() {
      if (tracing.failsAtStart) throw new Error('tracer broke')
      return span
    },
    startActiveSpan: () => {
      throw new Error('not used by fleetcache')
    },
  }),
})

const { close, createIncrementalCacheHandler, createUseCacheHandler, stats } =
  await import('../esm/index.mjs')
const { ReadMachines } = require('../dist/read-driver.js')

let redis
let logDir

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-bookkeeping-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  await redis?.stop()
})

let seq = 0
function options(extra = {}) {
  seq += 1
  // A distinct setting per call: a runtime of its own.
  return {
    redisUrl: redis.url,
    prefix: 'bookkeeping',
    deploymentId: 'd1',
    leases: false,
    connectTimeoutMs: 3000 + seq,
    // Budgets no loaded machine reaches: a `set` waits for its write to land up to the read
    // budget (write-driver.ts writeEntry), and a read after one that did not finds nothing.
    readTimeoutMs: 10_000,
    writeTimeoutMs: 10_000,
    ...redis.options,
    ...extra,
  }
}

const PAGE = {
  kind: 'PAGES',
  html: '<p>page</p>',
  pageData: { pageProps: { n: 1 } },
  headers: undefined,
  status: 200,
}
const PAGE_CTX = { kind: 'PAGES', cacheControl: { revalidate: 3600, expire: 31536000 } }

/** Runs `fn` with every console method throwing; what it resolved or rejected with. */
async function withConsoleThrowing(fn) {
  const saved = {}
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    saved[level] = console[level]
    console[level] = () => {
      throw new Error('console broke')
    }
  }
  try {
    return await settled(fn)
  } finally {
    Object.assign(console, saved)
  }
}

/**
 * Runs `fn` with the release behind every answer's `free()` throwing after it released (as a
 * machine a trap left borrowed throws), fleetcache's error lines captured, and how many times
 * it threw.
 */
async function withFreeThrowing(fn) {
  const release = ReadMachines.prototype.release
  let throws = 0
  ReadMachines.prototype.release = function (machine) {
    release.call(this, machine)
    throws += 1
    throw new Error('machine trapped')
  }
  const lines = []
  const { error } = console
  console.error = (...a) => lines.push(a.join(' '))
  try {
    return { ...(await settled(fn)), lines, throws }
  } finally {
    ReadMachines.prototype.release = release
    console.error = error
  }
}

/** `fn()`'s outcome as a value: `{ value }` or `{ rejected }`. */
async function settled(fn) {
  try {
    return { value: await fn() }
  } catch (err) {
    return { rejected: err }
  }
}

const ucText = async (got) => (got === undefined ? undefined : text(got.value))

describe('a logger that throws', () => {
  test("'use cache': get, set, updateTags and getExpiration settle; a hit is served", async () => {
    const h = createUseCacheHandler(options({ debug: true }))
    await h.set('k', Promise.resolve(useCacheEntry('v', { tags: ['t'] })))
    // Read twice: from Redis, then from the tier's copy.
    const out = await withConsoleThrowing(async () => [
      await ucText(await h.get('k', [])),
      await ucText(await h.get('k', [])),
      // A key that is not well-formed UTF-16: refused, logged as an error, a miss.
      await h.get('bad\ud800', []),
      await h.set('bad\ud800', Promise.resolve(useCacheEntry('x'))),
      await h.set('k2', Promise.resolve(useCacheEntry('v2'))),
      await h.updateTags(['t']),
      typeof (await h.getExpiration(['t'])),
    ])
    assert.deepEqual(out, {
      value: ['v', 'v', undefined, undefined, undefined, undefined, 'number'],
    })
  })

  test('singular: get, set and revalidateTag settle; a hit is served', async () => {
    const opts = options({ debug: true })
    const Inc = createIncrementalCacheHandler(opts)
    const uc = createUseCacheHandler(opts)
    await new Inc().set('/p', PAGE, PAGE_CTX)
    const out = await withConsoleThrowing(async () => {
      const got = [(await new Inc().get('/p', { kind: 'PAGES' }))?.value.html]
      got.push(await new Inc().get('bad\ud800', { kind: 'PAGES' }))
      got.push(await new Inc().set('bad\ud800', PAGE, PAGE_CTX))
      // Next's order: updateTags, then revalidateTag in the same turn, which finds it recorded
      // (a debug line).
      got.push(await Promise.all([uc.updateTags(['t2']), new Inc().revalidateTag(['t2'])]))
      got.push(await new Inc().revalidateTag(['t3']))
      return got
    })
    assert.deepEqual(out, {
      value: ['<p>page</p>', null, undefined, [undefined, undefined], undefined],
    })
  })
})

describe("an answer whose free() throws (its machine's release)", () => {
  for (const [name, extra] of [
    ['from Redis', { memoryBytes: 0 }],
    ['from Redis, then the tier', {}],
  ]) {
    test(`'use cache' ${name}: the hit is served, each failure logged once`, async () => {
      const h = createUseCacheHandler(options(extra))
      await h.set('k', Promise.resolve(useCacheEntry('v')))
      const out = await withFreeThrowing(async () => [
        await ucText(await h.get('k', [])),
        await ucText(await h.get('k', [])),
      ])
      assert.deepEqual(out.value, ['v', 'v'], String(out.rejected))
      const said = out.lines.filter((l) => l.includes('machine trapped'))
      assert.ok(out.throws >= 2, 'a release threw for each get')
      assert.equal(said.length, out.throws, out.lines.join('\n'))
    })

    test(`singular ${name}: the hit is served, each failure logged once`, async () => {
      const Inc = createIncrementalCacheHandler(options(extra))
      await new Inc().set('/p', PAGE, PAGE_CTX)
      const out = await withFreeThrowing(async () => [
        (await new Inc().get('/p', { kind: 'PAGES' }))?.value.html,
        (await new Inc().get('/p', { kind: 'PAGES' }))?.value.html,
      ])
      assert.deepEqual(out.value, ['<p>page</p>', '<p>page</p>'], String(out.rejected))
      const said = out.lines.filter((l) => l.includes('machine trapped'))
      assert.ok(out.throws >= 2, 'a release threw for each get')
      assert.equal(said.length, out.throws, out.lines.join('\n'))
    })
  }
})

describe('a tracer that throws', () => {
  test('when a span ends: the GET reply is served, the failure logged once per process', async () => {
    const h = createUseCacheHandler(options({ memoryBytes: 0 }))
    const Inc = createIncrementalCacheHandler(options({ memoryBytes: 0 }))
    await h.set('k', Promise.resolve(useCacheEntry('v')))
    await new Inc().set('/p', PAGE, PAGE_CTX)
    const failures = () => {
      const s = stats()
      return s.redis.timeouts + s.redis.connectionErrors + s.redis.replyErrors
    }
    const failed = failures()
    const ended = tracing.ended
    tracing.failsAtEnd = true
    const lines = []
    const { error } = console
    console.error = (...a) => lines.push(a.join(' '))
    let out
    try {
      out = await settled(async () => [
        await ucText(await h.get('k', [])),
        await ucText(await h.get('k', [])),
        (await new Inc().get('/p', { kind: 'PAGES' }))?.value.html,
      ])
    } finally {
      tracing.failsAtEnd = false
      console.error = error
    }
    assert.deepEqual(out, { value: ['v', 'v', '<p>page</p>'] })
    assert.ok(tracing.ended > ended, 'the spans were ended (the failure was provoked)')
    assert.equal(failures(), failed, 'no command counted as failed')
    const said = lines.filter((l) => l.includes('span exporter broke'))
    assert.equal(said.length, 1, lines.join('\n'))
  })

  test('two copies of one version (two bundles): the failure is logged once per process, not per copy', async () => {
    // Next's server and a route's trace may each load the package: a second copy of this very
    // version, with module state of its own, in the same process.
    const copy = await import(
      pathToFileURL(
        path.join(
          installCopy(logDir, 'second-bundle', OURS, ['redis', '@opentelemetry/api']),
          'esm',
          'index.mjs',
        ),
      ).href
    )
    assert.notEqual(copy.createUseCacheHandler, createUseCacheHandler, 'a second copy')
    const ours = createUseCacheHandler(options({ memoryBytes: 0 }))
    const theirs = copy.createUseCacheHandler(options({ memoryBytes: 0, prefix: 'bookkeeping2' }))
    await ours.set('k', Promise.resolve(useCacheEntry('v')))
    await theirs.set('k', Promise.resolve(useCacheEntry('w')))
    tracing.failsAtEnd = true
    const lines = []
    const { error } = console
    console.error = (...a) => lines.push(a.join(' '))
    let out
    try {
      // This copy's failure, logged now (or by the test above).
      const first = await ucText(await ours.get('k', []))
      lines.length = 0
      out = await settled(async () => [first, await ucText(await theirs.get('k', []))])
    } finally {
      tracing.failsAtEnd = false
      console.error = error
      await copy.close()
    }
    assert.deepEqual(out, { value: ['v', 'w'] })
    assert.deepEqual(
      lines.filter((l) => l.includes('span exporter broke')),
      [],
      "the second copy's failure is not logged again",
    )
  })

  test('a copy of another version logs its own failure line, once', async () => {
    // Once per process and package version (docs/observability.md): another version binds the
    // SDK for itself (telemetry.ts), and its line is its own.
    const copy = await import(
      pathToFileURL(
        path.join(
          installCopy(logDir, 'other-version', `${OURS}-other`, ['redis', '@opentelemetry/api']),
          'esm',
          'index.mjs',
        ),
      ).href
    )
    const ours = createUseCacheHandler(options({ memoryBytes: 0 }))
    const theirs = copy.createUseCacheHandler(options({ memoryBytes: 0, prefix: 'bookkeeping3' }))
    await ours.set('k', Promise.resolve(useCacheEntry('v')))
    await theirs.set('k', Promise.resolve(useCacheEntry('w')))
    tracing.failsAtEnd = true
    const lines = []
    const { error } = console
    console.error = (...a) => lines.push(a.join(' '))
    let out
    try {
      // This copy's failure, logged now (or by a test above).
      const first = await ucText(await ours.get('k', []))
      lines.length = 0
      out = await settled(async () => [
        first,
        await ucText(await theirs.get('k', [])),
        await ucText(await theirs.get('k', [])),
      ])
    } finally {
      tracing.failsAtEnd = false
      console.error = error
      await copy.close()
    }
    assert.deepEqual(out, { value: ['v', 'w', 'w'] })
    assert.equal(
      lines.filter((l) => l.includes('span exporter broke')).length,
      1,
      `the other version's failure is logged, once:\n${lines.join('\n')}`,
    )
  })

  test('when a span starts: the command is sent, its reply served and its end reported', async () => {
    const h = createUseCacheHandler(options({ memoryBytes: 0 }))
    await h.set('k', Promise.resolve(useCacheEntry('v')))
    // The engine admitted each command before its span started: unreported, a half-open
    // breaker's probe would hold every other command back until its probe timeout.
    const ok = stats().redis.ok
    tracing.failsAtStart = true
    const { error } = console
    console.error = () => undefined
    let out
    try {
      out = await settled(async () => [
        await ucText(await h.get('k', [])),
        await ucText(await h.get('k', [])),
      ])
    } finally {
      tracing.failsAtStart = false
      console.error = error
    }
    assert.deepEqual(out, { value: ['v', 'v'] })
    assert.ok(stats().redis.ok - ok >= 2, 'each GET reported to the engine as answered')
  })
})
