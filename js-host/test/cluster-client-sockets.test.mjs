// The abort signal of the transport's Redis Cluster client (redis-cluster.ts, clusterClient): one
// for the client's life, which ends the sockets of every node client and of every topology
// discovery. Node (20.20 and 24.22, measured) leaves a socket's listener on its signal once the
// socket closed, each holding that socket: while one master stayed unreachable and no command
// ran, its node client reconnected every 2 s at most and the client re-read the layout every
// second, each attempt leaving one more, and past 10 the process warned
// (MaxListenersExceededWarning).
//
// Needs `node --expose-gc` (the Makefile's test-js runs this file with it): the listeners are
// counted on the signal and on every other signal made while the client lives (AbortSignal.any,
// AbortController) still reachable after a collection.
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { clusterClient } from '../dist/redis-cluster.js'
import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import { stopChild, waitFor } from '../../tests/support/util.mjs'

const silent = { error() {}, warn() {}, info() {}, debug() {} }

let cluster

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cluster-sockets-'))
  cluster = await startRedisCluster({ logDir })
})

after(async () => {
  await cluster?.stop()
})

test('a master that stays down: its reconnections and the layout reads leave no listener of a closed socket', async () => {
  assert.equal(typeof globalThis.gc, 'function', 'run this file with node --expose-gc')
  // Every signal derived from another while the client lives, held weakly: one no socket holds
  // any longer is collected, and its listeners with it.
  const derived = []
  const any = AbortSignal.any
  AbortSignal.any = (signals) => {
    const s = any.call(AbortSignal, signals)
    derived.push(new WeakRef(s))
    return s
  }
  const Controller = globalThis.AbortController
  globalThis.AbortController = class extends Controller {
    constructor() {
      super()
      derived.push(new WeakRef(this.signal))
    }
  }
  const sockets = new Controller()
  const client = clusterClient(
    {
      url: cluster.nodes[0].url,
      commandTimeoutMs: 1000,
      connectTimeoutMs: 2000,
      log: silent,
    },
    sockets.signal,
  )
  client.on('error', () => undefined)
  client.on('node-error', () => undefined)
  const down = cluster.nodes[2]
  let reconnections = 0
  client.on('node-reconnecting', (node) => {
    if (node.port === down.port) reconnections++
  })
  const retained = () => {
    globalThis.gc()
    let n = getEventListeners(sockets.signal, 'abort').length
    for (const ref of derived) {
      const s = ref.deref()
      if (s !== undefined) n += getEventListeners(s, 'abort').length
    }
    return n
  }
  try {
    await client.connect()
    assert.equal(await client.run(['PING']), 'PONG')
    await stopChild(down.child, { termTimeoutMs: 5000 })
    await waitFor(() => reconnections >= 10, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: '10 reconnections to the stopped master',
    })
    // Live: the two masters' connections, the stopped one's attempt under way and at most one
    // layout read, two listeners each at most, and the client's own one; none of the closed ones.
    const n = retained()
    assert.ok(
      n <= 9,
      `${String(n)} abort listeners after ${String(reconnections)} reconnections to a stopped master`,
    )
  } finally {
    AbortSignal.any = any
    globalThis.AbortController = Controller
    client.destroy()
    sockets.abort()
  }
})
