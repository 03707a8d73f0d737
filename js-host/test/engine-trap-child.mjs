// The process side of engine-trap.test.mjs: one scenario per process, since a trapped engine
// cannot be closed (close() throws) and its Redis clients would keep the process alive.
// argv: scenario ('serve' | 'announce'), Redis URL, JSON of extra handler options. Prints one
// JSON line of results and exits 0; an exception that escapes ends it otherwise.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import {
  close,
  createIncrementalCacheHandler,
  createUseCacheHandler,
  stats,
} from '../esm/index.mjs'
import { text, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')

const [scenario, redisUrl, extra] = process.argv.slice(2)
const base = { redisUrl, deploymentId: 'd1', ...JSON.parse(extra) }

/** Traps inside a machine call that borrowed `engine`, as a panic there would. */
function trapWithEngineBorrowed(engine) {
  const iface = wasm.Interface.useCache('trap')
  const machine = wasm.ReadMachine.useCache(engine, iface, 'k', '', false, 0, 'tok', Date.now())
  // An object of the right class whose pointer is past the end of wasm memory: the glue's
  // class check passes; reading its borrow flag inside the call traps.
  const bogus = Object.create(wasm.Interface.prototype)
  bogus.__wbg_ptr = 0xfffffff0
  machine.texts()
  assert.throws(
    () => machine.reuseUseCacheTexts(engine, bogus, 0, 0, 1, false, 0, Date.now()),
    (err) => err instanceof WebAssembly.RuntimeError,
  )
}

async function serve() {
  const handler = createUseCacheHandler({ ...base, prefix: 'jstrap' })
  await handler.set('k-before', Promise.resolve(useCacheEntry('before', { tags: ['t'] })))
  const hit = await handler.get('k-before', [])
  const before = hit === undefined ? null : await text(hit.value)
  const statsBefore = stats()
  trapWithEngineBorrowed(handler.rt.engine)
  // A health check's view: stats() must neither throw nor look healthy now.
  let statsAfter
  try {
    const s = stats()
    statsAfter = { engine: s?.engine, hits: s?.lookups.useCache.hit }
  } catch (err) {
    statsAfter = `threw: ${String(err)}`
  }
  await handler.set('k-after', Promise.resolve(useCacheEntry('after', { tags: ['t'] })))
  const got = await handler.get('k-after', [])
  const after = got === undefined ? null : await text(got.value)
  let revalidation = 'resolved'
  await handler.updateTags(['t']).catch((err) => {
    revalidation = `rejected: ${String(err.code)}: ${String(err)}`
  })
  // The singular handler of the same configuration shares the trapped runtime (runtime.ts:
  // one per configuration and process).
  const IH = createIncrementalCacheHandler({ ...base, prefix: 'jstrap' })
  const inc = new IH({})
  let incRevalidation = 'resolved'
  await inc.revalidateTag(['t']).catch((err) => {
    incRevalidation = `rejected: ${String(err.code)}: ${String(err)}`
  })
  const again = await handler.get('k-before', [])
  const beforeAgain = again === undefined ? null : await text(again.value)
  await close()
  return {
    before,
    after,
    revalidation,
    incRevalidation,
    beforeAgain,
    statsBefore: { engine: statsBefore?.engine, hits: statsBefore?.lookups.useCache.hit },
    statsAfter,
    closed: true,
  }
}

async function announce() {
  const options = { ...base, prefix: 'jstrap2', tagSync: 'push' }
  const trapped = createUseCacheHandler({ ...options, connectTimeoutMs: 2001 })
  const other = createUseCacheHandler({ ...options, connectTimeoutMs: 2002 })
  await trapped.refreshTags()
  await other.refreshTags()
  const engine = trapped.rt.engine
  let arrived = false
  const apply = engine.applyAnnouncement
  engine.applyAnnouncement = function (msg) {
    try {
      return apply.call(this, msg)
    } finally {
      arrived = true
    }
  }
  trapWithEngineBorrowed(engine)
  // Until the subscription is up and an announcement reached the trapped engine.
  for (let i = 0; i < 200 && !arrived; i++) {
    await other.updateTags(['t'])
    for (let j = 0; j < 50 && !arrived; j++) await new Promise((r) => setImmediate(r))
  }
  // The listener's own exception, if any, surfaces within the turns after delivery.
  for (let j = 0; j < 50; j++) await new Promise((r) => setImmediate(r))
  await close()
  return { arrived, closed: true }
}

/**
 * After a trap every call that needs the engine throws "recursive use of an object detected",
 * mutable borrows only when the trapped call held it shared. This mimics a trap that held it
 * mutably (a panic inside `planOutboxHead` itself), which JS cannot provoke: from the trap on,
 * every outbox call throws.
 */
function trapMutablyOnPlan(engine) {
  const recursive = () => {
    throw new Error(
      'recursive use of an object detected which would lead to unsafe aliasing in rust',
    )
  }
  engine.planOutboxHead = function () {
    for (const name of [
      'planOutboxHead',
      'outboxRetryInMs',
      'revalidate',
      'revalidationRecorded',
      'getExpiration',
    ])
      engine[name] = recursive
    for (const name of ['outboxLength', 'resendLength', 'resendRecords'])
      Object.defineProperty(engine, name, { get: recursive })
    throw new WebAssembly.RuntimeError('unreachable')
  }
}

/**
 * The engine traps while it plans the revalidation it has just recorded for Redis (the outbox's
 * head: `planOutboxHead`, in `TagSync.replay`), in a runtime of each handler kind (two prefixes:
 * two engines). The revalidation then never reaches Redis, and no read of this instance is
 * served again: Next's call should reject with ERR_ENGINE_FAILED (docs/failures.md, "A trap in
 * the engine"). `shared`: a real trap that leaves the engine borrowed shared (its mutable calls
 * throw); `mutable`: `trapMutablyOnPlan`.
 */
async function replay(borrow) {
  const results = {}
  for (const kind of ['useCache', 'incremental']) {
    const options = { ...base, prefix: `jstrap-replay-${borrow}-${kind}` }
    const uc = createUseCacheHandler(options)
    await uc.refreshTags()
    const engine = uc.rt.engine
    if (borrow === 'shared') {
      const plan = engine.planOutboxHead
      engine.planOutboxHead = function () {
        trapWithEngineBorrowed(engine)
        return plan.call(this)
      }
    } else {
      trapMutablyOnPlan(engine)
    }
    let outcome = 'resolved'
    const fail = (err) => {
      outcome = `rejected: ${String(err.code)}: ${String(err)}`
    }
    if (kind === 'useCache') {
      await uc.updateTags(['t']).catch(fail)
      if (borrow === 'mutable') {
        // Left borrowed mutably, the engine's getExpiration throws too: the answer must be
        // "revalidated now" (Next's clock, the one the handler stamps with), not 0 ("never"),
        // which would let Next keep what its own layers hold for the tags.
        const asked = performance.timeOrigin + performance.now()
        const expiration = await uc.getExpiration(['t'])
        const answered = performance.timeOrigin + performance.now()
        results.expirationIsNow = expiration >= asked && expiration <= answered
      }
    } else {
      const IH = createIncrementalCacheHandler(options)
      await new IH({}).revalidateTag(['t']).catch(fail)
    }
    results[kind] = outcome
  }
  await close()
  return { ...results, closed: true }
}

/**
 * Traps inside a call that borrowed `machine` and not the engine (a panic in a machine's own
 * step would leave it so): the bogus object is the engine, whose borrow flag is read after the
 * machine's. The machine stays borrowed; the engine does not.
 */
function trapWithMachineBorrowed(machine, iface) {
  const bogus = Object.create(wasm.Engine.prototype)
  bogus.__wbg_ptr = 0xfffffff0
  assert.throws(
    () => machine.reuseUseCacheTexts(bogus, iface, 0, 0, 1, false, 0, Date.now()),
    (err) => err instanceof WebAssembly.RuntimeError,
  )
}

/**
 * A trap that leaves one pooled read machine borrowed (not the engine), in each handler kind:
 * the machine is the one the next read takes from the pool. The reads after it must be served
 * as before (the engine is sound), not fail one after the other on the same machine.
 */
async function machine() {
  const options = { ...base, prefix: 'jstrap-machine' }
  const uc = createUseCacheHandler(options)
  await uc.set('k', Promise.resolve(useCacheEntry('v', { tags: ['t'] })))
  const ucGet = async () => {
    const hit = await uc.get('k', [])
    return hit === undefined ? null : await text(hit.value)
  }
  const ucBefore = [await ucGet(), await ucGet()]
  trapWithMachineBorrowed(uc.machines.spare.at(-1), uc.iface)
  const ucAfter = [await ucGet(), await ucGet(), await ucGet()]

  const IH = createIncrementalCacheHandler(options)
  const inc = new IH({})
  const fetched = {
    kind: 'FETCH',
    data: {
      headers: {},
      body: Buffer.from('f').toString('base64'),
      url: 'https://o.test/',
      status: 200,
    },
    tags: ['t'],
    revalidate: 60,
  }
  await inc.set('f', fetched, { fetchCache: true, tags: ['t'], fetchIdx: 0 })
  const incGet = async () => {
    const got = await inc.get('f', { kind: 'FETCH', revalidate: 60, tags: ['t'], softTags: [] })
    return got?.value?.data?.body ?? null
  }
  // The singular handler's pool is not reachable from the class Next constructs: the machine
  // its reads reuse is caught as it is reused.
  const reuse = wasm.ReadMachine.prototype.reuseIncrementalTexts
  let pooled
  wasm.ReadMachine.prototype.reuseIncrementalTexts = function (...args) {
    pooled = this
    return reuse.apply(this, args)
  }
  const incBefore = [await incGet(), await incGet(), await incGet()]
  wasm.ReadMachine.prototype.reuseIncrementalTexts = reuse
  assert.ok(pooled, 'the singular handler reused a machine')
  trapWithMachineBorrowed(pooled, wasm.Interface.useCache('trap'))
  const incAfter = [await incGet(), await incGet(), await incGet()]
  const s = stats()
  await close()
  return { ucBefore, ucAfter, incBefore, incAfter, engine: s?.engine, closed: true }
}

const run = {
  serve,
  announce,
  machine,
  'replay-shared': () => replay('shared'),
  'replay-mutable': () => replay('mutable'),
}[scenario]
const result = await run()
process.stdout.write(`${JSON.stringify(result)}\n`)
process.exit(0)
