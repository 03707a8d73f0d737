// How long a revalidation takes to reach the requests of other instances, under load: three
// Node processes, each one fleetcache instance (the package's 'use cache' handler, as `next
// start` runs it) against a redis-server this script starts, each running 8 request loops
// (refreshTags, getExpiration of the probe tag, get of an entry) back to back. Instance 0
// revalidates a new probe tag per round; each instance reports the first request that sees it.
// The delay is from `updateTags` resolving on instance 0 (the revalidation's reply) to that
// request, on one machine's clock.
//
//   node bench/tag-push-delay.mjs [rounds]        (both modes: push, then pull)
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const self = fileURLToPath(import.meta.url)
const LOOPS = Number(process.env.LOOPS ?? 8)
const now = () => performance.timeOrigin + performance.now()

if (process.argv[2] === 'child') {
  const { createUseCacheHandler, close } = await import(
    path.join(path.dirname(self), '..', 'js-host', 'esm', 'index.mjs')
  )
  const [, , , url, mode] = process.argv
  const h = createUseCacheHandler({
    redisUrl: url,
    prefix: 'delay',
    deploymentId: 'd1',
    tagSync: mode,
    leases: false,
    debug: process.env.DELAY_DEBUG === '2',
  })
  let probe = null
  let stopped = false
  const entry = () => ({
    value: new Blob(['x'.repeat(1024)]).stream(),
    tags: ['load'],
    stale: 300,
    timestamp: now(),
    expire: 3600,
    revalidate: 900,
  })
  await h.set('load-key', Promise.resolve(entry()))
  // What a request would see: after its refresh, and between requests every millisecond (a
  // request that skips its pull sees the mirror as it is).
  const check = async () => {
    if (probe !== null && (await h.getExpiration([probe])) > 0) {
      process.send({ seen: probe, at: now() })
      probe = null
    }
  }
  const ticker = setInterval(() => void check(), 1)
  async function loop() {
    while (!stopped) {
      // Each request arrives as I/O, as a server's do: a loop served from the in-process
      // tier without a pull would otherwise run on microtasks alone and starve the socket.
      await new Promise((resolve) => setImmediate(resolve))
      await h.refreshTags()
      await check()
      const e = await h.get('load-key', [])
      if (e) await new Response(e.value).arrayBuffer()
    }
  }
  process.on('message', async (m) => {
    if (m.watch) probe = m.watch
    if (m.revalidate) {
      await h.updateTags([m.revalidate])
      process.send({ revalidated: m.revalidate, at: now() })
    }
    if (m.stop) {
      stopped = true
      clearInterval(ticker)
      await close()
      process.exit(0)
    }
  })
  for (let i = 0; i < LOOPS; i++) void loop()
  process.send({ ready: true })
} else {
  const { startRedis } = await import('../tests/support/redis.mjs')
  const rounds = Number(process.argv[2] ?? 200)
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-push-delay-'))
  const redis = await startRedis({ logDir })
  const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]
  try {
    for (const mode of ['push', 'pull']) {
      const kids = [0, 1, 2].map(() => fork(self, ['child', redis.url, mode]))
      const inbox = kids.map(() => [])
      const waiters = new Set()
      kids.forEach((k, i) =>
        k.on('message', (m) => {
          inbox[i].push(m)
          for (const w of waiters) w()
        }),
      )
      const next = (i, pred) =>
        new Promise((resolve) => {
          const check = () => {
            const at = inbox[i].findIndex(pred)
            if (at < 0) return
            waiters.delete(check)
            resolve(inbox[i].splice(at, 1)[0])
          }
          waiters.add(check)
          check()
        })
      await Promise.all(kids.map((_, i) => next(i, (m) => m.ready)))
      const delays = []
      for (let r = 0; r < rounds; r++) {
        const tag = `probe-${mode}-${String(r)}`
        kids.forEach((k) => k.send({ watch: tag }))
        kids[0].send({ revalidate: tag })
        const [done, ...seen] = await Promise.all([
          next(0, (m) => m.revalidated === tag),
          ...[1, 2].map((i) => next(i, (m) => m.seen === tag)),
        ])
        await next(0, (m) => m.seen === tag)
        for (const s of seen) delays.push(s.at - done.at)
        if (process.env.DELAY_DEBUG)
          console.log(seen.map((s) => (s.at - done.at).toFixed(1)).join(' '))
      }
      for (const k of kids) k.send({ stop: true })
      await Promise.all(kids.map((k) => new Promise((r) => k.on('exit', r))))
      delays.sort((a, b) => a - b)
      const f = (x) => x.toFixed(2)
      console.log(
        `${mode} (load average ${os.loadavg()[0].toFixed(1)} on ${String(os.cpus().length)} cores): ${String(delays.length)} deliveries (2 other instances x ${String(rounds)} revalidations), ` +
          `ms from the revalidation's reply to the first request that sees it: ` +
          `p50 ${f(pct(delays, 50))}, p99 ${f(pct(delays, 99))}, max ${f(delays[delays.length - 1])}, min ${f(delays[0])}`,
      )
    }
  } finally {
    await redis.stop()
  }
}
