// The abort signal of the transport's Sentinel client (redis-sentinel.ts, sentinelClient): one
// for the client's life, which ends the sockets of its master's clients and of its sentinels'.
// Node (20.20 and 24.22, measured) leaves a socket's listener on its signal once the socket
// closed, each holding that socket: while the master the sentinel names dropped every
// connection, each attempt left one more on that one signal, and past 10 the process warned
// (MaxListenersExceededWarning).
//
// Needs `node --expose-gc` (the Makefile's test-js runs this file with it): the listeners are
// counted on the signal and on every other signal made while the client lives (AbortSignal.any,
// AbortController) still reachable after a collection.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { getEventListeners } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

import { sentinelClient } from '../dist/redis-sentinel.js'
import { freePort } from '../../tests/support/ports.mjs'
import { redisCommand } from '../../tests/support/redis.mjs'
import { stopChild, trackChild, waitFor } from '../../tests/support/util.mjs'

const silent = { error() {}, warn() {}, info() {}, debug() {} }

test('a master that drops every connection: the attempts leave no listener of a closed socket', async () => {
  assert.equal(typeof globalThis.gc, 'function', 'run this file with node --expose-gc')
  // The master the sentinel names: it drops every connection at once (the sentinel's too).
  let accepted = 0
  const master = net.createServer((socket) => {
    accepted++
    socket.on('error', () => undefined)
    socket.destroy()
  })
  await new Promise((resolve) => master.listen(0, '127.0.0.1', resolve))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-sentinel-sockets-'))
  const port = await freePort()
  const conf = path.join(dir, 'sentinel.conf')
  fs.writeFileSync(
    conf,
    [
      `port ${String(port)}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${String(master.address().port)} 1`,
      '',
    ].join('\n'),
  )
  const out = fs.openSync(path.join(dir, 'sentinel.log'), 'a')
  const sentinel = trackChild(
    spawn(process.env.REDIS_SERVER || 'redis-server', [conf, '--sentinel'], {
      stdio: ['ignore', out, out],
    }),
  )
  fs.closeSync(out)
  const derived = []
  const any = AbortSignal.any
  const Controller = globalThis.AbortController
  let client
  let sockets
  try {
    await waitFor(
      async () =>
        (await redisCommand(port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster'], {
          timeoutMs: 500,
        })) !== null,
      { timeoutMs: 15_000, intervalMs: 100, what: 'the sentinel to name the master' },
    )
    AbortSignal.any = (signals) => {
      const s = any.call(AbortSignal, signals)
      derived.push(new WeakRef(s))
      return s
    }
    globalThis.AbortController = class extends Controller {
      constructor() {
        super()
        derived.push(new WeakRef(this.signal))
      }
    }
    sockets = new Controller()
    client = sentinelClient(
      { url: 'redis://mymaster', commandTimeoutMs: 500, connectTimeoutMs: 2000, log: silent },
      [`127.0.0.1:${String(port)}`],
      sockets.signal,
    )
    client.on('error', () => undefined)
    client.connect().catch(() => undefined)
    const before = accepted
    await waitFor(() => accepted - before >= 30, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: '30 connections dropped by the master',
    })
    globalThis.gc()
    let n = getEventListeners(sockets.signal, 'abort').length
    for (const ref of derived) {
      const s = ref.deref()
      if (s !== undefined) n += getEventListeners(s, 'abort').length
    }
    // Live: the sentinel connection, a master attempt, the client's own: two listeners each at
    // most; none of the closed ones.
    assert.ok(
      n <= 6,
      `${String(n)} abort listeners after ${String(accepted - before)} dropped connections`,
    )
  } finally {
    AbortSignal.any = any
    globalThis.AbortController = Controller
    client?.destroy()
    sockets?.abort()
    master.close()
    await stopChild(sentinel, { termTimeoutMs: 5000 })
  }
})
