// The abort signal of the transport's single Redis client (redis-client.ts, singleClient): one
// for the client's whole life, which node-redis reconnects with the same socket options, so
// every socket it makes carries it. Node (20.20 and 24.22, measured) leaves a socket's listener
// on its signal once the socket closed, each holding that socket: a Redis that drops or refuses
// every connection while no command runs (nothing gives the client up then) piled up one a
// reconnection, and past 10 the process warned (MaxListenersExceededWarning).
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { test } from 'node:test'

import { singleClient } from '../dist/redis-client.js'
import { waitFor } from '../../tests/support/util.mjs'
import { SLOW_CONNECT_MS, droppingServer } from './helpers.mjs'

const silent = { error() {}, warn() {}, info() {}, debug() {} }

test('a Redis that drops every connection: reconnections leave no listener on the signal, a held one is still closed when it fires', async () => {
  const dropped = 6
  const { conns, url, stop } = await droppingServer(dropped)
  const sockets = new AbortController()
  const client = singleClient(
    {
      url,
      commandTimeoutMs: 500,
      connectTimeoutMs: SLOW_CONNECT_MS,
      log: silent,
    },
    sockets.signal,
  )
  client.on('error', () => undefined)
  try {
    client.connect().catch(() => undefined)
    await waitFor(() => conns.length > dropped, { timeoutMs: 10_000, what: 'a connection held' })
    // One socket under way: its own listeners (Node adds two while it connects), none of the
    // six closed before it.
    assert.ok(
      getEventListeners(sockets.signal, 'abort').length <= 2,
      `${String(getEventListeners(sockets.signal, 'abort').length)} abort listeners after ${String(dropped)} sockets closed`,
    )
    client.destroy()
    sockets.abort()
    const held = conns[dropped]
    await waitFor(() => held.closed, { timeoutMs: 3000, what: 'the held connection closed' })
  } finally {
    client.destroy()
    stop()
  }
})
