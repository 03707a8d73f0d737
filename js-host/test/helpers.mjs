// Shared by the package's tests: the Redis the suites run on, Next-shaped 'use cache' entries
import { execFileSync, spawn } from 'node:child_process'
// and stream readers, and Next's work-unit store.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { close as closeAll } from '../dist/index.js'
import { RedisTransport } from '../dist/redis.js'
import { redisCommand, redisPipeline, startRedis } from '../../tests/support/redis.mjs'
import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import { monitorLines, scriptSha } from '../../tests/support/observe.mjs'
import { waitFor } from '../../tests/support/util.mjs'

/**
 * JS_REDIS_CLUSTER=1 runs the suites that use startTestRedis on a 3-master Redis Cluster
 * instead of one redis-server (`make test-js` runs them both ways). A constant, so that a test
 * can say `{ skip: REDIS_CLUSTER && 'why' }` when it is defined.
 */
export const REDIS_CLUSTER = process.env.JS_REDIS_CLUSTER === '1'

/**
 * Starts what the suites test against: a 3-master Redis Cluster when JS_REDIS_CLUSTER=1, else
 * one redis-server ($REDIS_SERVER / $REDIS_CLI choose the binaries either way). One shape:
 * - `url`: the URL (on a cluster, a seed) and `options`: what a handler needs besides,
 *   spread into its options (`{ cluster: true }` or nothing);
 * - `command(...argv)`: one command behind the handler's back, sent to the node that owns the
 *   key in argv[1] (DBSIZE and SCAN from cursor 0 cover every master);
 * - `eachNode(...argv)`: the replies of every master (one on a single server), for INFO;
 *   `ports`: their ports, in the same order;
 * - `pids`: the server processes (to SIGSTOP them all); `client()`: a connected node-redis
 *   client or cluster client (imported on use), for Buffers; `stop()`, `describe()`.
 */
export async function startTestRedis({ logDir }) {
  if (REDIS_CLUSTER) {
    const cluster = await startRedisCluster({ logDir })
    return {
      cluster: true,
      url: cluster.url,
      options: { cluster: true },
      command: (...argv) => cluster.command(...argv),
      eachNode: (...argv) => Promise.all(cluster.nodes.map((n) => n.command(...argv))),
      ports: cluster.nodes.map((n) => n.port),
      get pids() {
        return cluster.nodes.map((n) => n.child.pid)
      },
      client: async () => {
        const { createCluster } = await import('redis')
        return createCluster({ rootNodes: [{ url: cluster.url }] }).connect()
      },
      stop: () => cluster.stop(),
      describe: () => cluster.describe(),
    }
  }
  const redis = await startRedis({ logDir })
  return {
    cluster: false,
    url: redis.url,
    options: {},
    command: (...argv) => redis.command(...argv),
    eachNode: async (...argv) => [await redis.command(...argv)],
    ports: [redis.port],
    get pids() {
      return [redis.pid]
    },
    client: async () => {
      const { createClient } = await import('redis')
      return createClient({ url: redis.url }).connect()
    },
    stop: () => redis.stop(),
    describe: () => redis.describe(),
    // The single server itself (port, pid, restarts) for the tests that need no cluster.
    server: redis,
  }
}

/**
 * A connect budget for the tests of refused connections (wrong password, no certificate): a
 * handler that waited for the connection instead of failing at once would take this long, so
 * a test asserting "quicker than this" catches that defect while no busy machine comes near.
 */
export const SLOW_CONNECT_MS = 20_000

/** Next's clock for entry timestamps and revalidations. */
export const now = () => performance.timeOrigin + performance.now()

/**
 * Asserts that Next serves this 'use cache' entry once and regenerates it behind the answer:
 * past its `revalidate` by its timestamp, inside `expire`, with a `revalidate` a page that reads
 * it accepts (Next fails a page whose revalidate is below 1 s).
 */
export function assertServedStale(entry, message = 'served stale') {
  assert.ok(entry, `${message}: an entry`)
  const at = now()
  assert.ok(entry.revalidate >= 1, `${message}: revalidate ${entry.revalidate} >= 1`)
  assert.ok(
    at > entry.timestamp + entry.revalidate * 1000,
    `${message}: past its revalidate (timestamp ${entry.timestamp}, revalidate ${entry.revalidate})`,
  )
  assert.ok(at <= entry.timestamp + entry.expire * 1000, `${message}: inside its expire`)
}

/** A 'use cache' entry as Next hands it to `set`: a one-chunk stream plus metadata. */
export function useCacheEntry(value, over = {}) {
  const payload = Buffer.from(value)
  return {
    value: new ReadableStream({
      start(c) {
        c.enqueue(payload)
        c.close()
      },
    }),
    tags: ['test'],
    stale: 30,
    timestamp: now(),
    expire: 3600,
    revalidate: 900,
    ...over,
  }
}

/** Reads a stream to its end. */
export async function bytes(stream) {
  const chunks = []
  for await (const c of stream) chunks.push(c)
  return Buffer.concat(chunks)
}

/** Reads a stream to its end as UTF-8 text. */
export async function text(stream) {
  return (await bytes(stream)).toString('utf8')
}

/**
 * Runs `fn` with console.error/warn captured; returns the captured lines. `fn` gets the array
 * as it fills, to wait for a line that is logged in the background.
 */
export async function capture(fn) {
  const lines = []
  const { error, warn } = console
  console.error = (...a) => lines.push(a.join(' '))
  console.warn = (...a) => lines.push(a.join(' '))
  try {
    await fn(lines)
  } finally {
    console.error = error
    console.warn = warn
  }
  return lines
}

/** The connect budget the failing-connection scenarios below give their handler, in ms. */
export const FAILING_CONNECT_MS = 300

/**
 * The lines an operator sees (errors and warnings) from `c`, made with `connectTimeoutMs:
 * FAILING_CONNECT_MS` against a Redis it cannot use (a refused login, an untrusted
 * certificate): a read at once (the first connection failed within its budget), then, once
 * that budget has run out, a revalidation of `tag`, a write and a read of `key` (not
 * connected: node-redis tries again in the background), and `close()` with the revalidation
 * still queued.
 */
export async function failingConnectionLines(c, key, tag) {
  return capture(async (seen) => {
    assert.equal(await c.get(key, []), undefined)
    // Past the connect budget: what is tested is what follows once it ran out.
    await new Promise((resolve) => setTimeout(resolve, FAILING_CONNECT_MS + 100))
    await c.updateTags([tag])
    await c.set(key, Promise.resolve(useCacheEntry('x')))
    assert.equal(await c.get(key, []), undefined)
    await waitFor(() => seen.some((l) => /redis connection:/.test(l)), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'the connection error line',
    })
    await closeAll()
  })
}

/**
 * The lines `c` (following by push, made with `connectTimeoutMs: FAILING_CONNECT_MS`) logs
 * until its announcement channel says why it is down, then through `close()`.
 */
export async function channelDownLines(c, key) {
  return capture(async (seen) => {
    assert.equal(await c.get(key, []), undefined)
    await waitFor(() => seen.some((l) => /tag announcements:/.test(l)), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: "the announcement channel's line",
    })
    await closeAll()
  })
}

/**
 * fleetcache reads Next's work-unit store (src/consumer.ts) from the app's `node_modules/next`,
 * resolved from the cwd, and takes a read whose consumer it cannot know to be a caching one.
 * These tests call the handlers as Next does but without Next, so every test process that loads
 * this file runs in a temp dir holding a stand-in for that one module: an AsyncLocalStorage, as
 * Next's is. Outside `inWorkUnit` a read has no store, like Next's response cache reading a page.
 */
const nextStandIn = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-next-'))
{
  const next = path.join(nextStandIn, 'node_modules', 'next')
  const dir = path.join(next, 'dist', 'server', 'app-render')
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(next, 'package.json'), '{ "name": "next", "version": "16.4.6" }\n')
  fs.writeFileSync(
    path.join(dir, 'work-unit-async-storage.external.js'),
    "'use strict'\nconst { AsyncLocalStorage } = require('node:async_hooks')\n" +
      'exports.workUnitAsyncStorage = new AsyncLocalStorage()\n',
  )
  fs.writeFileSync(
    path.join(dir, 'work-async-storage.external.js'),
    "'use strict'\nconst { AsyncLocalStorage } = require('node:async_hooks')\n" +
      'exports.workAsyncStorage = new AsyncLocalStorage()\n',
  )
  process.chdir(nextStandIn)
  process.on('exit', () => fs.rmSync(nextStandIn, { recursive: true, force: true }))
}
const workUnits = createRequire(path.join(nextStandIn, 'package.json'))(
  'next/dist/server/app-render/work-unit-async-storage.external',
).workUnitAsyncStorage

const works = createRequire(path.join(nextStandIn, 'package.json'))(
  'next/dist/server/app-render/work-async-storage.external',
).workAsyncStorage

/**
 * Runs `fn` inside a fresh Next work store: one render of a request. `incrementalCache`: the
 * `IncrementalCache` the store holds, as Next's renders do (`{ cacheHandler }` is what is read).
 */
export function inRender(fn, { incrementalCache } = {}) {
  return works.run({ route: '/stand-in', incrementalCache }, fn)
}

/**
 * Runs `fn` as one request: in an async context of its own, as Next handles each request, so
 * what the request's handling sets there (the scope `resetRequestCache` opens) ends with it.
 */
export function asRequest(fn) {
  return new Promise((resolve, reject) => {
    setImmediate(() => {
      fn().then(resolve, reject)
    })
  })
}

/**
 * Runs `fn` inside a Next work-unit store of `type` ('prerender' for a prerender or an ISR
 * regeneration, 'request', 'cache' for a 'use cache' scope, ...), with `fields`.
 */
export function inWorkUnit(type, fn, fields = {}) {
  return workUnits.run({ type, ...fields }, fn)
}

/**
 * A TCP proxy to the Redis at `target` (a URL) on 127.0.0.1 that can hold replies back, to
 * make an interleaving exact. While `hold` is set it holds the replies on every connection that
 * has sent a `GET` (with `all`, on every connection: a subscriber's messages too). A page read
 * (`EVALSHA` of page_read.lua, what a push process sends for a page while its copies may
 * serve) counts as a `GET`, not as an `EVALSHA` or a write.
 * - `replied(marker)` resolves once held replies contain `marker` (Redis has executed the
 *   command that produced it; rejects when none has in 20 s). A command passing the proxy is
 *   not yet one Redis has run: an `EVALSHA` of a script Redis has not cached is answered
 *   `NOSCRIPT`, and the host sends it again as `EVAL` only once that reply is delivered.
 *   `getsSent(n)` resolves once `n` `GET`s in all have passed; `sentGet()` / `sentEval()` when
 *   the next `GET` / `EVALSHA` passes while holding; `sentWrite()` when the next `SET` or
 *   `EVALSHA` does (each rejects when none has in 20 s).
 * - `releaseData()` delivers what is held on every connection but a subscriber's (the one that
 *   sent `SSUBSCRIBE`) and lets them pass from then on; `release()` delivers everything held,
 *   in order, and stops holding.
 * - `cut()` drops every connection and refuses new ones until `uncut()`; `cutSubscriber()`
 *   drops the subscriber's and refuses new ones.
 * - `url`: the proxy's, with the target's credentials; `close()`.
 */
export async function startHoldingProxy(target) {
  const net = await import('node:net')
  const p = { hold: false, all: false, refuse: false, gets: 0, conns: new Set(), waiters: [] }
  const pageRead = scriptSha('page_read.lua')
  const count = (text, what) => text.split(what).length - 1
  const check = () => {
    p.waiters = p.waiters.filter((w) => !w.test() || (w.resolve(), false))
  }
  p.server = net.createServer((client) => {
    if (p.refuse) {
      client.destroy()
      return
    }
    const c = { sawGet: false, sub: false, passing: false, held: [], client }
    p.conns.add(c)
    const up = net.connect(Number(target.port), target.hostname)
    client.on('data', (d) => {
      const text = d.toString('latin1')
      if (/\r\nSSUBSCRIBE\r\n/i.test(text)) c.sub = true
      const pageReads = count(text, pageRead)
      const gets = count(text, '\r\nGET\r\n') + pageReads
      if (gets > 0) {
        c.sawGet = true
        p.gets += gets
        if (p.hold) p.onGet?.()
      }
      const evals = count(text, '\r\nEVALSHA\r\n') > pageReads
      if (p.hold && evals) p.onEval?.()
      if (p.hold && (evals || /\r\nSET\r\n/i.test(text))) p.onWrite?.()
      up.write(d)
      check()
    })
    up.on('data', (d) => {
      if (p.hold && !c.passing && (p.all || c.sawGet)) {
        c.held.push(d)
        check()
      } else client.write(d)
    })
    client.on('close', () => {
      p.conns.delete(c)
      up.destroy()
    })
    up.on('close', () => client.destroy())
    client.on('error', () => {})
    up.on('error', () => {})
  })
  const until = (test) =>
    new Promise((resolve) => {
      p.waiters.push({ test, resolve })
      check()
    })
  p.getsSent = (n) => until(() => p.gets >= n)
  // Bounded: a command that never comes fails the test with its name instead of hanging it.
  const next = (what, set) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} in 20 s`)), 20_000)
      set(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  p.replied = (marker) =>
    next(`held reply carrying ${String(marker)}`, (f) =>
      until(() => [...p.conns].some((c) => Buffer.concat(c.held).includes(marker))).then(f),
    )
  p.sentGet = () => next('GET passed the proxy', (f) => (p.onGet = f))
  p.sentEval = () => next('EVALSHA passed the proxy', (f) => (p.onEval = f))
  p.sentWrite = () => next('SET or EVALSHA passed the proxy', (f) => (p.onWrite = f))
  p.releaseData = () => {
    for (const c of p.conns) {
      if (c.sub) continue
      c.passing = true
      for (const d of c.held.splice(0)) c.client.write(d)
    }
  }
  p.release = () => {
    p.hold = false
    for (const c of p.conns) {
      c.passing = false
      for (const d of c.held.splice(0)) c.client.write(d)
    }
  }
  p.cut = () => {
    p.refuse = true
    for (const c of p.conns) c.client.destroy()
    p.conns.clear()
  }
  p.uncut = () => (p.refuse = false)
  p.cutSubscriber = () => {
    p.refuse = true
    for (const c of p.conns) {
      if (!c.sub) continue
      c.client.destroy()
      p.conns.delete(c)
    }
  }
  p.close = () => {
    for (const c of p.conns) c.client.destroy()
    p.server.close()
  }
  await new Promise((resolve) => p.server.listen(0, '127.0.0.1', resolve))
  const auth = target.username ? `${target.username}:${target.password}@` : ''
  p.url = `redis://${auth}127.0.0.1:${String(p.server.address().port)}`
  return p
}

// App Router pages, as the page tests write and read them through the singular handler.

/** A page value as Next writes it: html `<p>${v}</p>`, then `pad` (to size an entry). */
export function appPage(v, pad = '') {
  return {
    kind: 'APP_PAGE',
    html: `<p>${v}</p>${pad}`,
    rscData: Buffer.from(v),
    headers: {},
    status: 200,
    postponed: undefined,
    segmentData: undefined,
  }
}

/** An APP_PAGE value carrying these tags in `x-next-cache-tags`, as Next writes it. */
export const taggedPage = (tags) => ({
  kind: 'APP_PAGE',
  html: '<p>page</p>',
  rscData: Buffer.from('rsc'),
  headers: { 'x-next-cache-tags': tags.join(',') },
  postponed: undefined,
  status: 200,
  segmentData: undefined,
})

/** The context Next reads an APP_PAGE with (no PPR, no fallback). */
export const TAGGED_PAGE_CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }

/** The context Next sets such a page with: never revalidated by time. */
export const APP_PAGE_CTX = {
  kind: 'APP_PAGE',
  cacheControl: { revalidate: false, expire: undefined },
}

/** The html of page `key` as a handler made by `h` serves it; undefined on a miss. */
export async function pageHtml(h, key) {
  return (await h().get(key, { kind: 'APP_PAGE' }))?.value.html
}

/** Makes `Handler`s as Next makes one for an on-demand revalidation (`x-prerender-revalidate`). */
export function onDemand(Handler) {
  return () => new Handler({ _requestHeaders: { 'x-prerender-revalidate': 'id' } })
}

/** Calls of `commands`, summed, that one Redis server has run so far (`INFO commandstats`). */
export async function commandCalls(server, ...commands) {
  const stats = String(await server.command('INFO', 'commandstats'))
  return commands.reduce(
    (n, c) => n + Number(new RegExp(`cmdstat_${c}:calls=(\\d+)`).exec(stats)?.[1] ?? 0),
    0,
  )
}

/**
 * Binding and wasm calls per hit kind, as `bench/crossings.mjs` counts them against the Redis at
 * `redisUrl`: in a child process, since counting wraps every export of the glue.
 */
export function crossingCounts(redisUrl) {
  const script = new URL('../../bench/crossings.mjs', import.meta.url)
  const out = execFileSync(process.execPath, [fileURLToPath(script), redisUrl], {
    encoding: 'utf8',
  })
  return JSON.parse(out.trim().split('\n').pop())
}

let instanceSeq = 0

/**
 * Handler options for one simulated server instance on `redis`, key prefix `prefix`, deployment
 * `d1`, no tier and no leases unless `extra` says so. Each call's distinct `connectTimeoutMs`
 * gives the instance its own runtime (engine, tag mirror, connection).
 */
export function instanceOptions(redis, prefix, extra = {}) {
  instanceSeq += 1
  return {
    redisUrl: redis.url,
    prefix,
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    connectTimeoutMs: 3000 + instanceSeq,
    ...redis.options,
    ...extra,
  }
}

/**
 * One simulated server instance of the singular handler (`createIncrementalCacheHandler` of the
 * package under test), with {@link instanceOptions}: returns a function that makes a handler
 * instance, as Next does per request.
 */
export function requestInstances(createIncrementalCacheHandler, redis, prefix, extra = {}) {
  const Handler = createIncrementalCacheHandler(instanceOptions(redis, prefix, extra))
  return () => new Handler({ dev: false, revalidatedTags: [] })
}

/** A `fetch` value as Next hands it to the singular handler's `set`, tagged `tags`. */
export const fetchValue = (tags, revalidate = 60) => ({
  kind: 'FETCH',
  data: {
    headers: { 'content-type': 'application/json' },
    body: Buffer.from('{"ok":true}').toString('base64'),
    url: 'https://origin.test/data',
    status: 200,
  },
  tags,
  revalidate,
})

/**
 * `process.memoryUsage()` after full collections (each followed by a turn, so that finalizers
 * and weak references settle). Needs `node --expose-gc`.
 */
export async function memoryAfterGc() {
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  return process.memoryUsage()
}

/** Stops `redis` (from startRedis), which a test may have left paused (SIGSTOP): resumed first, by PID. */
export async function resumeAndStop(redis) {
  try {
    if (redis?.pid) process.kill(redis.pid, 'SIGCONT')
  } catch {
    // not running
  }
  await redis?.stop()
}

/**
 * The commands each simulated instance sends, counted apart: one MONITOR connection per node
 * of `redis` (startTestRedis), and an ACL user per instance (`user()`: its name and a
 * `redisUrl` with it, before the instance's first command), whose connections CLIENT LIST
 * names. `sent(user, command)`: how many `command`s (`'evalsha'`, `'get'`) that user's
 * connections have sent so far, each once: Redis's own calls from a script (MONITOR's `lua`
 * client) and other clients' commands are not counted, where INFO commandstats counts every
 * client's and every script's. Every node is PINGed first (a PING of its own argument) and its
 * MONITOR read up to that PING, so a command whose reply the caller has is in the count.
 *
 * MONITOR names a command's connection by address only, and CLIENT LIST names only the
 * connections still open. So a connection is told whose it is as soon as MONITOR shows it
 * authenticate (AUTH, HELLO ... AUTH: the users' connections do, the test's own do not): a
 * CLIENT LIST then, remembered, so its commands count after it closed (a reconnect). One that
 * closed before even that CLIENT LIST saw it cannot be told: `sent` throws when such a
 * connection, seen after the user was made, sent `command`, rather than count it for nobody.
 *
 * A CLIENT LIST names a connection only if it ran after that connection authenticated: the
 * list is sent between two PINGs of its own on one connection, so MONITOR shows where it ran
 * among the commands. A list from before the AUTH names the connection's address with the
 * user it had then (`default`), and its reply can reach this process after MONITOR's line of
 * the AUTH; taken as the connection's user, it counted another user's commands for nobody
 * (2 to 16 of 60 connections authenticating together, command-monitor.test.mjs).
 * `close()`.
 */
export async function commandMonitor(redis) {
  // The helper's own commands to every node, in `redis.ports` order (the nodes' below). They
  // wait as long as the count waits for MONITOR (10 s): a loaded machine can keep Redis from
  // answering for seconds, and a count that failed at a command's usual 2 s ('redis CLIENT
  // timed out after 2000 ms') failed a test over nothing it checks.
  const eachNode = (...argv) =>
    Promise.all(redis.ports.map((port) => redisCommand(port, argv, { timeoutMs: 10_000 })))
  const options = { timeoutMs: 10_000 }
  const nodes = []
  // The CLIENT LISTs asked for connections that authenticated, until they answer.
  const asked = new Set()
  // Connections seen so far (all nodes), and how many there were when each user was made: a
  // connection seen before cannot be the user's.
  let seen = 0
  const madeAt = new Map()
  // Resolves once `test()` holds for a line of `node`'s MONITOR (checked after each line).
  const until = (node, test, what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`MONITOR: no ${what} in 10 s`)), 10_000)
      const check = () => {
        if (!test()) return false
        clearTimeout(timer)
        resolve()
        return true
      }
      if (!check()) node.waiters.push(check)
    })
  for (const port of redis.ports) {
    // `conns`: addr -> the connection there now ({ calls: command -> count, user, authed,
    // from, until: where in this node's MONITOR it began and was replaced by a later one at
    // its address }); `all`: every connection seen; `at`: addr -> those seen there;
    // `lines`: commands seen; `marks`: the helper's own PINGs seen -> where.
    const node = {
      sock: undefined,
      conns: new Map(),
      all: [],
      at: new Map(),
      lines: 0,
      marks: new Map(),
      ok: false,
      waiters: [],
    }
    node.sock = await monitorLines(port, (line) => {
      if (line === '+OK') node.ok = true
      // `1733470000.123456 [0 127.0.0.1:43210] "evalsha" "..."`; a script's calls: `[0 lua]`.
      const m = /^\+?\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line)
      if (m !== null) {
        const [, addr, cmd] = m
        const command = cmd.toLowerCase()
        const args = line.slice(line.indexOf('] ') + 2)
        node.lines += 1
        // The helper's own PINGs, by their argument (another client's PING is no mark).
        const mark = /^"ping" "(monitor-(?:mark|list)-[\d-]+)"$/i.exec(args)
        if (mark !== null) node.marks.set(mark[1], node.lines)
        // Authentication starts a user's session: a connection of its own, even at an address
        // an earlier one (closed) had.
        const authenticates =
          command === 'auth' || (command === 'hello' && / "auth" /i.test(`${args} `))
        let conn = node.conns.get(addr)
        if (conn === undefined || authenticates) {
          if (conn !== undefined) conn.until = node.lines
          conn = {
            addr,
            calls: new Map(),
            user: undefined,
            authed: authenticates,
            at: seen++,
            from: node.lines,
            until: Infinity,
          }
          node.conns.set(addr, conn)
          node.all.push(conn)
          node.at.set(addr, [...(node.at.get(addr) ?? []), conn])
        }
        conn.calls.set(command, (conn.calls.get(command) ?? 0) + 1)
        if (authenticates) {
          // MONITOR reports a command once it ran: the connection's user is set by now. A
          // CLIENT LIST that fails (Redis paused) leaves it to `sent`'s own, if still open.
          const ask = attribute()
            .catch(() => undefined)
            .finally(() => asked.delete(ask))
          asked.add(ask)
        }
      }
      node.waiters = node.waiters.filter((w) => !w())
    })
    nodes.push(node)
  }
  let lists = 0
  /**
   * Names the user of every connection open now that has none yet: CLIENT LIST between two
   * PINGs of its own, so that only the connections that authenticated before the first and
   * were still the latest at their address after the second are named from it.
   */
  async function attribute() {
    lists += 1
    const [first, last] = [`monitor-list-${String(lists)}-1`, `monitor-list-${String(lists)}-2`]
    const replies = await Promise.all(
      redis.ports.map((port) =>
        redisPipeline(
          port,
          [
            ['PING', first],
            ['CLIENT', 'LIST'],
            ['PING', last],
          ],
          options,
        ),
      ),
    )
    // One connection runs its commands in order: once MONITOR showed the last, it showed both.
    await Promise.all(nodes.map((n) => until(n, () => n.marks.has(last), 'PING')))
    nodes.forEach((node, i) => {
      const [from, to] = [node.marks.get(first), node.marks.get(last)]
      node.marks.delete(first)
      node.marks.delete(last)
      for (const line of String(replies[i][1]).split('\n')) {
        const addr = /(?:^| )addr=(\S+)/.exec(line)?.[1]
        const user = /(?:^| )user=(\S+)/.exec(line)?.[1]
        for (const conn of (addr === undefined ? undefined : node.at.get(addr)) ?? []) {
          if (conn.user === undefined && conn.from < from && conn.until > to) conn.user = user
        }
      }
    })
  }
  await Promise.all(nodes.map((n) => until(n, () => n.ok, 'OK')))
  let users = 0
  let marks = 0
  return {
    async user() {
      users += 1
      const name = `instance-${String(process.pid)}-${String(users)}`
      await eachNode('ACL', 'SETUSER', name, 'on', 'nopass', '~*', '&*', '+@all')
      madeAt.set(name, seen)
      const url = new URL(redis.url)
      url.username = name
      url.password = 'any'
      return { name, redisUrl: url.toString() }
    },
    async sent(user, command) {
      const name = typeof user === 'string' ? user : user.name
      const cmd = command.toLowerCase()
      marks += 1
      const mark = `monitor-mark-${String(marks)}`
      await eachNode('PING', mark)
      await Promise.all(nodes.map((n) => until(n, () => n.marks.delete(mark), 'PING')))
      await Promise.all([...asked])
      // A list only while a connection that sent `command` is still unnamed (one open before
      // this monitor began shows no AUTH): each costs a round trip and a wait for MONITOR, and
      // a test that counts in a loop against a 1 s bound (tags.test.mjs, push) ran past it on
      // Valkey in CI.
      const unnamed = (c) => c.user === undefined && (c.calls.get(cmd) ?? 0) > 0
      if (nodes.some((n) => n.all.some(unnamed))) await attribute()
      let total = 0
      const unknown = []
      const since = madeAt.get(name) ?? 0
      for (const node of nodes) {
        for (const conn of node.all) {
          const calls = conn.calls.get(cmd) ?? 0
          if (conn.user === name) total += calls
          else if (conn.user === undefined && conn.authed && conn.at >= since && calls > 0) {
            unknown.push(conn.addr)
          }
        }
      }
      if (unknown.length > 0) {
        throw new Error(
          `MONITOR: connection(s) ${unknown.join(', ')} authenticated, sent ${cmd} and closed before CLIENT LIST could name their user: ${name}'s count would be a guess`,
        )
      }
      return total
    },
    close() {
      for (const n of nodes) n.sock.destroy()
    },
  }
}

/**
 * Runs `step`, an idempotent set-up step of a test that later pauses Redis (SIGSTOP), until
 * one run of it meets no Redis failure: `stats()` (the package's) counts no timeout,
 * connection error, error reply or refused command during it, and the breaker stays closed.
 * The step's commands run under the short budgets the pause must exhaust, and on a loaded
 * machine one of them can run out; its retry needs no wait (a success resets the breaker's
 * consecutive count), and a breaker it opened fails the test, naming the step. At most
 * `attempts` runs. Returns what the last run of `step` returned.
 */
export async function settled(stats, what, step, { attempts = 10 } = {}) {
  const failures = () => {
    const s = stats()
    if (s === undefined) return 0
    return s.redis.timeouts + s.redis.connectionErrors + s.redis.replyErrors + s.breaker.rejected
  }
  const seen = []
  for (let i = 0; i < attempts; i++) {
    const before = failures()
    const value = await step()
    const state = stats()?.breaker.state ?? 'closed'
    if (state !== 'closed') throw new Error(`set-up step ${what}: the breaker is ${state}`)
    const failed = failures() - before
    if (failed === 0) return value
    seen.push(failed)
  }
  throw new Error(
    `set-up step ${what} met a Redis failure in each of ${String(attempts)} runs (${seen.join(', ')})`,
  )
}

/**
 * Budgets short enough for the tests of a connection that answers nothing to take seconds: a
 * connection may answer nothing for max(400, 150, 400) + 400 + 2000 = 2.8 s with them
 * (hung-connection, hung-cluster-node and sentinel tests).
 */
export const HUNG_BUDGETS = {
  connectTimeoutMs: 400,
  readTimeoutMs: 150,
  writeTimeoutMs: 400,
  breakerOpenMs: 200,
  breakerMaxOpenMs: 400,
}

/**
 * A TCP proxy to `port`. `hold()`: every connection open now passes nothing any more, either
 * way, and stays open; `holdSubscriber()`: the same for the connections that sent `SSUBSCRIBE`
 * only; `holdNew`: connections made from now on are held from the start (a login never
 * answered). `held`: the held connections, each with `closed` once the client closed its end
 * and `openedAt` (performance.now() when the proxy accepted it); `conns`: every connection, with
 * `sent` (the first 4 KiB it sent, latin1, whether passed on or held); `open()`: how many
 * connections the client has not closed; `quiet(ms, { timeoutMs })`: resolves once the client
 * has opened and closed no connection for `ms`, rejects if that takes longer than `timeoutMs`
 * (with the open count then).
 */
export async function holdingProxy(port) {
  const net = await import('node:net')
  const p = { holdNew: false, conns: [], held: [], changedAt: performance.now() }
  p.server = net.createServer((client) => {
    p.changedAt = performance.now()
    const up = net.connect(port, '127.0.0.1')
    const c = {
      client,
      up,
      held: false,
      closed: false,
      sub: false,
      openedAt: p.changedAt,
      sent: '',
    }
    p.conns.push(c)
    if (p.holdNew) {
      c.held = true
      p.held.push(c)
    }
    client.on('data', (d) => {
      if (c.sent.length < 4096) c.sent += d.toString('latin1', 0, 4096 - c.sent.length)
      if (/\r\nSSUBSCRIBE\r\n/i.test(d.toString('latin1'))) c.sub = true
      if (!c.held) up.write(d)
    })
    up.on('data', (d) => {
      if (!c.held) client.write(d)
    })
    client.on('close', () => {
      c.closed = true
      p.changedAt = performance.now()
      up.destroy()
    })
    // A held connection's upstream end closing is not passed on: the client's end stays open.
    up.on('close', () => {
      if (!c.held) client.destroy()
    })
    client.on('error', () => undefined)
    up.on('error', () => undefined)
  })
  await new Promise((resolve) => p.server.listen(0, '127.0.0.1', resolve))
  p.url = `redis://127.0.0.1:${String(p.server.address().port)}`
  p.hold = () => {
    for (const c of p.conns) {
      if (!c.held && !c.closed) {
        c.held = true
        p.held.push(c)
      }
    }
  }
  p.holdSubscriber = () => {
    for (const c of p.conns) {
      if (c.sub && !c.held && !c.closed) {
        c.held = true
        p.held.push(c)
      }
    }
  }
  p.open = () => p.conns.filter((c) => !c.closed).length
  p.quiet = async (ms, { timeoutMs }) => {
    const until = performance.now() + timeoutMs
    for (;;) {
      const left = p.changedAt + ms - performance.now()
      if (left <= 0) return
      if (performance.now() + left > until) {
        throw new Error(
          `connections through the proxy still opened or closed ${String(timeoutMs)} ms on (${String(p.conns.length)} made, ${String(p.open())} open)`,
        )
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(left, 50)))
    }
  }
  p.stop = () => {
    p.server.close()
    for (const c of p.conns) {
      c.client.destroy()
      c.up.destroy()
    }
  }
  return p
}

/**
 * A TCP server on loopback that drops the first `dropped` connections at once (during a TLS
 * handshake, for a `rediss://` URL to it) and holds the next ones unanswered: a Redis that
 * keeps a client reconnecting. `url` (rediss://), `conns` (each with `closed` once the client's
 * end closed), `stop()`.
 */
export async function droppingServer(dropped) {
  const net = await import('node:net')
  const conns = []
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined)
    // Read, so that the client's end closing is seen.
    socket.resume()
    const c = { socket, closed: false }
    socket.on('close', () => {
      c.closed = true
    })
    conns.push(c)
    if (conns.length <= dropped) socket.destroy()
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    conns,
    url: `rediss://127.0.0.1:${String(server.address().port)}`,
    stop() {
      server.close()
      for (const c of conns) c.socket.destroy()
    },
  }
}

/**
 * Options of one instance of a fleet whose Redis a test pauses around `close()`: a runtime of
 * its own (the odd connect budget `3000 + n` keeps instances apart), `budgetMs` its read and
 * write budgets (short by default: the pause must exhaust them), no leases, and a breaker that
 * opens on two failures and stays open long enough that its retry cannot run between the pause
 * and `close()`.
 */
export function pausedRedisInstance(redisUrl, prefix, n, budgetMs = 200) {
  return {
    redisUrl,
    prefix,
    deploymentId: 'd1',
    leases: false,
    readTimeoutMs: budgetMs,
    writeTimeoutMs: budgetMs,
    breakerFailures: 2,
    breakerOpenMs: 5_000,
    breakerMaxOpenMs: 5_000,
    connectTimeoutMs: 3_000 + n,
  }
}

/**
 * A transport alone (no handler: a handler's tag sync sends commands on its own timer) on
 * `url`, with a read budget of 150 ms, the longest and the connect budget as given (400 ms by
 * default), to a Redis Cluster when `cluster`, every line it logs in `lines`.
 */
export function transportOn(
  url,
  { longestCommandMs = 400, connectTimeoutMs = 400, cluster = false } = {},
) {
  const lines = []
  const log = {
    info: (l) => lines.push(l),
    warn: (l) => lines.push(l),
    error: (l) => lines.push(l),
    debug: (l) => lines.push(l),
    debugEnabled: true,
  }
  const transport = new RedisTransport({
    url,
    ...(cluster ? { cluster: true } : {}),
    commandTimeoutMs: 150,
    longestCommandMs,
    connectTimeoutMs,
    log,
  })
  return { transport, lines }
}

/**
 * Runs the ES module source `script` in a child Node process that writes `closed` on a line of
 * its own once its close() returned. Asserts the process exits by itself, with code 0 (it is
 * killed at 20 s); returns how long after that line it exited (ms), and its stdout.
 */
export async function exitAfterClosed(script) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  let closedAt
  child.stdout.on('data', (d) => {
    out += d
    if (closedAt === undefined && out.includes('closed\n')) closedAt = performance.now()
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const [code, signal] = await new Promise((resolve) =>
    child.once('exit', (c, sig) => resolve([c, sig])),
  )
  clearTimeout(killer)
  const exitedAt = performance.now()
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, out)
  assert.ok(closedAt !== undefined, out)
  return { afterClose: exitedAt - closedAt, out }
}
