// tagSync 'push' with App Router pages served from the tier: a read that starts while a GET
// sent before a page announcement is in flight (store.ts shares one GET per key) must get the
// announced write, and no read may keep the page that write replaced bound to the current
// generation, where it would serve with no time limit (decision 0031).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { close, createIncrementalCacheHandler } from '../esm/index.mjs'
import { REDIS_CLUSTER, startTestRedis } from './helpers.mjs'

let redis
let proxy

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-page-push-coalesce-'))
  redis = await startTestRedis({ logDir })
})

after(async () => {
  await close()
  proxy?.server.close()
  await redis?.stop()
})

/**
 * A TCP proxy to Redis on 127.0.0.1 that, while `hold` is set, holds back the replies on every
 * connection that has sent a `GET` (the subscriber's announcements pass). `sentGet` resolves
 * when a `GET` goes through while holding; `release()` delivers what was held.
 */
function startProxy(target) {
  const p = { hold: false, conns: new Set(), onGet: undefined }
  p.server = net.createServer((client) => {
    const c = { sawGet: false, held: [], client }
    p.conns.add(c)
    const up = net.connect(Number(target.port), target.hostname)
    client.on('data', (d) => {
      if (d.includes('\r\nGET\r\n')) {
        c.sawGet = true
        if (p.hold) p.onGet?.()
      }
      up.write(d)
    })
    up.on('data', (d) => {
      if (p.hold && c.sawGet) c.held.push(d)
      else client.write(d)
    })
    client.on('close', () => up.destroy())
    up.on('close', () => client.destroy())
    client.on('error', () => {})
    up.on('error', () => {})
  })
  p.sentGet = () => new Promise((resolve) => (p.onGet = resolve))
  p.release = () => {
    p.hold = false
    for (const c of p.conns) for (const d of c.held.splice(0)) c.client.write(d)
  }
  return new Promise((resolve) => p.server.listen(0, '127.0.0.1', () => resolve(p)))
}

test(
  'a read starting after a page announcement joins no GET sent before it, and the replaced page is not kept',
  { skip: REDIS_CLUSTER && 'push follows a single Redis URL only in this release' },
  async (t) => {
    // The push follower's debug line comes after the announcement is applied (tag-sync.ts).
    let heard = () => {}
    t.mock.method(console, 'log', (line) => {
      if (String(line).includes('tag announcement: applied')) heard()
    })
    const announced = () => new Promise((resolve) => (heard = resolve))
    const target = new URL(redis.url)
    proxy = await startProxy(target)
    const auth = target.username ? `${target.username}:${target.password}@` : ''
    const proxyUrl = `redis://${auth}127.0.0.1:${String(proxy.server.address().port)}`
    const kind = 'APP_PAGE'
    const value = (v) => ({
      kind,
      html: `<p>${v}</p>`,
      rscData: Buffer.from(v),
      headers: {},
      status: 200,
      postponed: undefined,
      segmentData: undefined,
    })
    const ctx = { kind, cacheControl: { revalidate: false, expire: undefined } }
    const base = { prefix: 'ppc', deploymentId: 'd1', leaseWaitMs: 2000, ...redis.options }
    // W rewrites on demand straight to Redis; R follows by push through the proxy. Different
    // connect timeouts: two runtimes, as two processes would have.
    const OnDemand = createIncrementalCacheHandler({
      ...base,
      redisUrl: redis.url,
      connectTimeoutMs: 4001,
    })
    const W = () => new OnDemand({ _requestHeaders: { 'x-prerender-revalidate': 'id' } })
    const RH = createIncrementalCacheHandler({
      ...base,
      redisUrl: proxyUrl,
      tagSync: 'push',
      connectTimeoutMs: 4002,
      debug: true,
    })
    const R = () => new RH({})
    const html = async (h, key) => (await h().get(key, { kind }))?.value.html
    const gets = async () =>
      Number(
        /cmdstat_get:calls=(\d+)/.exec(String(await redis.command('INFO', 'commandstats')))?.[1] ??
          0,
      )
    // R caught up: it serves a page from its tier, no GET.
    await W().set('/warm', value('w'), ctx)
    let warm = false
    for (let i = 0; i < 2000 && !warm; i++) {
      const g = await gets()
      warm = (await html(R, '/warm')) === '<p>w</p>' && (await gets()) === g
      if (!warm) await new Promise((r) => setImmediate(r))
    }
    assert.ok(warm, 'R never served from its tier')
    const first = announced()
    await W().set('/p', value('v1'), ctx)
    await first
    // Read A's GET goes out; its reply (v1) is held.
    proxy.hold = true
    const sent = proxy.sentGet()
    const a = html(R, '/p')
    await sent
    // W rewrites /p; R applies the announcement (the subscriber's replies are not held).
    const second = announced()
    await W().set('/p', value('v2'), ctx)
    await second
    // Read B starts after the announcement, while A's GET is in flight (it reaches its GET
    // before the held reply can arrive: no I/O on its way). It must get v2: joining A's GET
    // would hand it v1, which the announced write replaced before B began.
    const b = html(R, '/p')
    proxy.release()
    assert.equal(await a, '<p>v1</p>', 'A read Redis before the rewrite')
    assert.equal(await b, '<p>v2</p>', 'B, begun after the announcement, gets the rewrite')
    // Reads that begin now, after the rewrite and its announcement, must see it.
    const seen = []
    for (let i = 0; i < 5; i++) seen.push(await html(R, '/p'))
    assert.deepEqual(seen, Array(5).fill('<p>v2</p>'))
  },
)
