// Redis Sentinel: a master, a replica and one sentinel on loopback ports. The handlers
// find the master through the sentinel (`sentinels` + a URL naming the master), share values
// and tag revalidations, and follow a `SENTINEL FAILOVER` to the promoted replica; so does the
// `fleetcache` CLI (the built binary, with the server's FLEETCACHE_REDIS_SENTINELS). A second
// master and sentinel require passwords (`requirepass` on both): the master's comes from the
// URL, the sentinel's from `sentinelPassword` / FLEETCACHE_SENTINEL_PASSWORD.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { after, afterEach, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

import { createClient } from 'redis'

import {
  close,
  createIncrementalCacheHandler,
  createUseCacheHandler,
  optionsFromEnv,
} from '../esm/index.mjs'
import { freePort } from '../../tests/support/ports.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { stopChild, tailFile, trackChild, waitFor } from '../../tests/support/util.mjs'
import {
  APP_PAGE_CTX,
  SLOW_CONNECT_MS,
  appPage,
  HUNG_BUDGETS,
  capture,
  commandMonitor,
  exitAfterClosed,
  holdingProxy,
  now,
  onDemand,
  pageHtml,
  text,
  useCacheEntry,
} from './helpers.mjs'
import {
  caughtUp,
  freshInTheGap,
  learnsByAnnouncement,
  lossLogged,
  refusedOn,
  resubscribesOnceAllowed,
  subscribedOn,
} from './push-follow.mjs'

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const run = promisify(execFile)

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')
const entryKey = (key) =>
  new wasm.Engine({ prefix: 'sntest', deployment: 'd1' }).entryKey(
    wasm.Interface.useCache('default'),
    key,
  )

let dir
let master
let replica
let sentinel
let sentinelPort
let seq = 0

/**
 * Starts a sentinel with these configuration lines (after its port and dir); resolves when
 * `ready()` does.
 */
async function startSentinel(name, lines, ready) {
  const port = await freePort()
  const conf = path.join(dir, `${name}.conf`)
  fs.writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, ...lines, ''].join('\n'))
  const logFile = path.join(dir, `${name}.log`)
  const out = fs.openSync(logFile, 'a')
  const child = trackChild(
    spawn(process.env.REDIS_SERVER || 'redis-server', [conf, '--sentinel'], {
      stdio: ['ignore', out, out],
    }),
  )
  fs.closeSync(out)
  try {
    await waitFor(() => ready(port), {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: `the sentinel ${name} to be ready`,
    })
  } catch (err) {
    await stopChild(child, { termTimeoutMs: 2000 })
    throw new Error(`${err.message}\n${tailFile(logFile, 20)}`, { cause: err })
  }
  return { child, port }
}

/** Runs the built `fleetcache` CLI with these variables; resolves with its output. */
async function cli(args, env) {
  try {
    const r = await run(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH, ...env },
      timeout: 30_000,
    })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? String(err) }
  }
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-sentinel-'))
  master = await startRedis({ logDir: dir })
  replica = await startRedis({ logDir: dir })
  // No snapshot files in the cwd: replication through the socket both ways (the old master
  // becomes a replica after the failover).
  for (const r of [master, replica]) {
    await r.command('CONFIG', 'SET', 'repl-diskless-sync', 'yes')
    await r.command('CONFIG', 'SET', 'repl-diskless-load', 'swapdb')
  }
  await replica.command('REPLICAOF', '127.0.0.1', String(master.port))
  await waitFor(
    async () => /master_link_status:up/.test(await replica.command('INFO', 'replication')),
    {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'the replica to sync',
    },
  )
  // Ready when it knows the master and has found the replica.
  ;({ child: sentinel, port: sentinelPort } = await startSentinel(
    'sentinel',
    [
      `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`,
      'sentinel down-after-milliseconds mymaster 1000',
      'sentinel failover-timeout mymaster 5000',
    ],
    async (port) => {
      const replicas = await redisCommand(port, ['SENTINEL', 'REPLICAS', 'mymaster'], {
        timeoutMs: 500,
      })
      return replicas.length === 1
    },
  ))
})

after(async () => {
  await close()
  await stopChild(sentinel, { termTimeoutMs: 5000 })
  await Promise.allSettled([master?.stop(), replica?.stop()])
})

const cliEnv = () => ({
  REDIS_URL: 'redis://mymaster',
  FLEETCACHE_REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`,
  FLEETCACHE_PREFIX: 'sntest',
})

function handler() {
  seq += 1
  return createUseCacheHandler({
    redisUrl: 'redis://mymaster',
    sentinels: [`127.0.0.1:${sentinelPort}`],
    prefix: 'sntest',
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    connectTimeoutMs: 2000 + seq,
  })
}

const entry = (value, tags = ['sn']) => useCacheEntry(value, { tags })

describe('Redis Sentinel', () => {
  // Each subtest's handlers are its own: closed when it ends, so nothing it opened is still
  // connecting (or failing to) while a later subtest judges the servers.
  afterEach(() => close())

  test('configuration: FLEETCACHE_REDIS_SENTINELS and the sentinels’ own credentials', () => {
    const env = optionsFromEnv({
      REDIS_URL: 'redis://mymaster',
      FLEETCACHE_REDIS_SENTINELS: '10.0.0.1:26379, [::1]:26380',
    })
    assert.deepEqual(env.sentinels, ['10.0.0.1:26379', '[::1]:26380'])
    assert.throws(() => optionsFromEnv({ FLEETCACHE_REDIS_SENTINELS: 'nohost' }), /host:port/)
    const auth = optionsFromEnv({
      REDIS_URL: 'redis://:masterpw@mymaster',
      FLEETCACHE_REDIS_SENTINELS: '10.0.0.1:26379',
      FLEETCACHE_SENTINEL_USERNAME: 'watcher',
      FLEETCACHE_SENTINEL_PASSWORD: 'sentinelpw',
    })
    assert.equal(auth.sentinelUsername, 'watcher')
    assert.equal(auth.sentinelPassword, 'sentinelpw')
    const configError = (re) => (err) =>
      err.code === 'ERR_FLEETCACHE_CONFIG' && re.test(err.message)
    assert.throws(
      () => optionsFromEnv({ FLEETCACHE_SENTINEL_PASSWORD: 'x' }),
      configError(/^FLEETCACHE_SENTINEL_PASSWORD: .*FLEETCACHE_REDIS_SENTINELS/),
    )
    assert.throws(
      () =>
        optionsFromEnv({
          FLEETCACHE_REDIS_SENTINELS: '10.0.0.1:26379',
          FLEETCACHE_SENTINEL_USERNAME: 'watcher',
        }),
      configError(/^FLEETCACHE_SENTINEL_USERNAME: needs FLEETCACHE_SENTINEL_PASSWORD/),
    )
    assert.throws(
      () => createUseCacheHandler({ redisUrl: 'redis://mymaster', sentinelPassword: 'x' }),
      configError(/^sentinelPassword:/),
    )
  })

  test('set and get across two instances through the sentinel; tag expiry reaches both', async () => {
    const [a, b] = [handler(), handler()]
    await a.set('k1', Promise.resolve(entry('via sentinel', ['t-sn'])))
    await b.refreshTags()
    const got = await b.get('k1', [])
    assert.ok(got, 'b reads what a wrote')
    assert.equal(await text(got.value), 'via sentinel')
    assert.equal(await master.command('EXISTS', entryKey('k1')), 1, 'written to the master')
    await a.updateTags(['t-sn'])
    await b.refreshTags()
    assert.equal(await b.get('k1', []), undefined)
  })

  test('the CLI finds the master through FLEETCACHE_REDIS_SENTINELS: stats, tags, inspect', async () => {
    const a = handler()
    await a.set('k-cli', Promise.resolve(entry('for the cli', ['t-cli'])))
    await a.updateTags(['t-cli-other'])
    const stats = await cli(['stats', '--json'], cliEnv())
    assert.equal(stats.code, 0, stats.stderr)
    const row = JSON.parse(stats.stdout).rows.find((r) => r.deployment === 'd1')
    assert.ok(row?.entries >= 1, stats.stdout)
    const tags = await cli(['tags', '--json'], cliEnv())
    assert.equal(tags.code, 0, tags.stderr)
    assert.ok(
      JSON.parse(tags.stdout).some((t) => t.tag === 't-cli-other'),
      tags.stdout,
    )
    const inspect = await cli(
      ['inspect', '--cache-key', 'k-cli', '--deployment', 'd1', '--interface', 'default', '--json'],
      cliEnv(),
    )
    assert.equal(inspect.code, 0, inspect.stderr)
    assert.equal(JSON.parse(inspect.stdout).key, entryKey('k-cli'))
    // A master name no sentinel monitors: a clear error, exit 1.
    const unknown = await cli(['stats'], { ...cliEnv(), REDIS_URL: 'redis://nosuchmaster' })
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /monitors no master named "nosuchmaster"/)
  })

  test('after SENTINEL FAILOVER, writes go to the promoted replica', async () => {
    const [a, b] = [handler(), handler()]
    await a.set('k-before', Promise.resolve(entry('before')))
    await redisCommand(sentinelPort, ['SENTINEL', 'FAILOVER', 'mymaster'])
    await waitFor(
      async () => {
        const [, port] = await redisCommand(sentinelPort, [
          'SENTINEL',
          'GET-MASTER-ADDR-BY-NAME',
          'mymaster',
        ])
        return Number(port) === replica.port
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'the sentinel to promote the replica' },
    )
    // Within a bounded time the handlers write to and read from the new master.
    await waitFor(
      async () => {
        await a.set('k-after', Promise.resolve(entry('after')))
        const got = await b.get('k-after', [])
        return got !== undefined && (await text(got.value)) === 'after'
      },
      { timeoutMs: 10_000, intervalMs: 200, what: 'a write and read through the new master' },
    )
    assert.equal(await replica.command('EXISTS', entryKey('k-after')), 1, 'on the new master')
    // The CLI follows too: a purge deletes on the new master (the old one is a read-only
    // replica now, where UNLINK fails).
    const purge = await cli(['purge', '--deployment', 'd1', '--json'], cliEnv())
    assert.equal(purge.code, 0, purge.stderr)
    assert.ok(JSON.parse(purge.stdout).deleted >= 1, purge.stdout)
    assert.equal(
      await replica.command('EXISTS', entryKey('k-after')),
      0,
      'purged on the new master',
    )
  })
})

describe("tagSync 'push' through the sentinel", () => {
  const CHANNEL = 'snpush:tags:{snpush}:announce'
  let monitor
  before(async () => {
    monitor = await commandMonitor({ url: 'redis://mymaster', ports: [master.port, replica.port] })
  })
  after(() => monitor?.close())
  afterEach(() => close())

  /** One simulated instance following by push, with an ACL user of its own (counted apart). */
  async function instance() {
    seq += 1
    const user = await monitor.user()
    const opts = {
      redisUrl: user.redisUrl,
      sentinels: [`127.0.0.1:${sentinelPort}`],
      prefix: 'snpush',
      deploymentId: 'd1',
      memoryBytes: 0,
      leases: false,
      tagSync: 'push',
      connectTimeoutMs: 2000 + seq,
    }
    return { user, opts, handler: createUseCacheHandler(opts) }
  }

  /** The server the sentinel names master now, and the other one. */
  async function roles() {
    const [, port] = await redisCommand(sentinelPort, [
      'SENTINEL',
      'GET-MASTER-ADDR-BY-NAME',
      'mymaster',
    ])
    return Number(port) === master.port
      ? { now: master, other: replica }
      : { now: replica, other: master }
  }

  test('a revalidation reaches another instance by announcement; a caught-up request makes no round trip', async () => {
    const a = await instance()
    const b = await instance()
    await a.handler.updateTags(['warm'])
    await learnsByAnnouncement(monitor, [a.handler, a.opts], [b.handler, b.opts], 'sentinel')
  })

  test("a push instance serves a page from its tier, and another instance's rewrite once announced", async () => {
    const w = await instance()
    const r = await instance()
    const W = onDemand(createIncrementalCacheHandler({ ...w.opts, tagSync: 'pull' }))
    const RH = createIncrementalCacheHandler({ ...r.opts, memoryBytes: 16 * 1024 * 1024 })
    const R = () => new RH({})
    await W().set('/sn/page', appPage('v1'), APP_PAGE_CTX)
    // The commands r's connections ran for one read: none once it serves from its tier.
    const sent = async () =>
      (await monitor.sent(r.user.name, 'get')) + (await monitor.sent(r.user.name, 'evalsha'))
    await waitFor(
      async () => {
        const before = await sent()
        assert.equal(await pageHtml(R, '/sn/page'), '<p>v1</p>')
        return (await sent()) === before
      },
      { timeoutMs: 15_000, intervalMs: 10, what: 'r to serve the page from its tier' },
    )
    // The rewrite is announced (decision 0031): r serves it, within the bound.
    await W().set('/sn/page', appPage('v2'), APP_PAGE_CTX)
    await waitFor(async () => (await pageHtml(R, '/sn/page')) === '<p>v2</p>', {
      timeoutMs: 1000,
      intervalMs: 5,
      what: 'r to serve the rewrite',
    })
  })

  test('after SENTINEL FAILOVER the subscription goes down (requests pull) and comes back on the new master', async () => {
    const a = await instance()
    const b = await instance()
    await a.handler.updateTags(['warm'])
    await caughtUp(monitor, a.handler, a.opts)
    await caughtUp(monitor, b.handler, b.opts)
    const { now: old, other: next } = await roles()
    assert.ok(await subscribedOn(old, a.user.name), 'a subscribed on the master')
    assert.ok(await subscribedOn(old, b.user.name), 'b subscribed on the master')
    // b may not subscribe on the replica once it is promoted: its gap stays open until allowed.
    await next.command('ACL', 'SETUSER', b.user.name, 'resetchannels')
    await next.command('ACL', 'LOG', 'RESET')
    const lines = await capture(async () => {
      // The replica must be in sync for the sentinel to pick it.
      await waitFor(
        async () => {
          await redisCommand(sentinelPort, ['SENTINEL', 'FAILOVER', 'mymaster'])
          return true
        },
        { timeoutMs: 15_000, intervalMs: 100, what: 'the sentinel to start a failover' },
      )
      await waitFor(async () => (await roles()).now === next, {
        timeoutMs: 15_000,
        intervalMs: 50,
        what: 'the sentinel to promote the replica',
      })
      // b tried to subscribe on the new master and was refused: its subscription is down.
      await refusedOn(next, b.user.name, CHANNEL)
    })
    lossLogged(lines)
    // Sentinel closed every client of both servers (CLIENT KILL TYPE normal), MONITOR's too:
    // the commands from here on are counted on the new master by a monitor of its own.
    const counts = await commandMonitor({ url: 'redis://mymaster', ports: [next.port] })
    try {
      // While down, every request of b pulls.
      await waitFor(
        async () => {
          await a.handler.set('k-fo2', Promise.resolve(entry('before', ['t-fo'])))
          return (await b.handler.get('k-fo2', [])) !== undefined
        },
        { timeoutMs: 15_000, intervalMs: 100, what: 'a write and read through the new master' },
      )
      // It serves what a revalidated just before, which it cannot have heard of (it is
      // subscribed nowhere).
      await freshInTheGap(a.handler, b.handler)
      await resubscribesOnceAllowed({ a, b, newMaster: next, oldMaster: old, channel: CHANNEL })
      await learnsByAnnouncement(counts, [a.handler, a.opts], [b.handler, b.opts], 'failed-over')
    } finally {
      counts.close()
    }
  })

  test('a sentinel that names a replica as the master: the subscription is never taken there, it goes on to the next sentinel', async () => {
    const { now, other } = await roles()
    await waitFor(async () => (await other.command('ROLE'))[0] === 'slave', {
      timeoutMs: 15_000,
      intervalMs: 50,
      what: 'the other server to be a replica',
    })
    // A stale view that lasts: a sentinel of its own that monitors the replica under the
    // name; it never fails it over (no agreement, a long down-after), and no sentinel with a
    // later configuration epoch for that name corrects it. The next sentinel names the master.
    const name = 'snstale'
    const names = (port) => async (sentinelAt) => {
      const reply = await redisCommand(sentinelAt, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name], {
        timeoutMs: 500,
      })
      return Array.isArray(reply) && Number(reply[1]) === port
    }
    const conf = (port) => [
      `sentinel monitor ${name} 127.0.0.1 ${String(port)} 2`,
      `sentinel down-after-milliseconds ${name} 600000`,
    ]
    const stale = await startSentinel('stale', conf(other.port), names(other.port))
    try {
      const good = await startSentinel('good', conf(now.port), names(now.port))
      try {
        const user = await monitor.user()
        const url = new URL(user.redisUrl)
        url.hostname = name
        const h = createUseCacheHandler({
          redisUrl: url.toString(),
          sentinels: [`127.0.0.1:${String(stale.port)}`, `127.0.0.1:${String(good.port)}`],
          prefix: 'snpush',
          deploymentId: 'd1',
          memoryBytes: 0,
          leases: false,
          tagSync: 'push',
          connectTimeoutMs: 2000,
        })
        await h.refreshTags().catch(() => undefined)
        await waitFor(
          async () => (await subscribedOn(now, user.name)) || subscribedOn(other, user.name),
          { timeoutMs: 15_000, intervalMs: 20, what: 'a subscription of the instance' },
        )
        assert.equal(await subscribedOn(other, user.name), false, 'not subscribed on the replica')
        assert.ok(await subscribedOn(now, user.name), 'subscribed on the master')
      } finally {
        await close()
        await stopChild(good.child, { termTimeoutMs: 5000 })
      }
    } finally {
      await stopChild(stale.child, { termTimeoutMs: 5000 })
    }
  })
})

// The master's connection held open and silent (a proxy between the handler and the master,
// docs/failures.md "A connection that stays open and answers nothing"): the Sentinel client
// is given up and made anew, asking the sentinel for the master again. The sentinel here
// monitors the master at the proxy's address, and takes 60 s to judge it down: it starts no
// failover during the test, though its own connections through the proxy are held too.
describe('a master connection that stays open and answers nothing', () => {
  let master3
  let proxy
  let sentinel3
  let sentinel3Port

  before(async () => {
    master3 = await startRedis({ logDir: dir })
    proxy = await holdingProxy(master3.port)
    const proxyPort = new URL(proxy.url).port
    ;({ child: sentinel3, port: sentinel3Port } = await startSentinel(
      'sentinel-held',
      [
        `sentinel monitor heldmaster 127.0.0.1 ${proxyPort} 1`,
        'sentinel down-after-milliseconds heldmaster 60000',
      ],
      async (port) => {
        const info = await redisCommand(port, ['SENTINEL', 'MASTER', 'heldmaster'], {
          timeoutMs: 500,
        })
        // RESP2: a flat list of names and values.
        return info[info.indexOf('flags') + 1] === 'master'
      },
    ))
  })

  after(async () => {
    await close()
    await stopChild(sentinel3, { termTimeoutMs: 5000 })
    proxy?.stop()
    await master3?.stop()
  })

  /** Options of a handler through the sentinel here, with budgets for a test of seconds. */
  const heldOptions = () => ({
    redisUrl: 'redis://heldmaster',
    sentinels: [`127.0.0.1:${sentinel3Port}`],
    prefix: 'sntest',
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    ...HUNG_BUDGETS,
  })

  /** A handler with `heldOptions()`, on a runtime of its own. */
  function heldHandler() {
    seq += 1
    return createUseCacheHandler({
      ...heldOptions(),
      connectTimeoutMs: HUNG_BUDGETS.connectTimeoutMs + seq,
    })
  }

  test('the Sentinel client is given up and made anew: hits come back from the master', async () => {
    const h = heldHandler()
    await h.set('held-1', Promise.resolve(entry('v-held')))
    const read = async () => {
      const e = await h.get('held-1', [])
      return e === undefined ? undefined : text(e.value)
    }
    assert.equal(await read(), 'v-held')
    proxy.hold()
    let got
    const until = Date.now() + 10_000
    while ((got = await read()) === undefined && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    // Before: a miss for as long as the proxy held the connection.
    assert.equal(got, 'v-held')
    assert.ok(
      proxy.held.some((c) => c.closed),
      'a held connection was closed by the instance',
    )
  })

  // The master's login never answered (a proxy that holds connections from the start): the
  // Sentinel client's connection attempt never ends by itself, and is given up as a single
  // URL's is (docs/failures.md).
  test('a master login never answered is given up: hits come back once logins are answered', async () => {
    seq += 1
    const writer = createUseCacheHandler({
      redisUrl: master3.url,
      prefix: 'sntest',
      deploymentId: 'd1',
      memoryBytes: 0,
      leases: false,
    })
    await writer.set('held-2', Promise.resolve(entry('v-held-2')))
    proxy.holdNew = true
    const heldBefore = proxy.held.length
    const h = heldHandler()
    const read = async () => {
      const e = await h.get('held-2', [])
      return e === undefined ? undefined : text(e.value)
    }
    // Longer than the 2.8 s a connection may answer nothing with these budgets.
    const until = Date.now() + 4000
    while (Date.now() < until) {
      assert.equal(await read(), undefined)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    assert.ok(proxy.held.length > heldBefore, 'a master login was held')
    proxy.holdNew = false
    let got
    const end = Date.now() + 10_000
    while ((got = await read()) === undefined && Date.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    assert.equal(got, 'v-held-2')
  })

  // A Sentinel client given up while its master's login waits, and the one made after it,
  // whose login waits too: close() leaves none of their connections open, to the master
  // (through the proxy) or to the sentinel, so that nothing of them keeps the process alive.
  test('close() after a master login was given up leaves no connection open', async () => {
    /** The connections to the sentinel here made after `after` (an id), this one excepted. */
    const sentinelClients = async (after) =>
      String(await redisCommand(sentinel3Port, ['CLIENT', 'LIST'], { timeoutMs: 1000 }))
        .split('\n')
        .filter((l) => Number(/^id=(\d+)/.exec(l)?.[1]) > after && !/cmd=client\|list/.test(l))
    const lastId = Math.max(
      0,
      ...String(await redisCommand(sentinel3Port, ['CLIENT', 'LIST'], { timeoutMs: 1000 }))
        .split('\n')
        .map((l) => Number(/^id=(\d+)/.exec(l)?.[1] ?? 0)),
    )
    proxy.holdNew = true
    const from = proxy.conns.length
    // The handler's connections to the master, not the sentinel's own links (which it names).
    const mine = () =>
      proxy.conns.slice(from).filter((c) => !/sentinel-[0-9a-f]+-(cmd|pubsub)/i.test(c.sent))
    try {
      const h = heldHandler()
      await capture(async (lines) => {
        await waitFor(
          async () => {
            assert.equal(await h.get('held-3', []), undefined)
            return lines.some((l) => /closing it and connecting anew/.test(l)) && mine().length >= 2
          },
          { timeoutMs: 10_000, intervalMs: 100, what: 'a master login given up and another held' },
        )
      })
      /** What is open of the first client's master connection, and to the sentinel. */
      const open = async () => ({
        givenUp: mine()[0].closed ? 0 : 1,
        master: mine().filter((c) => !c.closed).length,
        sentinel: (await sentinelClients(lastId)).length,
      })
      // Closed once the proxy and the sentinel see it (their close events come a turn later).
      const settles = async (want) => {
        let left
        for (let i = 0; i < 100; i++) {
          left = await open()
          if (Object.keys(want).every((k) => left[k] === want[k])) return left
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
        return left
      }
      // The client given up keeps nothing open; the one made after it has one connection to
      // the sentinel (it watches the master through it).
      const given = await settles({ givenUp: 0, sentinel: 1 })
      assert.deepEqual(
        { givenUp: given.givenUp, sentinel: given.sentinel },
        { givenUp: 0, sentinel: 1 },
        'connections open once the first client was given up',
      )
      await close()
      assert.deepEqual(
        await settles({ master: 0, sentinel: 0 }),
        { givenUp: 0, master: 0, sentinel: 0 },
        'connections left open after close()',
      )
    } finally {
      proxy.holdNew = false
    }
  })

  // The same, in a process of its own: once close() returns, nothing of the transport keeps it
  // alive (before, the sockets of the clients whose logins were held did, for as long as the
  // proxy held them). node-redis's Sentinel connection loop may still wait 1 s on a timer.
  test('a process whose master login was given up exits after close()', async () => {
    proxy.holdNew = true
    const script = `
      const { close, createUseCacheHandler } = await import(${JSON.stringify(new URL('../esm/index.mjs', import.meta.url).href)})
      const lines = []
      console.warn = (...a) => lines.push(a.join(' '))
      console.error = (...a) => lines.push(a.join(' '))
      const h = createUseCacheHandler(${JSON.stringify(heldOptions())})
      const until = Date.now() + 10000
      while (!lines.some((l) => /closing it and connecting anew/.test(l))) {
        if (Date.now() > until) {
          process.stdout.write('not given up\\n' + lines.join('\\n'))
          process.exit(2)
        }
        await h.get('held-4', [])
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      await close()
      process.stdout.write('closed\\n')
    `
    try {
      const { afterClose } = await exitAfterClosed(script)
      // The 1 s of that loop, and the process's own end.
      assert.ok(
        afterClose < 3000,
        `exited ${String(Math.round(afterClose))} ms after close() returned`,
      )
    } finally {
      proxy.holdNew = false
    }
  })
})

describe('Sentinel and master with passwords', () => {
  const MASTER_PW = 'master-s3cret'
  const SENTINEL_PW = 'sentinel-s3cret'
  let master2
  let sentinel2
  let sentinel2Port
  /** A command on the password-protected master. */
  async function onMaster(...args) {
    const c = createClient({ url: `redis://:${MASTER_PW}@127.0.0.1:${master2.port}` })
    c.on('error', () => undefined)
    await c.connect()
    try {
      return await c.sendCommand(args)
    } finally {
      c.destroy()
    }
  }

  before(async () => {
    master2 = await startRedis({ logDir: dir })
    await master2.command('CONFIG', 'SET', 'requirepass', MASTER_PW)
    ;({ child: sentinel2, port: sentinel2Port } = await startSentinel(
      'sentinel-auth',
      [
        `requirepass ${SENTINEL_PW}`,
        `sentinel monitor authmaster 127.0.0.1 ${master2.port} 1`,
        `sentinel auth-pass authmaster ${MASTER_PW}`,
        'sentinel down-after-milliseconds authmaster 1000',
      ],
      async (port) => {
        const c = createClient({ socket: { host: '127.0.0.1', port }, password: SENTINEL_PW })
        c.on('error', () => undefined)
        try {
          await c.connect()
          const info = await c.sendCommand(['SENTINEL', 'MASTER', 'authmaster'])
          // RESP3: a map.
          return info.flags === 'master'
        } catch {
          return false
        } finally {
          if (c.isOpen) c.destroy()
        }
      },
    ))
  })

  after(async () => {
    await close()
    await stopChild(sentinel2, { termTimeoutMs: 5000 })
    await master2?.stop()
  })

  // A handler with a wrong sentinel password retries its login in the background until it is
  // closed, and every attempt lands in the sentinel's ACL LOG as a failed login of `default`.
  afterEach(() => close())

  function authHandler(extra = {}) {
    seq += 1
    return createUseCacheHandler({
      redisUrl: `redis://:${MASTER_PW}@authmaster`,
      sentinels: [`127.0.0.1:${sentinel2Port}`],
      sentinelPassword: SENTINEL_PW,
      prefix: 'sntest',
      deploymentId: 'd1',
      memoryBytes: 0,
      leases: false,
      connectTimeoutMs: 2000 + seq,
      ...extra,
    })
  }

  test('both passwords given (the sentinel’s from FLEETCACHE_SENTINEL_PASSWORD): values and tags cross instances', async () => {
    const env = optionsFromEnv({
      REDIS_URL: `redis://:${MASTER_PW}@authmaster`,
      FLEETCACHE_REDIS_SENTINELS: `127.0.0.1:${sentinel2Port}`,
      FLEETCACHE_SENTINEL_PASSWORD: SENTINEL_PW,
    })
    const a = authHandler()
    const b = authHandler({ redisUrl: env.redisUrl, sentinelPassword: env.sentinelPassword })
    await a.set('k-auth', Promise.resolve(entry('behind two passwords', ['t-auth'])))
    await b.refreshTags()
    const got = await b.get('k-auth', [])
    assert.ok(got, 'b reads what a wrote')
    assert.equal(await text(got.value), 'behind two passwords')
    assert.equal(await onMaster('EXISTS', entryKey('k-auth')), 1, 'written to the master')
    await a.updateTags(['t-auth'])
    await b.refreshTags()
    assert.equal(await b.get('k-auth', []), undefined)
  })

  test("tagSync 'push': a sentinel that accepts the connection but never answers the login (hung) does not stop the subscription from going on to the next", async () => {
    const hung = await startRedis({ logDir: dir })
    process.kill(hung.pid, 'SIGSTOP')
    try {
      authHandler({
        sentinels: [`127.0.0.1:${String(hung.port)}`, `127.0.0.1:${sentinel2Port}`],
        tagSync: 'push',
        connectTimeoutMs: 1000,
      })
      await waitFor(async () => / ssub=[1-9]/.test(String(await onMaster('CLIENT', 'LIST'))), {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: 'the subscription on the master the second sentinel names',
      })
    } finally {
      process.kill(hung.pid, 'SIGCONT')
      await close()
      await hung.stop()
    }
  })

  for (const [what, extra, expect] of [
    [
      'no sentinel password',
      { sentinelPassword: undefined },
      /redis connection: a sentinel requires a password and none was given: set FLEETCACHE_SENTINEL_PASSWORD/,
    ],
    [
      'a wrong sentinel password',
      { sentinelPassword: 'wrong' },
      /redis connection: a sentinel refused the user name or password: check FLEETCACHE_SENTINEL_USERNAME and FLEETCACHE_SENTINEL_PASSWORD; see https:\/\/github\.com\/fleetcache\/fleetcache\/blob\/main\/docs\/troubleshooting\.md#at-start; reconnecting in the background$/,
    ],
    [
      'a wrong master password',
      { redisUrl: 'redis://:wrong@authmaster' },
      /redis connection: Redis refused the login: master [\d.]+:\d+: WRONGPASS .*\(check the user name and password in the Redis URL\); see https:\/\/github\.com\/fleetcache\/fleetcache\/blob\/main\/docs\/troubleshooting\.md#at-start; reconnecting in the background$/,
    ],
  ]) {
    test(`${what}: one clear error line, quick misses`, async () => {
      const c = authHandler({ connectTimeoutMs: SLOW_CONNECT_MS + seq, ...extra })
      const lines = []
      const { error, warn } = console
      console.error = (...a) => lines.push(a.join(' '))
      console.warn = (...a) => lines.push(a.join(' '))
      try {
        const t0 = now()
        for (let i = 0; i < 3; i++) assert.equal(await c.get('k-auth', []), undefined)
        await c.set('k-auth-x', Promise.resolve(entry('x')))
        // Refused at once, not after waiting for a connection.
        assert.ok(now() - t0 < SLOW_CONNECT_MS, `took ${Math.round(now() - t0)} ms`)
        await waitFor(() => lines.some((l) => /redis connection:/.test(l)), {
          timeoutMs: 10_000,
          intervalMs: 20,
          what: 'the connection error line',
        })
      } finally {
        console.error = error
        console.warn = warn
      }
      const connection = lines.filter((l) => /redis connection:/.test(l))
      assert.equal(connection.length, 1, `one connection line among:\n${lines.join('\n')}`)
      assert.match(connection[0], expect)
      assert.ok(
        lines.every((l) => !l.includes('\n')),
        'one line each',
      )
    })
  }

  test('an ACL user on the sentinel (FLEETCACHE_SENTINEL_USERNAME) with the rules of docs/operating.md', async () => {
    const admin = createClient({
      socket: { host: '127.0.0.1', port: sentinel2Port },
      password: SENTINEL_PW,
    })
    admin.on('error', () => undefined)
    await admin.connect()
    try {
      // Keep in step with the Sentinel paragraph of docs/operating.md.
      await admin.sendCommand(
        [
          'ACL SETUSER watcher on >watcher-pw &* -@all +hello',
          '+sentinel|master +sentinel|replicas +sentinel|sentinels',
          '+sentinel|get-master-addr-by-name +psubscribe',
        ]
          .join(' ')
          .split(' '),
      )
      // Nothing from earlier subtests may still be connected when the log is cleared: their
      // handlers were closed (afterEach), and a login in flight then is over once its
      // connection is gone. Only this admin connection is left.
      await waitFor(
        async () => (await admin.sendCommand(['CLIENT', 'LIST'])).trim().split('\n').length === 1,
        { timeoutMs: 10_000, intervalMs: 50, what: 'earlier clients to leave the sentinel' },
      )
      await admin.sendCommand(['ACL', 'LOG', 'RESET'])
      const a = authHandler({ sentinelUsername: 'watcher', sentinelPassword: 'watcher-pw' })
      await a.set('k-watcher', Promise.resolve(entry('via an acl user')))
      const got = await a.get('k-watcher', [])
      assert.ok(got)
      assert.equal(await text(got.value), 'via an acl user')
      const r = await cli(['stats', '--json'], {
        REDIS_URL: `redis://:${MASTER_PW}@authmaster`,
        FLEETCACHE_REDIS_SENTINELS: `127.0.0.1:${sentinel2Port}`,
        FLEETCACHE_SENTINEL_USERNAME: 'watcher',
        FLEETCACHE_SENTINEL_PASSWORD: 'watcher-pw',
        FLEETCACHE_PREFIX: 'sntest',
      })
      assert.equal(r.code, 0, r.stderr)
      const denied = await admin.sendCommand(['ACL', 'LOG'])
      assert.deepEqual(denied, [], `the sentinel denied nothing: ${JSON.stringify(denied)}`)
    } finally {
      admin.destroy()
    }
  })

  test('the CLI with FLEETCACHE_SENTINEL_PASSWORD, and without it', async () => {
    const env = {
      REDIS_URL: `redis://:${MASTER_PW}@authmaster`,
      FLEETCACHE_REDIS_SENTINELS: `127.0.0.1:${sentinel2Port}`,
      FLEETCACHE_PREFIX: 'sntest',
    }
    const ok = await cli(['stats', '--json'], { ...env, FLEETCACHE_SENTINEL_PASSWORD: SENTINEL_PW })
    assert.equal(ok.code, 0, ok.stderr)
    assert.ok(
      JSON.parse(ok.stdout).rows.some((r) => r.deployment === 'd1'),
      ok.stdout,
    )
    const refused = await cli(['stats'], env)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /set FLEETCACHE_SENTINEL_PASSWORD/)
  })
})
