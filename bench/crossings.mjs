// Counts wasm boundary crossings per cache hit. Run by bench/run.mjs in a child process
// (`node bench/crossings.mjs <redis url>`), because counting wraps every export of the wasm
// instance and would slow the latency measurements of the process that does it.
//
// Two counts per operation, averaged over COUNTED operations after a warm-up:
// - binding calls: calls JS makes into the wasm-bindgen API (methods, getters, constructors,
//   free functions), what the host code writes;
// - wasm calls: calls into the instance's raw exports, which also counts the glue's own
//   allocations and frees for strings, slices and result objects.
// Prints one JSON object on stdout.
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkgDir = path.join(here, '..', 'js-host')
const require = createRequire(path.join(pkgDir, 'package.json'))

const COUNTED = 200
let wasmCalls = 0
let bindingCalls = 0

// Before the glue loads: every instance created from now on has its function exports counted.
const NativeInstance = WebAssembly.Instance
WebAssembly.Instance = function CountedInstance(module, imports) {
  const instance = new NativeInstance(module, imports)
  const exports = {}
  for (const [name, value] of Object.entries(instance.exports)) {
    exports[name] =
      typeof value === 'function'
        ? (...args) => {
            wasmCalls++
            return value(...args)
          }
        : value
  }
  return { exports }
}

const glue = require('./wasm/node/fleetcache_wasm.js')

/** Wraps every function and getter of the binding's exports with a counter. */
function countBinding(target) {
  for (const [name, value] of Object.entries(target)) {
    if (typeof value !== 'function') continue
    if (value.prototype !== undefined) {
      for (const key of Object.getOwnPropertyNames(value.prototype)) {
        if (key === 'constructor') continue
        const d = Object.getOwnPropertyDescriptor(value.prototype, key)
        if (d === undefined) continue
        if (typeof d.value === 'function') {
          const f = d.value
          value.prototype[key] = function counted(...args) {
            bindingCalls++
            return f.apply(this, args)
          }
        } else if (d.get !== undefined) {
          const get = d.get
          Object.defineProperty(value.prototype, key, {
            ...d,
            get() {
              bindingCalls++
              return get.call(this)
            },
          })
        }
      }
      for (const key of Object.getOwnPropertyNames(value)) {
        const d = Object.getOwnPropertyDescriptor(value, key)
        if (d === undefined || typeof d.value !== 'function' || key === 'prototype') continue
        const f = d.value
        value[key] = function counted(...args) {
          bindingCalls++
          return f.apply(this, args)
        }
      }
    }
  }
}
countBinding(glue)

const { createUseCacheHandler, createIncrementalCacheHandler, close } = require('./dist/index.js')

function stream(bytes) {
  return new ReadableStream({
    start(c) {
      c.enqueue(bytes)
      c.close()
    },
  })
}

async function drain(s) {
  const reader = s.getReader()
  for (;;) if ((await reader.read()).done) return
}

async function perOp(fn) {
  for (let i = 0; i < 20; i++) await fn()
  const w0 = wasmCalls
  const b0 = bindingCalls
  for (let i = 0; i < COUNTED; i++) await fn()
  return {
    binding: (bindingCalls - b0) / COUNTED,
    wasm: (wasmCalls - w0) / COUNTED,
  }
}

async function main() {
  const redisUrl = process.argv[2]
  if (redisUrl === undefined) throw new Error('usage: node bench/crossings.mjs <redis url>')
  // Stored plain: the count is the plain hit's (a compressed hit adds one, planInflation).
  const common = { prefix: 'bench-x', deploymentId: 'x', redisUrl, compressMinBytes: false }
  const payload = Buffer.alloc(10 * 1024, 0x61)
  const entry = () => ({
    value: stream(payload),
    tags: ['bench'],
    stale: 30,
    timestamp: performance.timeOrigin + performance.now(),
    expire: 3600,
    revalidate: 600,
  })
  const redisOnly = createUseCacheHandler({ ...common, memoryBytes: 0 })
  // The embedded store (no Redis): its hit is read from the store in the machine's first call.
  const embedded = createUseCacheHandler({ ...common, redisUrl: undefined, memoryBytes: 2 ** 20 })
  await embedded.set('k', Promise.resolve(entry()))
  const tiered = createUseCacheHandler({ ...common, memoryBytes: 64 * 2 ** 20 })
  await redisOnly.set('k', Promise.resolve(entry()))
  await redisOnly.refreshTags()
  const hit = (h) => async () => {
    const e = await h.get('k', ['_N_T_/x'])
    if (e === undefined) throw new Error('crossings: expected a hit')
    await drain(e.value)
  }
  const Inc = createIncrementalCacheHandler({ ...common, memoryBytes: 0 })
  const inc = new Inc({})
  const page = {
    kind: 'APP_PAGE',
    html: '<html>' + 'x'.repeat(10 * 1024) + '</html>',
    rscData: Buffer.alloc(2048, 0x62),
    headers: { 'x-next-cache-tags': '_N_T_/p' },
    postponed: undefined,
    status: 200,
    segmentData: undefined,
  }
  await inc.set('/p', page, { cacheControl: { revalidate: 600, expire: 3600 } })
  const incHit = async () => {
    const e = await inc.get('/p', { kind: 'APP_PAGE', isRoutePPREnabled: false })
    if (e === null || e.value === null) throw new Error('crossings: expected a page hit')
  }
  // Push mode, caught up: a page hit comes from the tier (decision 0031), as in production.
  const PushInc = createIncrementalCacheHandler({
    ...common,
    prefix: 'bench-xp',
    memoryBytes: 64 * 2 ** 20,
    tagSync: 'push',
  })
  const pushInc = new PushInc({})
  await pushInc.set('/p', page, { cacheControl: { revalidate: 600, expire: 3600 } })
  const incTierHit = async () => {
    const e = await pushInc.get('/p', { kind: 'APP_PAGE', isRoutePPREnabled: false })
    if (e === null || e.value === null) throw new Error('crossings: expected a page hit')
  }
  // Until a get makes no binding call of a Redis read: subscribed, caught up and the page copy
  // bound (bounded; a page hit through Redis makes many more calls than one from the tier).
  let warm = false
  for (let i = 0; i < 500 && !warm; i++) {
    const b0 = bindingCalls
    await incTierHit()
    warm = bindingCalls - b0 <= 6
    if (!warm) await new Promise((res) => setTimeout(res, 10))
  }
  if (!warm) throw new Error('crossings: the push page never served from the tier')
  const result = {
    useCacheRedisHit: await perOp(hit(redisOnly)),
    useCacheTierHit: await perOp(hit(tiered)),
    useCacheEmbeddedHit: await perOp(hit(embedded)),
    incrementalRedisHit: await perOp(incHit),
    incrementalTierHit: await perOp(incTierHit),
    refreshTags: await perOp(() => redisOnly.refreshTags()),
  }
  await close()
  process.stdout.write(JSON.stringify(result) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
