// One Redis Cluster master whose connection stays open and answers nothing while the other
// masters answer: a proxy in front of that one node (the node announces the proxy's port, so
// the layout leads clients through it) holds the connection in use. Its slots' commands time
// out one after another while the other nodes' replies keep the instance from counting the
// connection as silent: the silence is judged per node.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { close, createUseCacheHandler } from '../esm/index.mjs'
import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import { waitFor } from '../../tests/support/util.mjs'
import { HUNG_BUDGETS, capture, holdingProxy, text, useCacheEntry } from './helpers.mjs'

let cluster
let proxy

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-hung-node-'))
  cluster = await startRedisCluster({ logDir })
  const held = cluster.nodes[1]
  proxy = await holdingProxy(held.port)
  const proxyPort = new URL(proxy.url).port
  await held.command('CONFIG', 'SET', 'cluster-announce-port', proxyPort)
  // Every node's layout names the proxy for that node's slots before a client asks.
  await waitFor(
    async () => {
      for (const n of cluster.nodes) {
        const slots = await n.command('CLUSTER', 'SLOTS')
        if (!slots.some((range) => String(range[2][1]) === proxyPort)) return false
      }
      return true
    },
    { timeoutMs: 15_000, intervalMs: 100, what: 'the layout naming the proxy' },
  )
})

after(async () => {
  await close()
  proxy?.stop()
  await cluster?.stop()
})

/**
 * A handler on the cluster (key prefix `prefix`, a runtime of its own) and 24 keys it stored
 * and reads back: on every master, the held one's share found by the test.
 */
async function filled(prefix) {
  const h = createUseCacheHandler({
    redisUrl: cluster.nodes[0].url,
    cluster: true,
    prefix,
    deploymentId: 'd1',
    memoryBytes: 0,
    leases: false,
    ...HUNG_BUDGETS,
  })
  const keys = Array.from({ length: 24 }, (_, i) => `k${String(i)}`)
  for (const k of keys) await h.set(k, Promise.resolve(useCacheEntry(`v-${k}`, { tags: ['t'] })))
  for (const k of keys) assert.equal(await text((await h.get(k, [])).value), `v-${k}`)
  return { h, keys }
}

test('a master that answers nothing while the others answer is given up: its keys hit again', async () => {
  const { h, keys } = await filled('hung-node')
  assert.ok(
    proxy.conns.some((c) => !c.closed),
    'the instance reaches the held master through the proxy',
  )
  const lines = await capture(async () => {
    proxy.hold()
    // Reads as a site under traffic sends them, every 100 ms, until every key hits again.
    // Before: the held master's keys missed for as long as the proxy held (30 s, by hand),
    // the other masters' replies counting as the connection's.
    const until = Date.now() + 10_000
    let missing = keys
    let missedOnce = false
    while (missing.length > 0 && Date.now() < until) {
      // Every key, one at a time, in key order: the other masters' keys answer between the
      // held one's timeouts, and too few fail in a row or in all for the breaker to open.
      const got = []
      for (const k of keys) got.push(await h.get(k, []))
      missing = keys.filter((_, i) => got[i] === undefined)
      if (missing.length > 0) missedOnce = true
      await sleep(100)
    }
    assert.ok(missedOnce, 'some keys live on the held master')
    assert.deepEqual(missing, [], 'every key hits again')
  })
  // The line names the node: the proxy's address, as the layout gives it.
  const given = `no reply for \\d+ ms from 127\\.0\\.0\\.1:${new URL(proxy.url).port}, though still open; closing it and connecting anew`
  assert.ok(
    lines.some((l) => new RegExp(given).test(l)),
    `the held master's connection was given up:\n${lines.join('\n')}`,
  )
  assert.ok(
    proxy.held.every((c) => c.closed),
    'the held connection was closed by the instance',
  )
})

test('a master that answers nothing at all (new connections too) is not given up: the other masters keep serving', async () => {
  const { h, keys } = await filled('hung-node-2')
  const lines = await capture(async () => {
    // Paused, as far as this instance can tell: what is open and what opens next, held.
    proxy.holdNew = true
    proxy.hold()
    const heldAtFirst = proxy.held.length
    const rounds = []
    // Until two new connections to it were tried (each tells the silent connection from a
    // silent node) and held, as traffic reads every key one at a time; bounded.
    const until = Date.now() + 15_000
    while (proxy.held.length < heldAtFirst + 2 && Date.now() < until) {
      const got = []
      for (const k of keys) got.push(await h.get(k, []))
      rounds.push(keys.filter((_, i) => got[i] === undefined))
      await sleep(100)
    }
    assert.ok(proxy.held.length >= heldAtFirst + 2, 'new connections to the held master tried')
    // Before: the client was given up, and the new one, whose connect() waits for every
    // master's login, left every key a miss, the other masters' too (review 46).
    const held = new Set(rounds.at(-1))
    assert.ok(held.size > 0 && held.size < keys.length, `keys on the held master: ${held.size}`)
    assert.deepEqual(
      rounds.map((r) => r.filter((k) => !held.has(k))),
      rounds.map(() => []),
      'the other masters keys hit in every round',
    )
  })
  assert.ok(
    !lines.some((l) => /closing it and connecting anew/.test(l)),
    `no client given up:\n${lines.join('\n')}`,
  )
})
