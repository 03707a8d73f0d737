// Both handlers against a three-master Redis Cluster on loopback ports: values cross
// instances, tag revalidations and leases work (every script stays in one slot), and entries
// spread over all masters.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'

import {
  close,
  createIncrementalCacheHandler,
  createUseCacheHandler,
  optionsFromEnv,
} from '../esm/index.mjs'
import { scanTargets, connect } from '../cli/redis.js'
import { firstKey } from '../dist/redis-cluster.js'
import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import { capture, text, useCacheEntry } from './helpers.mjs'

const require = createRequire(import.meta.url)
const wasm = require('../wasm/node/fleetcache_wasm.js')

const PREFIX = 'cltest'
let cluster
let seq = 0

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cluster-'))
  cluster = await startRedisCluster({ logDir })
})

after(async () => {
  await close()
  await cluster?.stop()
})

function options(extra = {}) {
  seq += 1
  // One seed is enough: the rest of the topology is discovered. A distinct setting per
  // "instance" gives it its own runtime (engine, mirror, connections).
  return {
    redisUrl: cluster.nodes[seq % 3].url,
    cluster: true,
    prefix: PREFIX,
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    connectTimeoutMs: 3000 + seq,
    ...extra,
  }
}

const useCache = (extra) => createUseCacheHandler(options(extra))

function incremental(extra = {}) {
  const Handler = createIncrementalCacheHandler(options(extra))
  return () => new Handler({})
}

const entry = (value, over = {}) => useCacheEntry(value, { tags: ['cl'], ...over })

const engine = new wasm.Engine({ prefix: PREFIX, deployment: 'd1' })

/** Keys under the prefix per master (SCAN on each node). */
async function keysPerNode() {
  const counts = []
  for (const n of cluster.nodes) {
    let cursor = '0'
    let count = 0
    do {
      const [next, batch] = await n.command('SCAN', cursor, 'MATCH', `${PREFIX}:*`, 'COUNT', '500')
      cursor = next
      count += batch.length
    } while (cursor !== '0')
    counts.push(count)
  }
  return counts
}

describe('Redis Cluster', () => {
  test('configuration: FLEETCACHE_REDIS_NODES and FLEETCACHE_REDIS_CLUSTER', () => {
    const env = optionsFromEnv({
      FLEETCACHE_REDIS_NODES: 'redis://10.0.0.1:7000, redis://10.0.0.2:7000',
      FLEETCACHE_DEPLOYMENT_ID: 'x',
    })
    assert.deepEqual(env.redisNodes, ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000'])
    assert.equal(optionsFromEnv({ FLEETCACHE_REDIS_CLUSTER: '1' }).cluster, true)
    assert.throws(() => optionsFromEnv({ FLEETCACHE_REDIS_NODES: 'http://x' }), /redis:\/\//)
    // Routing: a script by its first KEYS entry, other commands by their first argument.
    assert.equal(firstKey(['EVALSHA', 'abc', '2', 'k1', 'k2', 'arg']), 'k1')
    assert.equal(firstKey(['EVAL', 'return 1', '0']), undefined)
    assert.equal(firstKey(['SET', 'k', 'v', 'PX', '10']), 'k')
    assert.equal(firstKey(['PING']), undefined)
  })

  test("'use cache': set on one instance, get on another; tag expiry reaches both", async () => {
    const [a, b] = [useCache(), useCache()]
    await a.set('k1', Promise.resolve(entry('hello cluster', { tags: ['t-cl'] })))
    await b.refreshTags()
    const got = await b.get('k1', [])
    assert.ok(got, 'B reads what A wrote')
    assert.equal(await text(got.value), 'hello cluster')
    await a.updateTags(['t-cl'])
    await b.refreshTags()
    assert.equal(await b.get('k1', []), undefined, 'expired by the tag on B too')
  })

  test('incremental: set on A, get on B, revalidateTag reaches B', async () => {
    const [A, B] = [incremental(), incremental()]
    const v = {
      kind: 'APP_ROUTE',
      body: Buffer.from('route body'),
      status: 200,
      headers: { 'x-next-cache-tags': 'route-cl' },
    }
    const ctx = {
      kind: 'APP_ROUTE',
      isRoutePPREnabled: false,
      isFallback: false,
      cacheControl: { revalidate: 60, expire: 3600 },
      tags: ['route-cl'],
    }
    await A().set('/cl/route', v, ctx)
    const got = await B().get('/cl/route', { kind: 'APP_ROUTE', tags: ['route-cl'] })
    assert.ok(got, 'B reads what A wrote')
    assert.equal(Buffer.from(got.value.body).toString(), 'route body')
    await A().revalidateTag(['route-cl'])
    assert.equal(await B().get('/cl/route', { kind: 'APP_ROUTE', tags: ['route-cl'] }), null)
  })

  test('leases: one instance regenerates, the others wait for its write', async () => {
    const [A, B, C] = [
      useCache({ leases: true }),
      useCache({ leases: true }),
      useCache({ leases: true }),
    ]
    assert.equal(await A.get('lease-1', []), undefined, 'A holds the lease')
    const waiting = Promise.all([B.get('lease-1', []), C.get('lease-1', [])])
    await sleep(150)
    await A.set('lease-1', Promise.resolve(entry('regenerated once')))
    const [b, c] = await waiting
    assert.ok(b && c, 'followers get the holder’s value')
    assert.equal(await text(b.value), 'regenerated once')
    assert.equal(await text(c.value), 'regenerated once')
  })

  test('entries spread over all three masters; scanTargets lists every master', async () => {
    const a = useCache()
    for (let i = 0; i < 200; i++) {
      await a.set(`spread-${i}`, Promise.resolve(entry(`v${i}`)))
    }
    const counts = await keysPerNode()
    const total = counts.reduce((x, y) => x + y, 0)
    assert.ok(total >= 200, `200 entries written, ${total} keys found`)
    for (const c of counts) {
      assert.ok(c >= total / 6, `keys per master ${counts.join('/')}: each master holds a share`)
    }
    // The entry key's hash tag decides the slot: two entries land on different slots.
    assert.notEqual(
      engine.entryKey(wasm.Interface.useCache('default'), 'spread-1'),
      engine.entryKey(wasm.Interface.useCache('default'), 'spread-2'),
    )

    const conn = await connect(cluster.nodes[0].url)
    try {
      // The CLI's connection routes by key: every entry is readable through one seed.
      for (const i of [1, 2, 3, 4, 5, 6]) {
        const v = await conn.send([
          'GET',
          engine.entryKey(wasm.Interface.useCache('default'), `spread-${i}`),
        ])
        assert.ok(Buffer.isBuffer(v), `spread-${i} read through the cluster connection`)
      }
      const targets = await scanTargets(conn)
      try {
        const ports = targets.map((t) => Number(t.address.split(':').pop())).sort()
        assert.deepEqual(ports, cluster.nodes.map((n) => n.port).sort())
      } finally {
        for (const t of targets) if (t !== conn) await t.close()
      }
    } finally {
      await conn.close()
    }
  })

  test("as docs/operating.md's ACL user, a read of a slot being migrated follows ASK; nothing denied", async () => {
    const doc = fs.readFileSync(new URL('../../docs/operating.md', import.meta.url), 'utf8')
    const line = doc.split('\n').find((l) => l.startsWith('ACL SETUSER fleetcache on >CHANGE-ME '))
    assert.ok(line, "docs/operating.md has the handlers' ACL SETUSER line")
    const rules = line
      .split(' ')
      .slice(5)
      .map((r) => r.replaceAll('fleetcache', PREFIX))
    for (const n of cluster.nodes) await n.command('ACL', 'SETUSER', 'fcask', 'on', '>pw', ...rules)
    const a = useCache({ redisUrl: `redis://fcask:pw@127.0.0.1:${cluster.nodes[0].port}` })
    const key = engine.entryKey(wasm.Interface.useCache('default'), 'ask-1')
    await a.set('ask-1', Promise.resolve(entry('before the move', { tags: [] })))
    const slot = String(await cluster.nodes[0].command('CLUSTER', 'KEYSLOT', key))
    const counts = await Promise.all(
      cluster.nodes.map((n) => n.command('CLUSTER', 'COUNTKEYSINSLOT', slot)),
    )
    const source = cluster.nodes[counts.findIndex((c) => Number(c) > 0)]
    assert.ok(source, 'the entry is on one master')
    const target = cluster.nodes.find((n) => n !== source)
    const id = async (n) => String(await n.command('CLUSTER', 'MYID'))
    // Gone from the source, whose slot now migrates: the source answers ASK, and the client
    // asks the target with ASKING first.
    await source.command('DEL', key)
    await target.command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', await id(source))
    await source.command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', await id(target))
    try {
      for (const n of cluster.nodes) await n.command('ACL', 'LOG', 'RESET')
      const lines = await capture(async () => {
        assert.equal(await a.get('ask-1', []), undefined, 'a miss, from the target')
      })
      assert.deepEqual(lines, [], 'no error lines')
      for (const n of cluster.nodes) {
        assert.deepEqual(await n.command('ACL', 'LOG'), [], `${n.url} denied nothing`)
      }
    } finally {
      for (const n of [source, target]) await n.command('CLUSTER', 'SETSLOT', slot, 'STABLE')
    }
  })
})
