// The tag announcement subscription (tagSync: 'push', tag-channel.ts) closed while one of its
// connections is still in its TLS handshake. node-redis keeps a socket only once it connected,
// so its destroy() leaves a handshake under way open until the connect budget ends it, and a
// handshake that completes after destroy() gives a ready connection that nothing closes. The
// proxy here holds every connection from its first byte (a TLS ClientHello never answered);
// the connect budget is long, so a socket left to it stays open well past the bound below.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { redisSubscribe } from '../dist/tag-channel.js'
import { startRedis } from '../../tests/support/redis.mjs'
import { waitFor } from '../../tests/support/util.mjs'
import { SLOW_CONNECT_MS, droppingServer, holdingProxy } from './helpers.mjs'

let redis

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-push-sockets-'))
  redis = await startRedis({ logDir })
})

after(async () => {
  await redis?.stop()
})

const silent = { error() {}, warn() {}, info() {}, debug() {} }
const events = { up() {}, down() {}, message() {} }

/** Subscribes through a proxy that holds every connection, closes the subscription while its
 * first connection is held, and returns that connection. */
async function closedWhileHeld(extra) {
  const proxy = await holdingProxy(redis.port)
  proxy.holdNew = true
  try {
    const subscribe = redisSubscribe({
      url: proxy.url.replace(/^redis:/, 'rediss:'),
      commandTimeoutMs: 500,
      connectTimeoutMs: SLOW_CONNECT_MS,
      log: silent,
      ...extra(proxy),
    })
    const stop = subscribe('{t}:announce', events)
    await waitFor(() => proxy.held.length > 0, { timeoutMs: 5000, what: 'a held connection' })
    await stop()
    const held = proxy.held[0]
    // Far below the connect budget (20 s) that would end it otherwise.
    await waitFor(() => held.closed, { timeoutMs: 3000, what: 'the held connection closed' })
    assert.equal(proxy.open(), 0)
  } finally {
    proxy.server.close()
    for (const c of proxy.conns) c.client.destroy()
  }
}

describe('closed during a TLS handshake, the subscription leaves no connection open', () => {
  test('a single Redis', () => closedWhileHeld(() => ({})))

  test('a Redis Cluster seed', () => closedWhileHeld(() => ({ cluster: true })))
})

// Closed while a search for the channel's server is under way: the search opens no connection
// after close() (a connection it opened then would be left to its connect budget), and one it
// has open (a Sentinel's, asked for the master) is closed with it.
describe('closed during a search for the server, the subscription opens and leaves no connection', () => {
  test('a Redis Cluster seed held, another seed not yet tried', async () => {
    const first = await holdingProxy(redis.port)
    const second = await holdingProxy(redis.port)
    first.holdNew = true
    second.holdNew = true
    try {
      const subscribe = redisSubscribe({
        url: first.url.replace(/^redis:/, 'rediss:'),
        seeds: [second.url],
        cluster: true,
        commandTimeoutMs: 500,
        connectTimeoutMs: SLOW_CONNECT_MS,
        log: silent,
      })
      const stop = subscribe('{t}:announce', events)
      await waitFor(() => first.held.length > 0, { timeoutMs: 5000, what: 'a held connection' })
      await stop()
      // Either seed's proxy sees nothing new for 1 s: the search has ended.
      await first.quiet(1000, { timeoutMs: 3000 })
      await second.quiet(1000, { timeoutMs: 3000 })
      assert.deepEqual(
        [first.open(), second.conns.length],
        [0, 0],
        'connections open on the first seed, made to the second',
      )
    } finally {
      first.stop()
      second.stop()
    }
  })

  test('a sentinel that leaves the question for the master unanswered', async () => {
    const sentinel = await holdingProxy(redis.port)
    sentinel.holdNew = true
    try {
      const subscribe = redisSubscribe({
        url: 'redis://mymaster',
        sentinels: [sentinel.url.replace(/^redis:\/\//, '')],
        commandTimeoutMs: 500,
        connectTimeoutMs: SLOW_CONNECT_MS,
        log: silent,
      })
      const stop = subscribe('{t}:announce', events)
      await waitFor(() => sentinel.held.length > 0, { timeoutMs: 5000, what: 'a held connection' })
      await stop()
      const held = sentinel.held[0]
      // Far below the budget of the question (20 s) that would end it otherwise.
      await waitFor(() => held.closed, { timeoutMs: 3000, what: 'the held connection closed' })
      await sentinel.quiet(1000, { timeoutMs: 3000 })
      assert.deepEqual([sentinel.open(), sentinel.conns.length], [0, 1])
    } finally {
      sentinel.stop()
    }
  })
})

// The single Redis's subscription keeps one client, which node-redis reconnects, and so one
// abort signal, for its whole life; Node (20.20 and 24.22, measured) leaves a socket's listener on
// its signal once the socket closed, each holding that socket. A Redis down for a while would pile them up, one a
// reconnection (the process warns past 10: MaxListenersExceededWarning).
test('a single Redis that drops every connection: reconnections leave no listener on the signal, a held one is still closed at close', async () => {
  const { EventEmitter } = await import('node:events')
  const dropped = 6
  const { conns, url, stop: stopServer } = await droppingServer(dropped)
  const warnings = []
  const onWarning = (w) => {
    if (/abort listeners added to \[AbortSignal\]/.test(w.message)) warnings.push(w.message)
  }
  process.on('warning', onWarning)
  // Read by every EventTarget (the subscription's AbortSignal) when it is made: a lower bound
  // shows a pile-up within a few reconnections.
  const max = EventEmitter.defaultMaxListeners
  EventEmitter.defaultMaxListeners = 3
  try {
    const stop = redisSubscribe({
      url,
      commandTimeoutMs: 500,
      connectTimeoutMs: SLOW_CONNECT_MS,
      log: silent,
    })('{t}:announce', events)
    EventEmitter.defaultMaxListeners = max
    await waitFor(() => conns.length > dropped, { timeoutMs: 10_000, what: 'a connection held' })
    await stop()
    const held = conns[dropped]
    await waitFor(() => held.closed, { timeoutMs: 3000, what: 'the held connection closed' })
    // A warning is emitted on a later tick than the listener it counts.
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(warnings, [])
  } finally {
    EventEmitter.defaultMaxListeners = max
    process.off('warning', onWarning)
    stopServer()
  }
})
