// Preloaded into the `next start` processes of bench/page-cost.mjs (NODE_OPTIONS=--require):
// timing wrappers put around fleetcache's and Next's cache code from the outside, so that no
// instrumentation lives in js-host/src. Recording is off until the harness turns it on; a
// wrapper that is off costs one branch per call.
//
// What is wrapped, when its module is first required (Module._load):
//   IncrementalCache#get ("next.inc.get"), both variants: next-server's copy when required, and
//                                                 the route module's (globalThis.__incrementalCache)
//   globalThis[Symbol.for('@next/cache-handlers-map')]  each cacheHandlers object's get, set,
//                                                 refreshTags, getExpiration ("uc.*"), both variants
//   fleetcache/dist/incremental-handler.js        the singular handler class's get ("fc.inc.get")
//   fleetcache/dist/value-codec.js                decodeValue ("fc.decode")
//   fleetcache/dist/read-driver.js                readEntry, readNow ("fc.readEntry")
//   fleetcache/dist/tag-sync.js                   TagSync#refresh ("fc.tags.refresh"), #page
//                                                 (one pull round trip, "fc.tags.pull")
//   fleetcache/dist/store.js                      RedisStore#get ("fc.store.get")
//   fleetcache/dist/guard.js, redis.js            GuardedTransport#send ("fc.guard.send"),
//                                                 RedisTransport#send ("redis <CMD>", with the
//                                                 reply's byte length)
//   fleetcache/wasm/node/fleetcache_wasm.js       every ReadMachine method and Engine method
//                                                 called on the way ("wasm.<name>", synchronous)
//
// Each recorded call also carries the process's CPU time during it (process.cpuUsage at both
// ends: one getrusage call more per wrapped call while recording).
//
// Timestamps are process.hrtime (CLOCK_MONOTONIC, the same clock in every process on the
// machine), in ms, so the harness can put each call into the request it belongs to.
//
// Control: an HTTP server on 127.0.0.1:$PAGECOST_PROBE_PORT.
//   POST /record?on=1|0   start / stop recording (starting also wraps the cacheHandlers map)
//   GET  /events          the recorded calls since the last GET, as JSON; clears them
//   GET  /decode-bench    the last value fleetcache decoded, decoded again 60,000 times: ns per
//                         call (p10, p50 over blocks of 200)
//   POST /profile/start   starts the V8 CPU profiler (200 µs sampling)
//   POST /profile/stop?out=<file>   stops it and writes the .cpuprofile there
//   GET  /shape           what the last call of each recorded name resolved to: types, keys in
//                         order, and for byte views their offset and buffer's size
//   GET  /cpu             per request of the server since the last GET (cleared): when it began
//                         and finished (performance.now, ms), the process's CPU time
//                         (process.cpuUsage, user + system, every thread, µs) and the event
//                         loop's active time (performance.eventLoopUtilization, ms) at both
//                         ends, and the shared clock of the events (ms) at both ends (a row:
//                         [start, cpu, loop, finish, cpu, loop, clock start, clock finish]);
//                         and the GC pauses (PerformanceObserver 'gc': start, duration)
//                         since then. Always counted (a few µs per request, alike in every
//                         variant), for bench/page-cpu.mjs.
//
// PAGECOST_EXPERIMENT=<name>[,<name>...] (bench/page-cpu.mjs): fleetcache's handlers made to do
// less, to find what a page costs (the floor's handlers are bench/lib/floor-*.cjs):
//   inc-floor     the singular handler's get, set and revalidateTag are the floor's (its
//                 resetRequestCache, which opens the request's tag scope, stays fleetcache's)
//   inc-same      the singular handler's get answers every hit of a key with the first entry it
//                 served, as the floor does (no read, no decode, no copy)
//   inc-work-same the singular handler's get does all its work, but every hit of a key is
//                 answered with the first entry it served (what Next gets, not what it costs)
//   no-begin      resetRequestCache does nothing (no request scope, no requestBegan)
//   uc-floor      the 'use cache' handler's get, set, refreshTags, getExpiration and updateTags
//                 are the floor's
//   uc-floor-get  only its get and set are the floor's
//   uc-no-refresh its refreshTags resolves at once (no tag refresh)
//   uc-same       its get answers every hit of a key with the first entry's fields and a new
//                 stream over the first entry's bytes (no read, no call into wasm)
//   uc-await      its get's answer is handed back two microtask turns later, as the floor's
//                 (which awaits its stored promise)
//   uc-own-buffer its get's entry carries a new stream of one chunk, a copy of its bytes into a
//                 Buffer of their own, as the floor's (the chunk's type is written to the output)
// and for the floor's singular handler, the other way round:
//   als-scope     its resetRequestCache opens a request scope as fleetcache's does (consumer.ts
//                 openRequestScope: an AsyncLocalStorage of its own, `enterWith`)
// and to pair two builds of fleetcache in one run (bench/page-cpu.mjs with PAGECPU_REF set to
// the base's arm, say `PAGECPU_VARIANTS=push+altbase,push+altbase+aa,push+alt,push+alt+aa`):
//   alt           every CommonJS require of a file of the app's node_modules/fleetcache loads
//                 the same file of $PAGECOST_ALT instead: another build's package directory,
//                 named `fleetcache` (the patches above match that name), with a node_modules
//                 beside it that resolves its dependencies (a symlink to the app's), e.g.
//                 /tmp/x/fleetcache (js-host's dist, esm, worker, wasm, package.json) and
//                 /tmp/x/node_modules -> examples/next-app/node_modules. The ESM loader's own
//                 loads are not redirected: next.config's `fleetcache/config` stays the app's,
//                 and the handler entries it resolves, which Next then loads, are the other's.
//   altbase       the same from $PAGECOST_ALTBASE: the base build (a copy of the app's
//                 node_modules/fleetcache) loaded the same way, as the reference, because an
//                 instance loading its handlers from outside the app may differ by itself
// Any other name does nothing (an A/A pair: `floor` and `floor+aa`). Each experiment applied
// is written to the server's output.
'use strict'
const http = require('node:http')
const inspector = require('node:inspector')
const fs = require('node:fs')
const Module = require('node:module')

const path = require('node:path')
const { performance, PerformanceObserver } = require('node:perf_hooks')

const port = Number(process.env.PAGECOST_PROBE_PORT)
const EXPERIMENT = new Set((process.env.PAGECOST_EXPERIMENT ?? '').split(',').filter(Boolean))
const MAX_EVENTS = 200_000

let on = false
/** The last decodeValue call (the original function and its arguments), for /decode-bench. */
let lastDecode
let events = []
const nowMs = () => Number(process.hrtime.bigint()) / 1e6
/** The process's CPU time so far (user + system, every thread), µs. */
const cpuNow = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}

// An event: [name, start ms, duration ms, reply bytes, process CPU during it (ms)].
function record(name, start, bytes, cpu0) {
  if (events.length < MAX_EVENTS) {
    events.push([name, start, nowMs() - start, bytes ?? 0, (cpuNow() - cpu0) / 1000])
  }
}

/** The last value each recorded call returned (for GET /shape). */
const last = new Map()

/** What a value looks like to code that takes it: types, keys in order, byte views' buffers. */
function shapeOf(v, depth = 0) {
  if (v === null || v === undefined) return String(v)
  if (typeof v === 'number') return `number ${String(v)}${Number.isInteger(v) ? '' : ' (fraction)'}`
  if (typeof v === 'string') return `string(${String(v.length)})`
  if (typeof v !== 'object') return typeof v
  const name = v.constructor?.name ?? 'Object'
  if (ArrayBuffer.isView(v)) {
    return `${name}(${String(v.byteLength)}) at ${String(v.byteOffset)} of ${String(v.buffer.byteLength)}`
  }
  if (depth > 3) return name
  if (v instanceof Map) {
    return {
      [`${name}(${String(v.size)})`]: [...v]
        .slice(0, 4)
        .map(([k, x]) => [k, shapeOf(x, depth + 1)]),
    }
  }
  if (Array.isArray(v))
    return { [`Array(${String(v.length)})`]: v.slice(0, 4).map((x) => shapeOf(x, depth + 1)) }
  if (typeof v.getReader === 'function') return name
  const out = { '(class)': name }
  for (const k of Object.keys(v)) out[k] = shapeOf(v[k], depth + 1)
  return out
}

function byteLength(reply) {
  if (reply instanceof Uint8Array) return reply.byteLength
  if (typeof reply === 'string') return Buffer.byteLength(reply)
  if (Array.isArray(reply)) return reply.reduce((a, r) => a + byteLength(r), 0)
  return 0
}

// PAGECOST_PROBE_WRAPS=2: every wrapper is put around a second one of its own, recorded as
// "<name> (inner)": the outer's time less the inner's is one wrapper's own cost (an A/A of the
// probe), and the run's totals against a run without it show what the wrappers add.
const WRAPS = process.env.PAGECOST_PROBE_WRAPS === '2' ? 2 : 1

// Times fn's calls until its promise settles (or it returns); `bytes(result)` for replies.
function timed(name, fn, bytes) {
  if (typeof fn !== 'function' || fn.__pagecost) return fn
  const label = typeof name === 'function' ? name : () => name
  if (WRAPS === 2) fn = wrap((args) => `${label(args)} (inner)`, fn, bytes)
  return wrap(label, fn, bytes)
}

function wrap(label, fn, bytes) {
  const wrapped = function (...args) {
    if (!on) return fn.apply(this, args)
    const start = nowMs()
    const cpu0 = cpuNow()
    let result
    try {
      result = fn.apply(this, args)
    } catch (err) {
      record(label(args), start, 0, cpu0)
      throw err
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      return result.then(
        (v) => {
          record(label(args), start, bytes ? bytes(v) : 0, cpu0)
          last.set(label(args), v)
          return v
        },
        (err) => {
          record(label(args), start, 0, cpu0)
          throw err
        },
      )
    }
    record(label(args), start, bytes ? bytes(result) : 0, cpu0)
    return result
  }
  Object.defineProperty(wrapped, '__pagecost', { value: true })
  Object.defineProperty(wrapped, 'name', { value: fn.name })
  return wrapped
}

function wrapMethods(obj, names, prefix) {
  if (!obj) return
  for (const n of names) {
    const d = Object.getOwnPropertyDescriptor(obj, n)
    if (d && typeof d.value === 'function' && d.writable) obj[n] = timed(`${prefix}${n}`, d.value)
  }
}

function wrapAllMethods(obj, prefix) {
  if (!obj) return
  for (const n of Object.getOwnPropertyNames(obj)) {
    if (n === 'constructor' || n === 'free' || n === '__destroy_into_raw') continue
    const d = Object.getOwnPropertyDescriptor(obj, n)
    if (d && typeof d.value === 'function' && d.writable) obj[n] = timed(`${prefix}${n}`, d.value)
  }
}

const wrappedHandlers = new WeakSet()
function wrapCacheHandlers() {
  // The route modules carry their own copy of IncrementalCache (bundled into Next's compiled
  // app-page runtime) and leave the request's instance here.
  const inc = globalThis.__incrementalCache
  if (inc) wrapMethods(Object.getPrototypeOf(inc), ['get'], 'next.inc.')
  const map = globalThis[Symbol.for('@next/cache-handlers-map')]
  if (!(map instanceof Map)) return
  for (const handler of map.values()) {
    if (!handler || wrappedHandlers.has(handler)) continue
    wrappedHandlers.add(handler)
    for (const n of ['get', 'set', 'refreshTags', 'getExpiration', 'updateTags']) {
      const fn = handler[n]
      if (typeof fn === 'function') handler[n] = timed(`uc.${n}`, fn)
    }
  }
}

// ---- experiments (PAGECOST_EXPERIMENT) ----

function incExperiments(proto) {
  if (EXPERIMENT.has('inc-floor')) {
    const Floor = require(path.join(__dirname, 'floor-incremental-handler.cjs'))
    for (const n of ['get', 'set', 'revalidateTag']) proto[n] = Floor.prototype[n]
  }
  if (EXPERIMENT.has('inc-same')) {
    const get = proto.get
    const first = new Map()
    proto.get = function (key, ctx) {
      const had = first.get(key)
      if (had !== undefined) return Promise.resolve(had)
      return get.call(this, key, ctx).then((entry) => {
        if (entry !== null) first.set(key, entry)
        return entry
      })
    }
  }
  if (EXPERIMENT.has('inc-work-same')) {
    const get = proto.get
    const first = new Map()
    proto.get = function (key, ctx) {
      return get.call(this, key, ctx).then((entry) => {
        const had = first.get(key)
        if (had !== undefined) return had
        if (entry !== null) first.set(key, entry)
        return entry
      })
    }
  }
  if (EXPERIMENT.has('no-begin')) proto.resetRequestCache = function () {}
  for (const n of ['inc-floor', 'inc-same', 'inc-work-same', 'no-begin'])
    if (EXPERIMENT.has(n)) applied(n)
}

function applied(name) {
  process.stderr.write(`[page-cost-probe] experiment applied: ${name}\n`)
}

function floorExperiments(Floor) {
  if (EXPERIMENT.has('als-scope')) {
    const { AsyncLocalStorage } = require('node:async_hooks')
    const scopes = new AsyncLocalStorage()
    Floor.prototype.resetRequestCache = function () {
      const earlier = scopes.getStore()?.handlers ?? []
      scopes.enterWith({ handlers: [...earlier.slice(-7), this] })
    }
    applied('als-scope')
  }
}

function ucExperiments(handler) {
  const floor = require(path.join(__dirname, 'floor-use-cache-handler.cjs'))
  if (EXPERIMENT.has('uc-floor')) {
    for (const n of ['get', 'set', 'refreshTags', 'getExpiration', 'updateTags']) {
      handler[n] = floor[n]
    }
  }
  if (EXPERIMENT.has('uc-floor-get')) for (const n of ['get', 'set']) handler[n] = floor[n]
  if (EXPERIMENT.has('uc-no-refresh')) handler.refreshTags = () => Promise.resolve()
  if (EXPERIMENT.has('uc-same')) {
    const get = handler.get
    const first = new Map()
    handler.get = async function (key, ...rest) {
      const had = first.get(key)
      if (had !== undefined) {
        const { bytes, ...meta } = had
        return {
          ...meta,
          value: new ReadableStream({
            start(c) {
              c.enqueue(bytes)
              c.close()
            },
          }),
        }
      }
      const entry = await get.call(this, key, ...rest)
      if (entry === undefined) return entry
      const chunks = []
      for await (const c of entry.value) chunks.push(c)
      const { value, ...meta } = entry
      first.set(key, { ...meta, bytes: Buffer.concat(chunks) })
      return handler.get(key, ...rest)
    }
  }
  if (EXPERIMENT.has('uc-await')) {
    const get = handler.get
    handler.get = async function (...args) {
      const entry = await get.apply(this, args)
      await null
      return entry
    }
  }
  if (EXPERIMENT.has('uc-own-buffer')) {
    const get = handler.get
    let told = false
    handler.get = async function (...args) {
      const entry = await get.apply(this, args)
      if (entry === undefined) return entry
      const chunks = []
      for await (const c of entry.value) chunks.push(c)
      if (!told) {
        told = true
        const c = chunks[0]
        process.stderr.write(
          `[page-cost-probe] uc-own-buffer: ${String(chunks.length)} chunk(s), the first a ${c?.constructor?.name} at ${String(c?.byteOffset)} of ${String(c?.buffer.byteLength)}\n`,
        )
      }
      const bytes = Buffer.concat(chunks)
      return {
        ...entry,
        value: new ReadableStream({
          start(c) {
            c.enqueue(bytes)
            c.close()
          },
        }),
      }
    }
  }
  for (const n of [
    'uc-floor',
    'uc-floor-get',
    'uc-no-refresh',
    'uc-same',
    'uc-await',
    'uc-own-buffer',
  ])
    if (EXPERIMENT.has(n)) applied(n)
}

// ---- per-request CPU, event loop and GC (GET /cpu) ----

let gcs = []
new PerformanceObserver((list) => {
  for (const e of list.getEntries())
    if (gcs.length < MAX_EVENTS) gcs.push([e.startTime, e.duration])
}).observe({ entryTypes: ['gc'] })

let requests = []
let probeServer
const emit = http.Server.prototype.emit
http.Server.prototype.emit = function (event, req, res) {
  if (event === 'request' && this !== probeServer && requests.length < MAX_EVENTS) {
    const row = [performance.now(), cpuNow(), performance.eventLoopUtilization().active, 0, 0, 0]
    row.push(nowMs(), 0)
    requests.push(row)
    res.once('finish', () => {
      row[3] = performance.now()
      row[4] = cpuNow()
      row[5] = performance.eventLoopUtilization().active
      row[7] = nowMs()
    })
  }
  return emit.apply(this, arguments)
}

const sep = '[\\\\/]'
const patches = [
  [
    new RegExp(`${sep}next${sep}dist${sep}server${sep}lib${sep}incremental-cache${sep}index\\.js$`),
    (m) => wrapMethods(m.IncrementalCache?.prototype, ['get'], 'next.inc.'),
  ],
  [
    new RegExp(`${sep}fleetcache${sep}dist${sep}incremental-handler\\.js$`),
    (m) => {
      const create = m.createIncrementalCacheHandler
      m.createIncrementalCacheHandler = function (...args) {
        const Cls = create.apply(this, args)
        incExperiments(Cls.prototype)
        wrapMethods(Cls.prototype, ['get'], 'fc.inc.')
        return Cls
      }
    },
  ],
  [new RegExp(`${sep}floor-incremental-handler\\.cjs$`), (m) => floorExperiments(m)],
  [new RegExp(`${sep}fleetcache${sep}dist${sep}use-cache\\.js$`), (m) => ucExperiments(m)],
  [
    new RegExp(`${sep}fleetcache${sep}dist${sep}value-codec\\.js$`),
    (m) => {
      const decode = m.decodeValue
      m.decodeValue = timed('fc.decode', function (...args) {
        lastDecode = { fn: decode, args }
        return decode.apply(this, args)
      })
    },
  ],
  [
    new RegExp(`${sep}fleetcache${sep}dist${sep}read-driver\\.js$`),
    (m) => {
      // The singular handler reads through readNow (a hit from the tier is answered without a
      // promise), the 'use cache' handler through readNow or tierHit: both count as a read.
      m.readEntry = timed('fc.readEntry', m.readEntry)
      m.readNow = timed('fc.readEntry', m.readNow)
    },
  ],
  [
    new RegExp(`${sep}fleetcache${sep}dist${sep}tag-sync\\.js$`),
    (m) => {
      const p = m.TagSync?.prototype
      if (!p) return
      p.refresh = timed('fc.tags.refresh', p.refresh)
      p.page = timed('fc.tags.pull', p.page)
    },
  ],
  [
    new RegExp(`${sep}fleetcache${sep}dist${sep}store\\.js$`),
    (m) => wrapMethods(m.RedisStore?.prototype, ['get'], 'fc.store.'),
  ],
  [
    new RegExp(`${sep}fleetcache${sep}dist${sep}guard\\.js$`),
    (m) => wrapMethods(m.GuardedTransport?.prototype, ['send'], 'fc.guard.'),
  ],
  [
    new RegExp(`${sep}fleetcache${sep}dist${sep}redis\\.js$`),
    (m) => {
      const p = m.RedisTransport?.prototype
      if (!p) return
      p.send = timed((args) => `redis ${String(args[0]?.[0]).toUpperCase()}`, p.send, byteLength)
    },
  ],
  [
    new RegExp(`${sep}fleetcache${sep}wasm${sep}node${sep}fleetcache_wasm\\.js$`),
    (m) => {
      wrapAllMethods(m.ReadMachine?.prototype, 'wasm.ReadMachine#')
      wrapMethods(m.ReadMachine, ['incremental', 'useCache'], 'wasm.ReadMachine.')
      wrapAllMethods(m.Engine?.prototype, 'wasm.Engine#')
    },
  ],
]

// `alt` / `altbase`: fleetcache resolved from another package directory (see the header).
const altDir = EXPERIMENT.has('altbase')
  ? process.env.PAGECOST_ALTBASE
  : EXPERIMENT.has('alt')
    ? process.env.PAGECOST_ALT
    : undefined
if (EXPERIMENT.has('alt') || EXPERIMENT.has('altbase')) {
  if (!altDir) throw new Error('page-cost-probe: alt needs PAGECOST_ALT, altbase PAGECOST_ALTBASE')
  const marker = `${path.sep}node_modules${path.sep}fleetcache${path.sep}`
  const resolve = Module._resolveFilename
  Module._resolveFilename = function (...args) {
    const file = resolve.apply(this, args)
    // Without a parent: the ESM loader loading a file it resolved itself, whose exports it then
    // reads back under that file's name, so it is left as it is.
    const at = args[1] ? file.lastIndexOf(marker) : -1
    return at < 0 ? file : path.join(altDir, file.slice(at + marker.length))
  }
  applied(EXPERIMENT.has('altbase') ? 'altbase' : 'alt')
}

const done = new Set()
const load = Module._load
Module._load = function (request, parent, isMain) {
  const exports = load.apply(this, arguments)
  // Next requires builtins per request (node:path, say): those are never patched.
  if (done.size < patches.length && !Module.isBuiltin(request)) {
    let file
    try {
      file = Module._resolveFilename(request, parent, isMain)
    } catch {
      return exports
    }
    for (let i = 0; i < patches.length; i++) {
      if (done.has(i) || !patches[i][0].test(file)) continue
      done.add(i)
      patches[i][1](exports)
    }
  }
  return exports
}

let session
function post(method, params) {
  return new Promise((resolve, reject) =>
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))),
  )
}

if (port > 0) {
  const server = (probeServer = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://probe')
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    try {
      if (url.pathname === '/record') {
        wrapCacheHandlers()
        on = url.searchParams.get('on') === '1'
        return reply(200, { on, patched: [...done].length })
      }
      if (url.pathname === '/shape') {
        return reply(200, Object.fromEntries([...last].map(([k, v]) => [k, shapeOf(v)])))
      }
      if (url.pathname === '/cpu') {
        const out = { pid: process.pid, requests, gcs, now: [performance.now(), cpuNow()] }
        requests = []
        gcs = []
        return reply(200, out)
      }
      if (url.pathname === '/events') {
        const out = events
        events = []
        return reply(200, out)
      }
      if (url.pathname === '/decode-bench') {
        // The last value decoded, decoded again in blocks of BLOCK calls: ns per call.
        if (lastDecode === undefined) return reply(404, { error: 'nothing decoded yet' })
        const BLOCK = 200
        const per = []
        for (let b = 0; b < 300; b++) {
          const s = process.hrtime.bigint()
          for (let i = 0; i < BLOCK; i++) lastDecode.fn(...lastDecode.args)
          per.push(Number(process.hrtime.bigint() - s) / BLOCK)
        }
        per.sort((a, b) => a - b)
        const partBytes = lastDecode.args[3].reduce((a, p) => a + p.byteLength, 0)
        return reply(200, {
          p10: per[Math.floor(per.length * 0.1)],
          p50: per[Math.floor(per.length / 2)],
          jsonBytes: lastDecode.args[3][0]?.byteLength ?? 0,
          partBytes,
        })
      }
      if (url.pathname === '/profile/start') {
        session ??= new inspector.Session()
        try {
          session.connect()
        } catch {
          // connected already
        }
        await post('Profiler.enable')
        await post('Profiler.setSamplingInterval', { interval: 200 })
        await post('Profiler.start')
        return reply(200, { started: true })
      }
      if (url.pathname === '/profile/stop') {
        const { profile } = await post('Profiler.stop')
        fs.writeFileSync(url.searchParams.get('out'), JSON.stringify(profile))
        return reply(200, { nodes: profile.nodes.length })
      }
      reply(404, { error: 'unknown' })
    } catch (err) {
      reply(500, { error: String(err && err.stack) })
    }
  }))
  // A child process of the server inherits NODE_OPTIONS: only the first one listens.
  server.on('error', () => {})
  server.listen(port, '127.0.0.1')
  server.unref()
}
