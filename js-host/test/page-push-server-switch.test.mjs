// One URL whose server is switched between a plain Redis and a cluster-enabled one (a failover
// to a node configured otherwise, or a managed offer changing mode). Neither side may settle
// "is Redis plain?" for good (decision 0031): a push process asks CLUSTER SLOTS again on every
// subscription, and asks again while an answer settles nothing; a writer that met CROSSSLOT
// tries to announce its next page write again. Otherwise a push process could serve a page
// copy from its tier while page writes go unannounced, past the 1 s bound.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, test } from 'node:test'

import { close, createIncrementalCacheHandler } from '../esm/index.mjs'
import { startClusterEnabledServer } from '../../tests/support/redis-cluster.mjs'
import {
  APP_PAGE_CTX,
  appPage,
  commandCalls,
  onDemand,
  pageHtml,
  startTestRedis,
} from './helpers.mjs'

let plain
let clustered

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-page-push-server-switch-'))
  plain = await startTestRedis({ logDir })
  clustered = await startClusterEnabledServer({ logDir })
})

after(async () => {
  await close()
  await plain?.stop()
  await clustered?.stop()
})

/** A TCP proxy on one URL whose upstream can be switched; a switch drops every connection. */
async function startSwitchingProxy(url) {
  let target = new URL(url)
  const conns = new Set()
  const server = net.createServer((client) => {
    const up = net.connect(Number(target.port), target.hostname)
    const c = { client, up }
    conns.add(c)
    client.pipe(up)
    up.pipe(client)
    const drop = () => {
      conns.delete(c)
      client.destroy()
      up.destroy()
    }
    client.on('close', drop)
    up.on('close', drop)
    client.on('error', () => {})
    up.on('error', () => {})
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `redis://127.0.0.1:${String(server.address().port)}`,
    switchTo(next) {
      target = new URL(next)
      for (const c of conns) {
        c.client.destroy()
        c.up.destroy()
      }
      conns.clear()
    },
    close() {
      for (const c of conns) c.client.destroy()
      server.close()
    },
  }
}

function fleet(prefix, url) {
  const base = { prefix, deploymentId: 'd1', redisUrl: url, readTimeoutMs: 500 }
  const OnDemand = createIncrementalCacheHandler({ ...base, connectTimeoutMs: 4001 })
  const RH = createIncrementalCacheHandler({ ...base, tagSync: 'push', connectTimeoutMs: 4002 })
  const W = onDemand(OnDemand)
  const R = () => new RH({})
  // A third process that pulls per request: its page reads always go to Redis.
  const PH = createIncrementalCacheHandler({ ...base, connectTimeoutMs: 4003 })
  const P = () => new PH({})
  /** Reads on R until one sends `node` neither GET nor EVALSHA (served from R's tier). */
  const fromTier = async (node, key, want) => {
    for (let i = 0; i < 3000; i++) {
      const [e, g] = [await commandCalls(node, 'evalsha'), await commandCalls(node, 'get')]
      const got = await pageHtml(R, key)
      if (
        got === want &&
        (await commandCalls(node, 'evalsha')) === e &&
        (await commandCalls(node, 'get')) === g
      ) {
        return
      }
      await sleep(2)
    }
    assert.fail(`R never served ${want} from its tier`)
  }
  /** W writes `v` until a pulling process (page reads go to Redis, decision 0021) reads it. */
  const written = async (key, v) => {
    for (let i = 0; i < 200; i++) {
      await W().set(key, appPage(v), APP_PAGE_CTX)
      if ((await pageHtml(P, key)) === `<p>${v}</p>`) return
      await sleep(20)
    }
    assert.fail(`${v} never reached Redis`)
  }
  /**
   * Reads on R until it reads `want` and (best effort, bounded, no failure) one read sends
   * `node` neither GET nor EVALSHA: R serves it from its tier whenever it may.
   */
  const warm = async (node, key, want) => {
    let seen = false
    for (let i = 0; i < 1000; i++) {
      const [e, g] = [await commandCalls(node, 'evalsha'), await commandCalls(node, 'get')]
      const got = await pageHtml(R, key)
      seen ||= got === want
      if (
        got === want &&
        (await commandCalls(node, 'evalsha')) === e &&
        (await commandCalls(node, 'get')) === g
      ) {
        return
      }
      await sleep(2)
    }
    assert.ok(seen, `R never read ${want}`)
  }
  /**
   * Decision 0031's bound: a read that begins 1 s or more after a page write resolved serves
   * it. Reads for 2.5 s after `t` and returns the last value read.
   */
  const after2s = async (key, t) => {
    let got
    while (performance.now() - t < 2500) {
      got = await pageHtml(R, key)
      await sleep(50)
    }
    return got
  }
  return { W, R, fromTier, written, warm, after2s }
}

test('plain, then a cluster-enabled node behind the same URL: the push process stops serving page copies from its tier, and a page write reaches it within the bound', async () => {
  const proxy = await startSwitchingProxy(plain.url)
  try {
    const f = fleet('r3a', proxy.url)
    const key = '/p'
    await f.written(key, 'v1')
    await f.fromTier(plain, key, '<p>v1</p>')
    // The failover: the same URL now reaches a cluster-enabled node.
    proxy.switchTo(clustered.url)
    // W's first page write there is refused (CROSSSLOT) and lands as a plain SET.
    await f.written(key, 'v2')
    // R reads v2 from the new node; it may not keep it for serving, since it must not take
    // Redis for plain any more (`warm` gives up without failing when it never serves from
    // the tier).
    await f.warm(clustered, key, '<p>v2</p>')
    // Another page write: a plain SET, announced to nobody.
    await f.written(key, 'v3')
    const t = performance.now()
    assert.equal(
      await f.after2s(key, t),
      '<p>v3</p>',
      'a read 2 s after the page write resolved still serves the copy it replaced',
    )
  } finally {
    proxy.close()
  }
})

test('a writer that met a cluster-enabled node announces again once the URL is back on a plain Redis', async () => {
  const proxy = await startSwitchingProxy(plain.url)
  try {
    const f = fleet('r3b', proxy.url)
    const key = '/q'
    await f.written(key, 'v1')
    await f.fromTier(plain, key, '<p>v1</p>')
    // A spell on a cluster-enabled node: W's page write is refused and lands unannounced.
    proxy.switchTo(clustered.url)
    await f.written(key, 'v2')
    // Back on the plain server (which kept v1): R's subscription comes back (a gap), R learns
    // again that Redis is plain, and serves from its tier once caught up.
    proxy.switchTo(plain.url)
    // W's writes there announce themselves again.
    await f.written(key, 'v3')
    await f.warm(plain, key, '<p>v3</p>')
    // Another write, while R serves v3 from its tier: R must hear of it.
    await f.written(key, 'v4')
    const t = performance.now()
    assert.equal(
      await f.after2s(key, t),
      '<p>v4</p>',
      'a read 2 s after the page write resolved still serves the copy it replaced',
    )
  } finally {
    proxy.close()
  }
})

test('a CLUSTER SLOTS answer that settles nothing (a refusal) is asked again while the subscription stays up, and page copies serve once it is answered', async () => {
  // The documented ACL without +cluster|slots at first: R's question gets NOPERM, as it would
  // get a timeout, a dropped connection or the breaker's refusal.
  await plain.command(
    'ACL',
    'SETUSER',
    'r3',
    'on',
    '>pw',
    'allkeys',
    'allchannels',
    '+@all',
    '-cluster|slots',
  )
  const url = new URL(plain.url)
  const f = fleet('r3c', `redis://r3:pw@127.0.0.1:${url.port}`)
  const key = '/s'
  await f.written(key, 'v1')
  assert.equal(await pageHtml(f.R, key), '<p>v1</p>')
  const asked = async () => /cluster\|slots/i.test(String(await plain.command('ACL', 'LOG')))
  for (let i = 0; i < 500 && !(await asked()); i++) await sleep(10)
  assert.ok(await asked(), 'R asked CLUSTER SLOTS and was refused')
  // The permission comes back (or the network does): Redis is plain, page writes announce.
  await plain.command('ACL', 'SETUSER', 'r3', '+cluster|slots')
  await f.fromTier(plain, key, '<p>v1</p>')
})
