// The wasm engine in a real workers-style runtime: Cloudflare's workerd (npm `workerd`, which
// ships its binary). A small worker on 127.0.0.1 imports the package's `workerd` entry (what
// `exports["."].workerd` names), which gets the .wasm as a compiled WebAssembly.Module through
// an ES import: no fs, no Node. The worker keeps entries in the in-process store and is driven
// over HTTP; the test checks get / set / tag invalidation results (a stale entry by who the
// read is for, told by a stand-in for Next's work-unit storage), and that entries stored
// compressed by the Node handlers' write path are read there (DecompressionStream) and the
// other way round (CompressionStream), through a transport the worker keeps in a Map.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'

import { startWorkerd } from '../../tests/support/workerd.mjs'
import { stopChild, tailFile } from '../../tests/support/util.mjs'
import { assertServedStale } from './helpers.mjs'

const require = createRequire(import.meta.url)
const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))

// The test worker: a tiny HTTP API over the 'use cache'-shaped cache.
const WORKER = `
import { createCache, Interface, module } from './fleetcache/ENTRY'

// One cache per isolate, like a module-scope handler in Next. Who a read's answer is for comes
// from a stand-in for Next's work-unit storage: the store of type ?unit= (default 'request', a
// render serving a response), set by the request before its read; the test makes one at a time.
let unit = { type: 'request' }
const cache = createCache({
  prefix: 'wk',
  deploymentId: 'workerd-test',
  workUnitAsyncStorage: { getStore: () => unit },
})
// workerd refuses random values in the global scope: the cache is made with the fixed hash
// seed (decision 0033).
const seededAtLoad = cache.engine.hashSeeded

// Another cache made here, given an entry here (still the fixed seed: the draw is refused), and
// asked for nothing else until /late: its first request draws the seed and rehashes the entry.
// Its own clock: workerd's clocks read 0 in the global scope.
const LATE_NOW = 1_795_690_530_000
const late = createCache({ prefix: 'wk', deploymentId: 'workerd-late', now: () => LATE_NOW })
const lateAtLoad = late.engine.hashSeeded
const lateErrors = []
late.onError = (m) => lateErrors.push(m)
let lateSetDone = false
late.set('early', {
  value: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('set in global scope')); c.close() } }),
  tags: ['early-tag'],
  stale: 0,
  timestamp: LATE_NOW,
  revalidate: 60,
  expire: 3600,
}).then(() => { lateSetDone = true })

// A cache over a transport that keeps values in a Map (a Redis stand-in): its entries
// are stored compressed when large, as with a real transport.
const values = new Map()
const remote = createCache({
  prefix: 'wk',
  deploymentId: 'workerd-remote',
  transport: {
    async send(argv) {
      if (argv[0] === 'GET') return values.get(argv[1]) ?? null
      if (argv[0] === 'SET') {
        values.set(argv[1], argv[2])
        return 'OK'
      }
      return null
    },
  },
})
remote.onError = () => undefined
const remoteKey = (key) => remote.engine.entryKey(Interface.useCache('default'), key)

const json = (body, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
const list = (v) => (v ? v.split(',') : [])

export default {
  async fetch(request) {
    const url = new URL(request.url)
    const q = url.searchParams
    switch (url.pathname) {
      case '/info':
        return json({
          storeKind: cache.storeKind,
          prefix: cache.engine.prefix,
          deployment: cache.engine.deployment,
          moduleTag: Object.prototype.toString.call(module),
          process: typeof process,
          require: typeof require,
          entryKey: cache.engine.entryKey(Interface.useCache('default'), 'k'),
          // workerd refuses random values in the global scope, where \`cache\` was made;
          // inside a request they are allowed.
          seededGlobal: seededAtLoad,
          seededInRequest: createCache({ prefix: 'wk', deploymentId: 'in-request' }).engine.hashSeeded,
        })
      case '/late': {
        const before = late.engine.hashSeeded
        const entry = await late.get('early', [])
        return json({
          atLoad: lateAtLoad,
          before,
          after: late.engine.hashSeeded,
          value: entry ? await new Response(entry.value).text() : null,
          tags: entry?.tags,
          expiration: await late.getExpiration(['early-tag']),
          errors: lateErrors,
          setDone: lateSetDone,
        })
      }
      case '/set': {
        const bytes = new Uint8Array(await request.arrayBuffer())
        await cache.set(q.get('key'), {
          value: new ReadableStream({ start(c) { c.enqueue(bytes); c.close() } }),
          tags: list(q.get('tags')),
          stale: 0,
          timestamp: Number(q.get('timestamp') ?? Date.now()),
          revalidate: Number(q.get('revalidate') ?? 60),
          expire: Number(q.get('expire') ?? 3600),
        })
        return json({ ok: true })
      }
      case '/get': {
        unit = { type: q.get('unit') ?? 'request' }
        const entry = await cache.get(q.get('key'), list(q.get('soft')))
        if (!entry) return json({ hit: false })
        const value = await new Response(entry.value).text()
        return json({ hit: true, value, tags: entry.tags, revalidate: entry.revalidate, timestamp: entry.timestamp, expire: entry.expire })
      }
      case '/remote/put': {
        values.set(remoteKey(q.get('key')), new Uint8Array(await request.arrayBuffer()))
        return json({ ok: true })
      }
      case '/remote/get': {
        const entry = await remote.get(q.get('key'), [])
        if (!entry) return json({ hit: false })
        return json({ hit: true, value: await new Response(entry.value).text() })
      }
      case '/remote/set': {
        const bytes = new Uint8Array(await request.arrayBuffer())
        await remote.set(q.get('key'), {
          value: new ReadableStream({ start(c) { c.enqueue(bytes); c.close() } }),
          tags: [],
          stale: 0,
          timestamp: Date.now(),
          revalidate: 60,
          expire: 3600,
        })
        return new Response(values.get(remoteKey(q.get('key'))))
      }
      case '/update-tags': {
        const expire = q.get('expire')
        await cache.updateTags(list(q.get('tags')), expire === null ? undefined : { expire: Number(expire) })
        return json({ ok: true })
      }
      case '/seeded':
        return json({ seeded: cache.engine.hashSeeded })
      case '/expiration':
        return json({ expiration: await cache.getExpiration(list(q.get('tags'))) })
      default:
        return json({ error: 'no route' }, 404)
    }
  },
}
`

let dir
let child
let base
let logFile
let failed = false

// The files a worker needs, from the package's exports: the `workerd` entry and what it imports.
function packageFiles() {
  const entry = pkg.exports['.'].workerd.default
  assert.ok(entry, 'package.json exports["."] has no workerd condition')
  return {
    entry: entry.replace(/^\.\//, ''),
    // Every module of the worker bundle (the entries and the Node-free modules they share
    // with the Node handlers), the wasm glue and the engine.
    files: [
      ...new Set([
        entry,
        ...fs
          .readdirSync(path.join(pkgDir, 'worker'))
          .filter((f) => f.endsWith('.js'))
          .map((f) => `./worker/${f}`),
        './wasm/web/fleetcache_wasm.js',
        pkg.exports['./wasm'].default,
      ]),
    ].map((f) => f.replace(/^\.\//, '')),
  }
}

async function callRaw(pathname, { method = 'GET', body } = {}) {
  const res = await fetch(base + pathname, { method, body, signal: AbortSignal.timeout(10_000) })
  const bytes = Buffer.from(await res.arrayBuffer())
  assert.equal(res.status, 200, `${method} ${pathname} -> ${res.status}: ${bytes}`)
  return bytes
}

async function call(pathname, { method = 'GET', body } = {}) {
  const res = await fetch(base + pathname, { method, body, signal: AbortSignal.timeout(10_000) })
  const text = await res.text()
  assert.equal(res.status, 200, `${method} ${pathname} -> ${res.status}: ${text}`)
  return JSON.parse(text)
}

describe('the engine in workerd (workers-style runtime, no fs, no Node)', () => {
  before(
    async () => {
      const bin = require.resolve('workerd/bin/workerd')
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-workerd-'))
      logFile = path.join(dir, 'workerd.log')
      const { entry, files } = packageFiles()
      for (const f of files) {
        fs.mkdirSync(path.join(dir, 'fleetcache', path.dirname(f)), { recursive: true })
        fs.copyFileSync(path.join(pkgDir, f), path.join(dir, 'fleetcache', f))
      }
      fs.writeFileSync(path.join(dir, 'main.mjs'), WORKER.replace('ENTRY', entry))
      const modules = [
        `(name = "main.mjs", esModule = embed "main.mjs")`,
        ...files.map((f) =>
          f.endsWith('.wasm')
            ? `(name = "fleetcache/${f}", wasm = embed "fleetcache/${f}")`
            : `(name = "fleetcache/${f}", esModule = embed "fleetcache/${f}")`,
        ),
      ]
      try {
        ;({ child, base } = await startWorkerd({ bin, dir, modules, logFile }))
      } catch (err) {
        failed = true
        throw new Error(`${err.message}\n--- ${logFile} ---\n${tailFile(logFile, 40)}`, {
          cause: err,
        })
      }
    },
    { timeout: 60_000 },
  )

  after(async () => {
    if (child) await stopChild(child, { termTimeoutMs: 5000 })
    if (dir && !failed) fs.rmSync(dir, { recursive: true, force: true })
    else if (dir) process.stderr.write(`[workerd] files and log kept in ${dir}\n`)
  })

  const checked = (fn) => async () => {
    try {
      await fn()
    } catch (err) {
      failed = true
      err.message += `\n--- ${logFile} ---\n${tailFile(logFile, 30)}`
      throw err
    }
  }

  test(
    'the engine runs from a WebAssembly.Module, with no process or require',
    checked(async () => {
      const info = await call('/info')
      assert.equal(info.storeKind, 'memory')
      assert.equal(info.moduleTag, '[object WebAssembly.Module]')
      assert.equal(info.process, 'undefined')
      assert.equal(info.require, 'undefined')
      assert.equal(info.prefix, 'wk')
      assert.equal(info.deployment, 'workerd-test')
      // Keys are the same function of the settings as in Node.
      const { wasm } = require('../dist/wasm.js')
      const node = new wasm.Engine({
        prefix: 'wk',
        deployment: 'workerd-test',
        maxEntryBytes: 1 << 20,
        maxTtlSeconds: 3600,
        memoryBytes: 1 << 20,
        defaultTtlSeconds: 3600,
      })
      assert.equal(info.entryKey, node.entryKey(wasm.Interface.useCache('default'), 'k'))
      // The maps' hash seed (decision 0033): the fixed one where the runtime refused random
      // values as the engine was made, a drawn one where it did not; in Node always drawn.
      assert.equal(info.seededGlobal, false)
      assert.equal(info.seededInRequest, true)
      assert.equal(node.hashSeeded, true)
    }),
  )

  test(
    'a cache made in global scope draws its hash seed at its first request, keeping what it holds',
    checked(async () => {
      const late = await call('/late')
      assert.deepEqual(late.errors, [])
      assert.equal(late.setDone, true, 'the write made in global scope ended there')
      assert.equal(late.atLoad, false)
      assert.equal(late.before, false, 'nothing request-scoped asked of it before')
      assert.equal(late.after, true)
      // The entry written in global scope, under the fixed seed, is found after the rehash.
      assert.equal(late.value, 'set in global scope')
      assert.deepEqual(late.tags, ['early-tag'])
      assert.equal(late.expiration, 0)
      // And the module-scope cache the other tests use is seeded once they have used it.
      await call('/get?key=nothing')
      assert.equal((await call('/seeded')).seeded, true)
    }),
  )

  test(
    'get / set round trip, misses for unknown keys',
    checked(async () => {
      assert.deepEqual(await call('/get?key=nothing'), { hit: false })
      await call('/set?key=k1&tags=t1,t2', { method: 'POST', body: 'héllo wörld' })
      const got = await call('/get?key=k1')
      assert.equal(got.hit, true)
      assert.equal(got.value, 'héllo wörld')
      assert.deepEqual(got.tags, ['t1', 't2'])
      assert.equal(got.revalidate, 60)
    }),
  )

  test(
    'tag invalidation: expiry makes a miss, a profile makes the entry stale, soft tags count',
    checked(async () => {
      // Stamped a second ago: the revalidations below, stamped by the worker's clock when their
      // request comes, are after them on any clock reading.
      const t0 = Date.now() - 1000
      await call(`/set?key=a&tags=ta&timestamp=${t0}`, { method: 'POST', body: 'A' })
      await call(`/set?key=b&tags=tb&timestamp=${t0}`, { method: 'POST', body: 'B' })
      await call(`/set?key=c&timestamp=${t0}`, { method: 'POST', body: 'C' })
      await call(`/set?key=d&tags=td&timestamp=${t0}`, { method: 'POST', body: 'D' })
      assert.equal((await call('/get?key=a')).hit, true)
      assert.equal((await call('/expiration?tags=ta')).expiration, 0)

      await call('/update-tags?tags=ta') // expire now
      assert.deepEqual(await call('/get?key=a'), { hit: false }, 'expired by its tag')
      const revalidatedAt = (await call('/expiration?tags=ta')).expiration
      assert.ok(revalidatedAt >= t0)

      await call('/update-tags?tags=tb&expire=600') // stale-while-revalidate
      const b = await call('/get?key=b')
      assert.equal(b.hit, true, 'a stale entry is still served')
      assert.equal(b.value, 'B')
      assertServedStale(b, 'served stale: Next regenerates it in the background')
      assert.deepEqual(
        await call('/get?key=b&unit=prerender'),
        { hit: false },
        "a stale entry is a miss for a prerender's read: its answer is stored",
      )

      await call('/update-tags?tags=_N_T_/page')
      assert.equal((await call('/get?key=c')).hit, true, 'no soft tags given: still fresh')
      assert.deepEqual(await call('/get?key=c&soft=_N_T_/page'), { hit: false }, 'soft tag')

      assert.equal((await call('/get?key=d')).hit, true, 'an unrelated tag stays fresh')
      // An entry made after the revalidation is fresh again; one made in its millisecond counts
      // as before it (no clock orders the two). Stamped from the time the revalidation holds,
      // not by the worker's clock, which may still read that millisecond.
      await call(`/set?key=a&tags=ta&timestamp=${revalidatedAt + 1}`, {
        method: 'POST',
        body: 'A2',
      })
      const a2 = await call('/get?key=a')
      assert.equal(a2.value, 'A2', 'made a millisecond after the revalidation')
      // Written last: a value of `ta` stamped before this write and written after it could
      // count as having joined it (a 'use cache' value another invocation waited for), and take
      // its stamp.
      await call(`/set?key=a1&tags=ta&timestamp=${revalidatedAt}`, { method: 'POST', body: 'A1' })
      assert.deepEqual(
        await call('/get?key=a1'),
        { hit: false },
        "made in the revalidation's millisecond",
      )
    }),
  )

  test(
    "compressed entries: the Node write path's are read here, this runtime's are read by Node",
    checked(async () => {
      const { wasm } = require('../dist/wasm.js')
      const { writeEntry } = require('../dist/write-driver.js')
      const { inflateStored } = require('../dist/compression.js')
      const { nodeCodecs } = require('../dist/node-codecs.js')
      const page = (seed) =>
        Array.from(
          { length: 2000 },
          (_, i) => `<li id="${seed}-${i}">héllo ${(i * 7919) % 1000}</li>`,
        ).join('')
      const payload = Buffer.from(page('n'))
      // What the Node handlers store: their write driver, engine and codec.
      const engine = new wasm.Engine({ prefix: 'wk', deployment: 'workerd-remote' })
      const at = Date.now()
      const machine = wasm.WriteMachine.useCache(
        engine,
        wasm.Interface.useCache('default'),
        'from-node',
        '',
        at,
        60,
        3600,
        0,
        payload.length,
        at,
      )
      let stored
      await writeEntry(engine, machine, payload, {
        enums: wasm,
        now: () => Date.now(),
        store: async (_key, value) => {
          stored = Buffer.from(value)
        },
        script: async () => undefined,
        remember: () => undefined,
        markLocal: () => undefined,
        compress: nodeCodecs.compress,
        describe: String,
        log: { debug: () => undefined, warn: () => undefined, error: () => undefined },
      })
      assert.ok((stored[5] & 1) === 1 && stored.length < payload.length / 2, 'stored compressed')
      await call('/remote/put?key=from-node', { method: 'POST', body: stored })
      const got = await call('/remote/get?key=from-node')
      assert.equal(got.hit, true, 'workerd reads the Node entry')
      assert.equal(got.value, payload.toString())

      const other = Buffer.from(page('w'))
      const written = await callRaw('/remote/set?key=from-workerd', { method: 'POST', body: other })
      assert.ok((written[5] & 1) === 1 && written.length < other.length / 2, 'workerd compresses')
      const plain = Buffer.from(await inflateStored(engine, written, nodeCodecs))
      assert.ok(plain.subarray(plain.length - other.length).equals(other), 'Node inflates it')
      engine.free()
    }),
  )
})
