// Redis Cluster over TLS (`cluster: true`, a `rediss://` seed, a CA): three masters that listen
// with TLS beside their plain port, the cluster bus on TLS too. The seed's TLS and the CA must
// reach every node the client discovers (decision 0017: discovered nodes do not inherit the
// seed URL), and the tag state and every master's keys must be read and written over it.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { makeCertificates } from '../../tests/support/certs.mjs'
import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import { text, useCacheEntry } from './helpers.mjs'

let cluster
let dir

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cluster-tls-'))
  makeCertificates(dir)
  cluster = await startRedisCluster({
    logDir: dir,
    tls: {
      cert: path.join(dir, 'server.crt'),
      key: path.join(dir, 'server.key'),
      ca: path.join(dir, 'ca.crt'),
    },
  })
})

after(async () => {
  await close()
  await cluster?.stop()
})

test('set and get on every master across two instances, and a tag expiry, all over TLS', async () => {
  const ca = fs.readFileSync(path.join(dir, 'ca.crt'))
  const instance = (n) =>
    createUseCacheHandler({
      redisUrl: cluster.nodes[0].tlsUrl,
      cluster: true,
      tls: { ca },
      prefix: 'ctls',
      deploymentId: 'd1',
      memoryBytes: 0,
      leases: false,
      // A runtime of its own per instance.
      connectTimeoutMs: 2000 + n,
    })
  const a = instance(1)
  const b = instance(2)
  // Enough keys that every master holds some (the entry keys hash to slots apart).
  const keys = Array.from({ length: 24 }, (_, i) => `k${String(i)}`)
  for (const k of keys) {
    await a.set(k, Promise.resolve(useCacheEntry(`v-${k}`, { tags: ['tls'] })))
  }
  const perNode = await Promise.all(cluster.nodes.map((n) => n.command('DBSIZE')))
  assert.ok(
    perNode.every((n) => n > 0),
    `every master holds entries: ${perNode.join(', ')}`,
  )
  await b.refreshTags()
  for (const k of keys) {
    const got = await b.get(k, [])
    assert.ok(got, `b misses ${k}`)
    assert.equal(await text(got.value), `v-${k}`)
  }
  await a.updateTags(['tls'])
  await b.refreshTags()
  for (const k of keys) assert.equal(await b.get(k, []), undefined, `${k} after the expiry`)
})
