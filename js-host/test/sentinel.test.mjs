// Redis Sentinel (issue 8): a master, a replica and one sentinel on loopback ports. The handlers
// find the master through the sentinel (`sentinels` + a URL naming the master), share values
// and tag revalidations, and follow a `SENTINEL FAILOVER` to the promoted replica.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'

import { close, createUseCacheHandler, optionsFromEnv } from '../esm/index.mjs'
import { freePort } from '../../tests/support/ports.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { stopChild, tailFile, trackChild, waitFor } from '../../tests/support/util.mjs'
import { text, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')
const entryKey = (key) =>
  new wasm.Engine({ prefix: 'sntest', deployment: 'd1' }).entryKey('default', key)

let dir
let master
let replica
let sentinel
let sentinelPort
let seq = 0

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
    // Ready when it knows the master and has found the replica.
    await waitFor(
      async () => {
        const replicas = await redisCommand(sentinelPort, ['SENTINEL', 'REPLICAS', 'mymaster'], {
          timeoutMs: 500,
        })
        return replicas.length === 1
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'the sentinel to see master and replica' },
    )
  } catch (err) {
    throw new Error(`${err.message}\n${tailFile(logFile, 20)}`, { cause: err })
  }
})

after(async () => {
  await close()
  await stopChild(sentinel, { termTimeoutMs: 5000 })
  await Promise.allSettled([master?.stop(), replica?.stop()])
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
  test('configuration: FLEETCACHE_REDIS_SENTINELS', () => {
    const env = optionsFromEnv({
      REDIS_URL: 'redis://mymaster',
      FLEETCACHE_REDIS_SENTINELS: '10.0.0.1:26379, [::1]:26380',
    })
    assert.deepEqual(env.sentinels, ['10.0.0.1:26379', '[::1]:26380'])
    assert.throws(() => optionsFromEnv({ FLEETCACHE_REDIS_SENTINELS: 'nohost' }), /host:port/)
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
  })
})
