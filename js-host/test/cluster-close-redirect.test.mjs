// RedisTransport.close() on a Redis Cluster, with a command its caller awaits redirected
// (MOVED) once close() was called: between the redirect and its resend the command is in no
// node's queue, and node-redis's graceful close of the cluster waits only for those. close()
// waits for the reply, as for any reply still awaited (close-awaited-reply.test.mjs), within
// the same 1 s. Against a real 3-master cluster; the redirect is made by moving the key's slot
// (CLUSTER SETSLOT ... NODE) while a BLPOP on it is blocked: Redis answers a client blocked
// on a slot it no longer serves with MOVED. Before, the cluster's close ended it with "Cluster
// closed" within 40 ms. A revalidation redirected so was never at stake: close()'s last attempt
// awaits it before the connection closes (the last test pins that). Steps are ordered by what
// the test observes (a client blocked on a node, a promise settled), never by a sleep.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import { capture, transportOn } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { keySlot } = require('../dist/redis-cluster.js')
const { masterOfSlot } = require('../dist/tag-channel.js')

let cluster

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-cluster-close-'))
  cluster = await startRedisCluster({ logDir })
})

after(async () => {
  await close()
  await cluster?.stop()
})

/** A transport alone on the cluster (helpers.mjs `transportOn`), BLPOP's budget within its longest. */
const transportOnCluster = () =>
  transportOn(cluster.url, { cluster: true, longestCommandMs: 5000, connectTimeoutMs: 2000 })

/** The master serving `key`'s slot now, and another master. */
async function ownerAndOther(key) {
  const slot = keySlot(key)
  const owner = masterOfSlot(await cluster.nodes[0].command('CLUSTER', 'SLOTS'), slot, '127.0.0.1')
  const source = cluster.nodes.find((n) => n.port === owner?.port)
  assert.ok(source, `a master serves slot ${String(slot)}`)
  const target = cluster.nodes.find((n) => n !== source)
  return { slot: String(slot), source, target }
}

/**
 * Moves `slot` to `to` on every master, the new owner first; `from`, its owner, migrates its
 * keys there first (none when not given).
 */
async function moveSlot(slot, to, from) {
  const id = String(await to.command('CLUSTER', 'MYID'))
  if (from !== undefined) {
    await to.command(
      'CLUSTER',
      'SETSLOT',
      slot,
      'IMPORTING',
      String(await from.command('CLUSTER', 'MYID')),
    )
    await from.command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', id)
    const keys = await from.command('CLUSTER', 'GETKEYSINSLOT', slot, '1000')
    if (keys.length > 0) {
      await from.command('MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000', 'KEYS', ...keys)
    }
  }
  await to.command('CLUSTER', 'SETSLOT', slot, 'NODE', id)
  for (const n of cluster.nodes) {
    if (n !== to) await n.command('CLUSTER', 'SETSLOT', slot, 'NODE', id)
  }
}

/** How many MOVED replies `node` has sent. */
async function movedSent(node) {
  const info = String(await node.command('INFO', 'errorstats'))
  return Number(/errorstat_MOVED:count=(\d+)/.exec(info)?.[1] ?? 0)
}

/** Resolves once `node` holds `n` clients blocked (a BLPOP waiting for its list). */
async function blockedClients(node, n) {
  for (let i = 0; i < 2000; i++) {
    const info = String(await node.command('INFO', 'clients'))
    const m = /blocked_clients:(\d+)/.exec(info)
    if (m !== null && Number(m[1]) === n) return
    await new Promise((resolve) => setImmediate(resolve))
  }
  throw new Error(`${node.url} never held ${String(n)} blocked client(s)`)
}

/** The outcome of `p`, once settled: `{ ok, value }` or `{ ok: false, err }`. */
const outcome = (p) =>
  p.then(
    (value) => ({ ok: true, value }),
    (err) => ({ ok: false, err }),
  )

test('close() waits for an awaited command redirected (MOVED) after it was called: its caller gets the reply', async () => {
  const key = 'cluster-close:{moved}'
  const { slot, source, target } = await ownerAndOther(key)
  const { transport } = transportOnCluster()
  try {
    await transport.send(['PING'])
    const reply = outcome(transport.send(['BLPOP', key, '0'], { timeoutMs: 5000 }))
    await blockedClients(source, 1)
    const t0 = performance.now()
    const closing = transport.close()
    let closedAt
    void closing.then(() => {
      closedAt = performance.now() - t0
    })
    // The slot moves: the source answers the blocked BLPOP with MOVED, and the command is
    // sent again to the target, where it blocks anew (or, not waited for, fails at close).
    await moveSlot(slot, target)
    const first = await Promise.race([reply, blockedClients(target, 1).then(() => undefined)])
    assert.equal(
      first,
      undefined,
      `the redirected command failed at close(): ${String(first?.err)} (close() resolved after ${String(closedAt?.toFixed(0))} ms)`,
    )
    await target.command('LPUSH', key, 'v')
    const got = await reply
    assert.equal(got.ok, true, `the awaited command failed at close(): ${String(got.err)}`)
    assert.deepEqual(
      got.value.map((b) => String(b)),
      [key, 'v'],
    )
    await closing
    assert.ok(closedAt < 1200, `close() took ${closedAt.toFixed(0)} ms`)
  } finally {
    await transport.close()
    await moveSlot(slot, source)
    await cluster.command('DEL', key)
  }
})

test('close() stops waiting for a redirected command never answered after 1 s', async () => {
  const key = 'cluster-close:{unanswered}'
  const { slot, source, target } = await ownerAndOther(key)
  const { transport } = transportOnCluster()
  try {
    await transport.send(['PING'])
    const reply = outcome(transport.send(['BLPOP', key, '0'], { timeoutMs: 5000 }))
    await blockedClients(source, 1)
    const t0 = performance.now()
    const closing = transport.close()
    await moveSlot(slot, target)
    // Sent again to the target, where nothing answers it: close() gives up on it at its bound.
    await closing
    const ms = performance.now() - t0
    const got = await reply
    assert.equal(got.ok, false, 'never answered')
    assert.ok(ms >= 900 && ms < 1500, `close() took ${ms.toFixed(0)} ms`)
    // The connection closed with it: the target unblocks its client.
    await blockedClients(target, 0)
  } finally {
    await transport.close()
    await moveSlot(slot, source)
    await cluster.command('DEL', key)
  }
})

test("a revalidation redirected (MOVED) as close() is called reaches Redis: close()'s last attempt waits for it", async () => {
  // Not the connection's close: the tag sync's last attempt awaits the send under way before
  // the connection closes (docs/operating.md, "Shutdown"); this pins that on a cluster.
  const prefix = 'cclose'
  const state = `${prefix}:tags:{${prefix}}:state`
  const h = createUseCacheHandler({
    redisUrl: cluster.url,
    cluster: true,
    prefix,
    deploymentId: 'd1',
    leases: false,
    tagSync: 'pull',
  })
  await h.updateTags(['warm'])
  await h.refreshTags()
  const { slot, source, target } = await ownerAndOther(state)
  // Moved behind the handler's back: its next write to the tag state is answered MOVED.
  await moveSlot(slot, target, source)
  const moved = await movedSent(source)
  try {
    const lines = await capture(async () => {
      const revalidated = h.updateTags(['cclose-t'])
      await close()
      await revalidated
    })
    assert.equal(await movedSent(source), moved + 1, 'the revalidation was redirected')
    assert.deepEqual(lines, [], 'nothing reported lost')
    assert.notEqual(await target.command('HGET', state, 'cclose-t'), null, 'in Redis')
  } finally {
    await moveSlot(slot, source, target)
  }
})
