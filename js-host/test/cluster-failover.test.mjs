// A coordinated failover (`CLUSTER FAILOVER` on a replica) of the master that holds the tag
// state, under a bounded load from two instances: no handler call throws, reads keep
// being answered, and a revalidation issued during the failover reaches the other instance.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import { waitFor } from '../../tests/support/util.mjs'
import { useCacheEntry } from './helpers.mjs'

const PREFIX = 'fotest'
// The load is bounded by count: at most MAX_ROUNDS rounds (3 handler calls each), and it must
// complete PHASE_ROUNDS rounds before the failover and again after it, however fast the
// machine is.
const MAX_ROUNDS = 5000
const PHASE_ROUNDS = 10
let cluster
let seq = 0

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-failover-'))
  cluster = await startRedisCluster({ logDir, masters: 3, replicas: 1 })
})

after(async () => {
  await close()
  await cluster?.stop()
})

function handler() {
  seq += 1
  return createUseCacheHandler({
    redisUrl: cluster.nodes[0].url,
    cluster: true,
    prefix: PREFIX,
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    connectTimeoutMs: 2000 + seq,
  })
}

const entry = (value, tags) => useCacheEntry(value, { tags })

/** The node serving `key`'s slot as master now, and its replica (by the replica's ROLE). */
async function ownerAndReplica(key) {
  const slot = await cluster.nodes[0].command('CLUSTER', 'KEYSLOT', key)
  const shards = await cluster.nodes[0].command('CLUSTER', 'SLOTS')
  const [, , master] = shards.find(([from, to]) => slot >= from && slot <= to)
  const masterPort = Number(master[1])
  for (const n of cluster.nodes) {
    const role = await n.command('ROLE')
    if (role[0] === 'slave' && Number(role[2]) === masterPort) {
      return { master: cluster.nodes.find((m) => m.port === masterPort), replica: n }
    }
  }
  throw new Error(`no replica of the master on port ${masterPort}`)
}

describe('Redis Cluster failover', () => {
  test('CLUSTER FAILOVER of the tag master under load: no throw, revalidation arrives', async () => {
    const A = handler()
    const B = handler()
    const tagKey = `${PREFIX}:tags:{${PREFIX}}:meta`
    const { replica } = await ownerAndReplica(tagKey)
    await A.set('fo-watched', Promise.resolve(entry('before', ['t-fo'])))
    await B.refreshTags()
    assert.ok(await B.get('fo-watched', []), 'B sees the entry before the failover')

    let stop = false
    let rounds = 0
    let thrown = 0
    const load = (async () => {
      for (let i = 1; !stop && i <= MAX_ROUNDS; i++) {
        try {
          await A.set(`fo-${i % 50}`, Promise.resolve(entry(`v${i}`, ['t-load'])))
          await B.refreshTags()
          await B.get(`fo-${(i + 25) % 50}`, [])
        } catch {
          thrown += 1
        }
        rounds += 1
      }
    })()
    const roundsDone = (n, what) =>
      waitFor(
        () => {
          if (rounds >= n) return true
          if (rounds >= MAX_ROUNDS)
            throw Object.assign(new Error('the load ended'), { fatal: true })
          return false
        },
        { timeoutMs: 30_000, intervalMs: 10, what, stopOn: (e) => e.fatal },
      )
    await roundsDone(PHASE_ROUNDS, `${PHASE_ROUNDS} rounds of load before the failover`)
    await replica.command('CLUSTER', 'FAILOVER')
    // The revalidation is issued while the failover runs.
    await A.updateTags(['t-fo'])
    await waitFor(async () => (await replica.command('ROLE'))[0] === 'master', {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'the replica to become master',
    })
    const promotedAt = rounds
    await roundsDone(
      promotedAt + PHASE_ROUNDS,
      `${PHASE_ROUNDS} rounds of load after the promotion`,
    )
    stop = true
    await load
    assert.equal(thrown, 0, `no handler call threw (${rounds} rounds of 3 calls)`)

    // The revalidation is not lost: B sees the entry expired within a bounded time.
    await waitFor(
      async () => {
        await B.refreshTags()
        return (await B.get('fo-watched', [])) === undefined
      },
      { timeoutMs: 5000, intervalMs: 100, what: 'the revalidation to reach B' },
    )
    // And the cluster serves new writes through the new master.
    await A.set('fo-after', Promise.resolve(entry('after', ['t-after'])))
    assert.ok(await B.get('fo-after', []), 'B reads a write made after the failover')
  })
})
