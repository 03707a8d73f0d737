// `tagSync: 'push'` on a Redis Cluster (3 masters, 1 replica each): the subscription follows
// the master of the announcement channel's slot (the tag state's), through a failover of that
// master; pages keep being read from Redis (no page write is announced on a cluster).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { close, createIncrementalCacheHandler, createUseCacheHandler } from '../esm/index.mjs'
import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import { startRedis } from '../../tests/support/redis.mjs'
import { waitFor } from '../../tests/support/util.mjs'
import {
  APP_PAGE_CTX,
  appPage,
  capture,
  commandCalls,
  commandMonitor,
  onDemand,
  pageHtml,
} from './helpers.mjs'
import {
  caughtUp,
  freshInTheGap,
  learnsByAnnouncement,
  lossLogged,
  refusedOn,
  resubscribesOnceAllowed,
  subscribedOn,
} from './push-follow.mjs'

const require = createRequire(import.meta.url)
const { keySlot } = require('../dist/redis-cluster.js')

const PREFIX = 'cpush'
const CHANNEL = `${PREFIX}:tags:{${PREFIX}}:announce`
let cluster
let logDir
let monitor
let seq = 0

before(async () => {
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cluster-push-'))
  cluster = await startRedisCluster({ logDir, masters: 3, replicas: 1 })
  monitor = await commandMonitor({ url: cluster.url, ports: cluster.nodes.map((n) => n.port) })
})

after(async () => {
  await close()
  monitor?.close()
  await cluster?.stop()
})

/** One simulated instance following by push, with an ACL user of its own (counted apart). */
async function instance() {
  seq += 1
  const user = await monitor.user()
  const opts = {
    redisUrl: user.redisUrl,
    cluster: true,
    prefix: PREFIX,
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    tagSync: 'push',
    connectTimeoutMs: 2000 + seq,
  }
  return { user, opts, handler: createUseCacheHandler(opts) }
}

/** The node serving the channel's slot as master now, and its replica. */
async function masterAndReplica() {
  const node = cluster.nodes[0]
  const slot = await node.command('CLUSTER', 'KEYSLOT', CHANNEL)
  const shards = await node.command('CLUSTER', 'SLOTS')
  const [, , master] = shards.find(([from, to]) => slot >= from && slot <= to)
  const port = Number(master[1])
  for (const n of cluster.nodes) {
    const role = await n.command('ROLE')
    if (role[0] === 'slave' && Number(role[2]) === port) {
      return { master: cluster.nodes.find((m) => m.port === port), replica: n }
    }
  }
  throw new Error(`no replica of the master on port ${String(port)}`)
}

/**
 * `check` with a MONITOR count of its own, opened now: the file's count, open since the first
 * test, missed a pull of b's after an announcement in 3 of 18 runs of the whole file (none in
 * 10 of the test alone; none in 16 with a count of its own), as it can after a failover (below).
 */
async function withOwnCount(check) {
  const counts = await commandMonitor({
    url: cluster.url,
    ports: cluster.nodes.map((n) => n.port),
  })
  try {
    await check(counts)
  } finally {
    counts.close()
  }
}

describe("tagSync 'push' on Redis Cluster", () => {
  test('the slot the subscription looks for is the one Redis gives the channel (CLUSTER KEYSLOT)', async () => {
    // The channels the engine names for prefixes of every allowed character and length
    // ([A-Za-z0-9._-]{1,64}), and the hash-tag rules: the first '{' and the first '}' after it,
    // a tag only when not empty; bytes of UTF-8, not UTF-16 code units.
    const prefixes = ['fc', 'cpush', 'a', 'A.b_c-9', 'x'.repeat(64), '0', '-', '.', '_']
    const names = [
      ...prefixes.map((p) => `${p}:tags:{${p}}:announce`),
      ...prefixes.map((p) => `${p}:tags:{${p}}:state`),
      'plain',
      '',
      '{}',
      '{',
      '}',
      '}{',
      '{}{x}',
      'a{b}c{d}',
      '{{x}}',
      'x{}y',
      'x{y',
      'x}y{z}',
      'é',
      '{é}:announce',
      'ünï:tags:{ünï}:announce',
      '日本:tags:{日本}:announce',
      '😀{😀}',
      '{😀}x',
    ]
    const node = cluster.nodes[0]
    for (const name of names) {
      const slot = await node.command('CLUSTER', 'KEYSLOT', name)
      assert.equal(keySlot(name), slot, name)
      // As the transport computes it for a key given as bytes (which node a command goes to).
      assert.equal(keySlot(Buffer.from(name, 'utf8')), slot, name)
    }
  })

  test('a seed that accepts the connection but never answers (hung) does not stop the subscription from reaching the master through the next seed', async () => {
    const hung = await startRedis({ logDir })
    process.kill(hung.pid, 'SIGSTOP')
    try {
      const user = await monitor.user()
      // The credentials of the instance's URL make node-redis send AUTH on connecting: the
      // hung server accepts the TCP connection (the kernel does) and never answers it.
      const first = new URL(user.redisUrl)
      first.port = String(hung.port)
      const h = createUseCacheHandler({
        redisUrl: first.toString(),
        redisNodes: [user.redisUrl],
        cluster: true,
        prefix: PREFIX,
        deploymentId: 'd1',
        memoryBytes: 0,
        leases: false,
        tagSync: 'push',
        connectTimeoutMs: 1000,
      })
      void h.refreshTags().catch(() => undefined)
      const { master } = await masterAndReplica()
      await waitFor(() => subscribedOn(master, user.name), {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: 'the subscription on the master of the channel, through the seed that answers',
      })
    } finally {
      process.kill(hung.pid, 'SIGCONT')
      await close()
      await hung.stop()
    }
  })

  test('a revalidation reaches another instance by announcement; a caught-up request makes no round trip', async () => {
    const a = await instance()
    const b = await instance()
    // The state exists and the update script is loaded.
    await a.handler.updateTags(['warm'])
    await withOwnCount((counts) =>
      learnsByAnnouncement(counts, [a.handler, a.opts], [b.handler, b.opts], 'cluster'),
    )
  })

  test("after the channel slot's master fails over, the subscription goes down (requests pull) and comes back on the new master", async () => {
    const a = await instance()
    const b = await instance()
    await a.handler.updateTags(['warm'])
    await caughtUp(monitor, a.handler, a.opts)
    await caughtUp(monitor, b.handler, b.opts)
    const { master, replica } = await masterAndReplica()
    assert.ok(await subscribedOn(master, a.user.name), 'a subscribed on the master')
    assert.ok(await subscribedOn(master, b.user.name), 'b subscribed on the master')
    // b may not subscribe on the replica once it is promoted: its gap stays open until allowed.
    await replica.command('ACL', 'SETUSER', b.user.name, 'resetchannels')
    const lines = await capture(async (lines) => {
      await replica.command('CLUSTER', 'FAILOVER')
      await waitFor(async () => (await replica.command('ROLE'))[0] === 'master', {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'the replica to become master',
      })
      // b tried to subscribe on the new master and was refused: its subscription is down.
      await refusedOn(replica, b.user.name, CHANNEL)
      void lines
    })
    lossLogged(lines)
    // While down, every request of b pulls: it serves what a revalidated just before, which
    // it cannot have heard of (it is subscribed nowhere).
    await freshInTheGap(a.handler, b.handler)
    await resubscribesOnceAllowed({ a, b, newMaster: replica, oldMaster: master, channel: CHANNEL })
    // A MONITOR count of its own from here: connections opened during the failover are named
    // by CLIENT LIST when first counted.
    const counts = await commandMonitor({
      url: cluster.url,
      ports: cluster.nodes.map((n) => n.port),
    })
    try {
      await learnsByAnnouncement(counts, [a.handler, a.opts], [b.handler, b.opts], 'failed-over')
    } finally {
      counts.close()
    }
  })

  test('pages are still read from Redis by a push instance (no page write is announced)', async () => {
    const w = await instance()
    const r = await instance()
    const W = onDemand(createIncrementalCacheHandler(w.opts))
    // A tier, which a push instance on a single Redis serves caught-up pages from.
    const RH = createIncrementalCacheHandler({ ...r.opts, memoryBytes: 16 * 1024 * 1024 })
    const R = () => new RH({})
    await W().set('/p', appPage('v1'), APP_PAGE_CTX)
    await caughtUp(monitor, r.handler, r.opts)
    // GETs run by every node (only r reads here).
    const gets = async () => {
      let n = 0
      for (const node of cluster.nodes) n += await commandCalls(node, 'get')
      return n
    }
    for (let i = 0; i < 10; i++) {
      const g = await gets()
      assert.equal(await pageHtml(R, '/p'), '<p>v1</p>')
      assert.equal(await gets(), g + 1, `read ${String(i)} was served without a GET`)
    }
    await W().set('/p', appPage('v2'), APP_PAGE_CTX)
    assert.equal(await pageHtml(R, '/p'), '<p>v2</p>', 'a write is read at once')
  })

  test("the channel's slot migrated to another master (no failover): down on the old master's SUNSUBSCRIBE, up on the new one, and no connection left behind", async () => {
    const a = await instance()
    const b = await instance()
    await a.handler.updateTags(['warm'])
    await caughtUp(monitor, a.handler, a.opts)
    await caughtUp(monitor, b.handler, b.opts)
    const { master: from } = await masterAndReplica()
    let to
    for (const n of cluster.nodes) {
      if (n !== from && (await n.command('ROLE'))[0] === 'master') to = n
    }
    assert.ok(await subscribedOn(from, a.user.name), 'a subscribed on the master')
    const slot = await from.command('CLUSTER', 'KEYSLOT', CHANNEL)
    const toId = await to.command('CLUSTER', 'MYID')
    const fromId = await from.command('CLUSTER', 'MYID')
    // Subscription connections of a user on a node, subscribed or no longer (the old master's
    // SUNSUBSCRIBE leaves ssub=0): the last command they ran is the SSUBSCRIBE.
    const connections = async (node, name) =>
      String(await node.command('CLIENT', 'LIST'))
        .split('\n')
        .filter((l) => l.includes(` user=${name} `) && / cmd=ssubscribe /.test(l)).length
    const lines = await capture(async () => {
      await to.command('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', fromId)
      await from.command('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', toId)
      for (;;) {
        const keys = await from.command('CLUSTER', 'GETKEYSINSLOT', String(slot), '100')
        if (keys.length === 0) break
        await from.command(
          'MIGRATE',
          '127.0.0.1',
          String(to.port),
          '',
          '0',
          '5000',
          'KEYS',
          ...keys,
        )
      }
      for (const n of [to, from, ...cluster.nodes.filter((n) => n !== to && n !== from)]) {
        if ((await n.command('ROLE'))[0] === 'master') {
          await n.command('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId)
        }
      }
      await waitFor(() => subscribedOn(to, a.user.name), {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: 'a subscribed on the master the slot moved to',
      })
      await waitFor(() => subscribedOn(to, b.user.name), {
        timeoutMs: 15_000,
        intervalMs: 20,
        what: 'b subscribed on the master the slot moved to',
      })
    })
    assert.ok(
      lines.some((l) =>
        /channel down, pulling per request: .*moved .* away \(SUNSUBSCRIBE\)/.test(l),
      ),
      `the loss is logged (${lines.join(' | ')})`,
    )
    for (const user of [a.user, b.user]) {
      assert.equal(await connections(from, user.name), 0, 'nothing left on the old master')
      assert.equal(await connections(to, user.name), 1, 'one subscription on the new master')
    }
    await withOwnCount((counts) =>
      learnsByAnnouncement(counts, [a.handler, a.opts], [b.handler, b.opts], 'migrated'),
    )
    // close() (of every instance: the last test here) leaves no subscription connection.
    await close()
    for (const n of cluster.nodes) {
      for (const user of [a.user, b.user]) {
        assert.equal(await connections(n, user.name), 0, `none left on ${String(n.port)}`)
      }
    }
  })
})
