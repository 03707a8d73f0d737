// RedisTransport.close() through Redis Sentinel while the client follows a failover: a command
// its caller awaits, sent to the old master, is sent again by node-redis to the new one once it
// is connected (the Sentinel client's retry after its master clients were replaced). Until then
// the client is not ready. close() waits for that reply like for any reply still awaited
// (close-awaited-reply.test.mjs), within the same 1 s.
//
// A master (stopped with SIGSTOP, so the GET sent to it stays unanswered), a replica reached
// through a proxy (it announces the proxy's port, so the sentinel names the proxy as the new
// master), one sentinel. The proxy holds the replies to the transport's connection to the new
// master (the one that begins with SELECT: the URL names database 1) until the test lets them
// through: the step "not ready, command awaited" is observed, never waited for by a sleep.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { createRequire } from 'node:module'

import { freePort } from '../../tests/support/ports.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { stopChild, tailFile, trackChild, waitFor } from '../../tests/support/util.mjs'

const require = createRequire(import.meta.url)
const { RedisTransport } = require('../dist/redis.js')

let dir
let master
let replica
let proxy
let sentinel
let sentinelPort

/**
 * A proxy to `port` that lets everything through but the connections whose first bytes carry a
 * SELECT, once `holdSelect` is set: their bytes both ways wait until `release()`. `selectSeen`
 * resolves when the first such connection opens.
 */
async function selectHoldingProxy(port) {
  const p = { holdSelect: false, held: [] }
  let seen
  p.selectSeen = new Promise((resolve) => {
    seen = resolve
  })
  p.server = net.createServer((client) => {
    const up = net.connect(port, '127.0.0.1')
    const c = { held: undefined, toUp: [], toClient: [] }
    client.on('data', (d) => {
      if (c.held === undefined) {
        c.held = p.holdSelect && /SELECT/i.test(d.toString('latin1'))
        if (c.held) {
          p.held.push(c)
          seen()
        }
      }
      if (c.held) c.toUp.push(d)
      else up.write(d)
    })
    up.on('data', (d) => {
      if (c.held) c.toClient.push(d)
      else client.write(d)
    })
    c.release = () => {
      c.held = false
      for (const d of c.toUp) up.write(d)
      for (const d of c.toClient) client.write(d)
    }
    client.on('close', () => up.destroy())
    up.on('close', () => client.destroy())
    client.on('error', () => undefined)
    up.on('error', () => undefined)
  })
  await new Promise((resolve) => p.server.listen(0, '127.0.0.1', resolve))
  p.port = p.server.address().port
  p.release = () => {
    p.holdSelect = false
    for (const c of p.held) c.release()
    p.held = []
  }
  return p
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-sentinel-close-'))
  master = await startRedis({ logDir: dir })
  replica = await startRedis({ logDir: dir })
  proxy = await selectHoldingProxy(replica.port)
  for (const r of [master, replica]) {
    await r.command('CONFIG', 'SET', 'repl-diskless-sync', 'yes')
    await r.command('CONFIG', 'SET', 'repl-diskless-load', 'swapdb')
  }
  // The replica is known (to the master, hence to the sentinel) by the proxy's address.
  await replica.command('CONFIG', 'SET', 'replica-announce-ip', '127.0.0.1')
  await replica.command('CONFIG', 'SET', 'replica-announce-port', String(proxy.port))
  await replica.command('REPLICAOF', '127.0.0.1', String(master.port))
  await waitFor(
    async () => /master_link_status:up/.test(await replica.command('INFO', 'replication')),
    { timeoutMs: 10_000, intervalMs: 50, what: 'the replica to sync' },
  )
  sentinelPort = await freePort()
  const conf = path.join(dir, 'sentinel.conf')
  fs.writeFileSync(
    conf,
    [
      `port ${sentinelPort}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`,
      'sentinel down-after-milliseconds mymaster 1000',
      'sentinel failover-timeout mymaster 5000',
      '',
    ].join('\n'),
  )
  const logFile = path.join(dir, 'sentinel.log')
  const out = fs.openSync(logFile, 'a')
  sentinel = trackChild(
    spawn(process.env.REDIS_SERVER || 'redis-server', [conf, '--sentinel'], {
      stdio: ['ignore', out, out],
    }),
  )
  fs.closeSync(out)
  try {
    await waitFor(
      async () => {
        const replicas = await redisCommand(sentinelPort, ['SENTINEL', 'REPLICAS', 'mymaster'], {
          timeoutMs: 500,
        })
        // Known, by the proxy's port, and its INFO read (a failover needs a recent one).
        return (
          replicas.length === 1 &&
          replicas[0].includes(String(proxy.port)) &&
          !String(replicas[0][replicas[0].indexOf('flags') + 1]).includes('disconnected')
        )
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'the sentinel to know the replica' },
    )
  } catch (err) {
    throw new Error(`${err.message}\n${tailFile(logFile, 20)}`, { cause: err })
  }
})

after(async () => {
  try {
    process.kill(master.pid, 'SIGCONT')
  } catch {
    // Gone.
  }
  await stopChild(sentinel, { termTimeoutMs: 5000 })
  proxy?.server.close()
  await Promise.allSettled([master?.stop(), replica?.stop()])
})

/** The outcome of `p`, once settled: `{ ok, value }` or `{ ok: false, err }`. */
const outcome = (p) =>
  p.then(
    (value) => ({ ok: true, value }),
    (err) => ({ ok: false, err }),
  )

test('close() during a failover waits for an awaited command sent again to the new master', async () => {
  const t = new RedisTransport({
    url: 'redis://mymaster/1',
    sentinels: [`127.0.0.1:${String(sentinelPort)}`],
    commandTimeoutMs: 10_000,
    longestCommandMs: 10_000,
    connectTimeoutMs: 5000,
    log: { info() {}, warn() {}, error() {}, debug() {}, debugEnabled: false },
  })
  const key = 'sentinel-close:k'
  let stopped = false
  try {
    await t.send(['SET', key, Buffer.from('v')])
    // On the replica too, so the new master answers the GET with it.
    await t.send(['WAIT', '1', '5000'])
    proxy.holdSelect = true
    process.kill(master.pid, 'SIGSTOP')
    stopped = true
    // Sent to the old master, which answers nothing: the caller awaits it.
    const reply = outcome(t.send(['GET', key]))
    await redisCommand(sentinelPort, ['SENTINEL', 'FAILOVER', 'mymaster'])
    // The client replaced its master clients (not ready) and connects to the new one, whose
    // replies the proxy holds; the GET waits to be sent again there.
    await proxy.selectSeen
    assert.equal(t.client.isReady, false, 'the client follows the failover')
    const t0 = performance.now()
    const closing = t.close()
    proxy.release()
    const got = await reply
    assert.equal(
      got.ok,
      true,
      `the awaited GET failed at close(): ${String(got.err)} (${String(Math.round(performance.now() - t0))} ms after close())`,
    )
    assert.equal(String(got.value), 'v')
    await closing
    const ms = performance.now() - t0
    assert.ok(ms < 1200, `close() took ${ms.toFixed(0)} ms`)
  } finally {
    await t.close()
    proxy.release()
    if (stopped) process.kill(master.pid, 'SIGCONT')
  }
})
