// Once RedisTransport.close() has returned, nothing of the connection keeps the process alive:
// close() destroys the client (no graceful QUIT) once no reply is awaited, or at its 1 s bound.
// Each case runs in a process of its own that does not call process.exit: it must end by
// itself, promptly, after printing "closed". Against a real redis-server and a real cluster:
// an awaited command answered during close(), one never answered (the 1 s bound), writes
// abandoned at their budget on a Redis that answers nothing (SIGSTOP: a socket with writes
// unanswered, destroyed), and the push channel's connections with a handler's close().
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { startRedisCluster } from '../../tests/support/redis-cluster.mjs'
import { redisCommand, startRedis } from '../../tests/support/redis.mjs'
import { exitAfterClosed } from './helpers.mjs'

const DIST = new URL('../dist/redis.js', import.meta.url).pathname
const ESM = new URL('../esm/index.mjs', import.meta.url).href

let redis
let cluster

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-close-exit-'))
  redis = await startRedis({ logDir })
  cluster = await startRedisCluster({ logDir })
})

after(async () => {
  await cluster?.stop()
  await redis?.stop()
})

/**
 * Runs `body` (an async function's body, given `transport`, `out`: writes a line to stdout, and
 * `go()`: resolves once the parent says so) in a child process with a transport on `options`,
 * then close()s it, printing "closing" once close() was called and "closed <ms>" once it
 * returned. `onLine(line, go)` sees each line the child prints; `go()` lets the child on (once).
 * Resolves with how long after "closed" the process exited, and its output.
 */
async function exitAfterClose(options, body, { onLine = () => undefined } = {}) {
  const script = `
    const { RedisTransport } = require(${JSON.stringify(DIST)})
    const log = { info() {}, warn() {}, error() {}, debug() {}, debugEnabled: false }
    const transport = new RedisTransport({ ...${JSON.stringify(options)}, log })
    const out = (line) => process.stdout.write(line + '\\n')
    const go = () => new Promise((resolve) => process.stdin.once('data', resolve))
    ;(async () => {
      ${body}
      const t0 = performance.now()
      const closing = transport.close()
      out('closing')
      await closing
      out('closed ' + String(Math.round(performance.now() - t0)))
    })().catch((err) => {
      out('failed ' + String(err && err.stack))
      process.exitCode = 3
    })
  `
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
  const go = () => {
    child.stdin.end('go\n')
  }
  let out = ''
  let closedAt
  let reacting = Promise.resolve()
  child.stdout.on('data', (d) => {
    const lines = (out + String(d)).split('\n').slice(out.split('\n').length - 1, -1)
    out += d
    for (const line of lines) reacting = reacting.then(() => onLine(line, go))
    if (closedAt === undefined && /^closed /m.test(out)) closedAt = performance.now()
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const [code, signal] = await new Promise((resolve) =>
    child.once('exit', (c, sig) => resolve([c, sig])),
  )
  clearTimeout(killer)
  const exitedAt = performance.now()
  await reacting
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, out)
  assert.ok(closedAt !== undefined, out)
  return { afterClose: exitedAt - closedAt, out, closeMs: Number(/^closed (\d+)$/m.exec(out)?.[1]) }
}

/** Resolves once the server on `port` holds `n` clients blocked (a BLPOP waiting). */
async function blockedClients(port, n) {
  for (let i = 0; i < 2000; i++) {
    const info = String(await redisCommand(port, ['INFO', 'clients']))
    if (Number(/blocked_clients:(\d+)/.exec(info)?.[1]) === n) return
    await new Promise((resolve) => setImmediate(resolve))
  }
  throw new Error(`${String(port)} never held ${String(n)} blocked client(s)`)
}

const single = () => ({
  url: redis.url,
  commandTimeoutMs: 150,
  longestCommandMs: 5000,
  connectTimeoutMs: 2000,
})

// How soon after close() returned the process must have ended, in ms: under the 1 s of the
// timers a client left running would hold it for (a cluster's topology refresh, a Sentinel
// client's connection loop), with room for a loaded machine; a socket left open holds it until
// the test kills it (20 s).
const PROMPT = 900

test('single server: the process exits at once after close() with nothing awaited', async () => {
  const { afterClose, out } = await exitAfterClose(
    single(),
    `await transport.send(['SET', 'close-exit:a', Buffer.from('v')])
     await transport.send(['GET', 'close-exit:a'])`,
  )
  assert.ok(afterClose < PROMPT, `exited ${afterClose.toFixed(0)} ms after close(): ${out}`)
})

test('single server: the process exits after close() waited for a reply it got', async () => {
  const key = 'close-exit:answered'
  const { afterClose, out } = await exitAfterClose(
    single(),
    `await transport.send(['PING'])
     transport.send(['BLPOP', ${JSON.stringify(key)}, '0'], { timeoutMs: 5000 }).then(
       (r) => out('reply ' + r.map(String).join(' ')),
       (e) => out('lost ' + e.message),
     )`,
    {
      // Answered once close() was called, and the BLPOP is held by Redis.
      onLine: async (line) => {
        if (line !== 'closing') return
        await blockedClients(redis.port, 1)
        await redisCommand(redis.port, ['LPUSH', key, 'v'])
      },
    },
  )
  assert.match(out, /^reply close-exit:answered v$/m)
  assert.ok(afterClose < PROMPT, `exited ${afterClose.toFixed(0)} ms after close(): ${out}`)
})

test('single server: the process exits after close() gave up on a reply never sent (1 s)', async () => {
  const key = 'close-exit:never'
  const { afterClose, out, closeMs } = await exitAfterClose(
    single(),
    `await transport.send(['PING'])
     transport.send(['BLPOP', ${JSON.stringify(key)}, '0'], { timeoutMs: 10000 }).then(
       () => out('reply'),
       (e) => out('lost ' + e.message),
     )
     out('sent')
     await go()`,
    {
      onLine: async (line, go) => {
        if (line !== 'sent') return
        await blockedClients(redis.port, 1)
        go()
      },
    },
  )
  assert.ok(closeMs >= 900 && closeMs < 1500, `close() took ${String(closeMs)} ms: ${out}`)
  assert.match(out, /^lost /m, out)
  assert.ok(afterClose < PROMPT, `exited ${afterClose.toFixed(0)} ms after close(): ${out}`)
  await blockedClients(redis.port, 0)
})

test('single server, Redis answering nothing: writes abandoned at their budget do not keep the process', async () => {
  let stopped = false
  try {
    const { afterClose, out, closeMs } = await exitAfterClose(
      single(),
      `await transport.send(['PING'])
       out('connected')
       await go()
       const big = Buffer.alloc(4 * 1024 * 1024, 1)
       const writes = []
       for (let i = 0; i < 8; i++) {
         writes.push(transport.send(['SET', 'close-exit:big' + i, big]).then(() => 'ok', (e) => e.message))
       }
       out('abandoned ' + (await Promise.all(writes)).join('|'))`,
      {
        onLine: (line, go) => {
          if (line !== 'connected') return
          process.kill(redis.pid, 'SIGSTOP')
          stopped = true
          go()
        },
      },
    )
    assert.match(out, /^abandoned (redis SET took longer than 150 ms\|?){8}$/m)
    assert.ok(closeMs < 200, `close() took ${String(closeMs)} ms: ${out}`)
    assert.ok(afterClose < PROMPT, `exited ${afterClose.toFixed(0)} ms after close(): ${out}`)
  } finally {
    if (stopped) process.kill(redis.pid, 'SIGCONT')
  }
  assert.equal(await redisCommand(redis.port, ['PING']), 'PONG')
})

test('cluster: the process exits after close() waited for an awaited reply it got', async () => {
  const key = 'close-exit:{c}'
  const { keySlot } = await import('../dist/redis-cluster.js')
  const { masterOfSlot } = await import('../dist/tag-channel.js')
  const owner = masterOfSlot(
    await cluster.nodes[0].command('CLUSTER', 'SLOTS'),
    keySlot(key),
    '127.0.0.1',
  )
  const node = cluster.nodes.find((n) => n.port === owner?.port)
  assert.ok(node)
  const { afterClose, out } = await exitAfterClose(
    {
      url: cluster.url,
      cluster: true,
      commandTimeoutMs: 150,
      longestCommandMs: 5000,
      connectTimeoutMs: 2000,
    },
    `await transport.send(['SET', 'close-exit:{c}x', Buffer.from('v')])
     transport.send(['BLPOP', ${JSON.stringify(key)}, '0'], { timeoutMs: 5000 }).then(
       (r) => out('reply ' + r.map(String).join(' ')),
       (e) => out('lost ' + e.message),
     )`,
    {
      onLine: async (line) => {
        if (line !== 'closing') return
        await blockedClients(node.port, 1)
        await node.command('LPUSH', key, 'v')
      },
    },
  )
  assert.match(out, /^reply close-exit:\{c\} v$/m)
  assert.ok(afterClose < PROMPT, `exited ${afterClose.toFixed(0)} ms after close(): ${out}`)
})

test("push mode: a handler's process exits promptly after close(), channel and transport", async () => {
  for (const options of [{ redisUrl: redis.url }, { redisUrl: cluster.url, cluster: true }]) {
    const script = `
      const { close, createUseCacheHandler } = await import(${JSON.stringify(ESM)})
      const h = createUseCacheHandler(${JSON.stringify({
        ...options,
        prefix: 'cexit',
        deploymentId: 'd1',
        leases: false,
        tagSync: 'push',
      })})
      await h.updateTags(['t1'])
      await h.refreshTags()
      await close()
      process.stdout.write('closed\\n')
    `
    const { afterClose: ms } = await exitAfterClosed(script)
    assert.ok(ms < PROMPT, `${JSON.stringify(options)}: exited ${ms.toFixed(0)} ms after close()`)
  }
})
