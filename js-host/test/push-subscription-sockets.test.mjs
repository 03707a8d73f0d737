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
import { SLOW_CONNECT_MS, holdingProxy } from './helpers.mjs'

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
