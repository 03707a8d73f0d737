// The test helper commandMonitor (helpers.mjs) counts every command a user's connections sent,
// those of connections closed before the count too: an "at most N commands" assertion must not
// pass because a reconnect hid the first connection's commands. Against a real redis-server
// (or a Redis Cluster with JS_REDIS_CLUSTER=1: ECHO, keyless, runs on whichever node it reaches).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { commandMonitor, startTestRedis } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { createClient } = require('redis')

let redis
let monitor

before(async () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-monitor-'))
  redis = await startTestRedis({ logDir })
  monitor = await commandMonitor(redis)
})

after(async () => {
  monitor?.close()
  await redis?.stop()
})

/** A node-redis client of `user` on the first node, connected. */
function connect(user) {
  const url = new URL(user.redisUrl)
  url.port = String(redis.ports[0])
  return createClient({ url: url.toString() }).connect()
}

/**
 * A raw connection of `user` to `port` that connects, authenticates within 5 ms, sends one
 * ECHO, and resolves, open, once the ECHO is answered: a window between connect and AUTH, as a
 * client has while it sets up the connection.
 */
function authenticatedEcho(port, user) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1')
    sock.on('error', reject)
    sock.setEncoding('utf8')
    let replies = ''
    sock.on('connect', () => {
      setTimeout(() => sock.write(`AUTH ${user.name} any\r\n`), Math.random() * 5)
    })
    sock.on('data', (data) => {
      replies += data
      if (replies === '+OK\r\n') sock.write('ECHO x\r\n')
      else if (replies === '+OK\r\n$1\r\nx\r\n') resolve(sock)
    })
  })
}

describe('commandMonitor', () => {
  test("a connection closed before sent() still counts: one user's reconnect", async () => {
    const user = await monitor.user()
    const first = await connect(user)
    for (let i = 0; i < 3; i++) await first.echo('a')
    assert.equal(await monitor.sent(user, 'echo'), 3)
    await first.close()
    const second = await connect(user)
    for (let i = 0; i < 2; i++) await second.echo('b')
    // Before: 2, the closed connection's three left out.
    assert.equal(await monitor.sent(user, 'echo'), 5)
    await second.close()
    assert.equal(await monitor.sent(user, 'echo'), 5, 'and still after both closed')
  })

  test('a connection never seen open: counted or refused, never left out', async () => {
    const user = await monitor.user()
    // Authenticates, sends one ECHO and quits in one write: it may close before any CLIENT
    // LIST names it.
    const sock = net.connect(redis.ports[0], '127.0.0.1')
    const closed = new Promise((resolve) => sock.on('close', resolve))
    sock.on('error', () => undefined)
    // Its replies read and dropped: an unread socket never sees the server close it.
    sock.resume()
    sock.write(`AUTH ${user.name} any\r\nECHO x\r\nQUIT\r\n`)
    await closed
    // The test's own connections (no AUTH) are nobody's: never counted, never a doubt.
    await redis.eachNode('ECHO', 'mine')
    let counted
    try {
      counted = await monitor.sent(user, 'echo')
    } catch (err) {
      assert.match(err.message, /closed before CLIENT LIST could name their user/)
      return
    }
    // Before: 0 whenever it closed before the count (here, always).
    assert.equal(counted, 1)
  })

  test('other users and the test itself are not counted', async () => {
    const mine = await monitor.user()
    const other = await monitor.user()
    const a = await connect(mine)
    const b = await connect(other)
    await a.echo('a')
    await b.echo('b')
    await b.echo('b')
    await redis.eachNode('ECHO', 'mine')
    assert.equal(await monitor.sent(mine, 'echo'), 1)
    assert.equal(await monitor.sent(other, 'echo'), 2)
    await a.close()
    await b.close()
  })

  // A cluster handler opens a connection to every master at once, and each AUTH starts a
  // CLIENT LIST. One that ran while another connection was open but not yet authenticated
  // names its address with `default`; its reply could arrive after MONITOR's line of that
  // AUTH, and the connection's commands were then counted for nobody (single-flight.test.mjs
  // in CI: "B's own GETs are counted" with B's GET counted 0).
  test('connections authenticating together are each counted for their user', async () => {
    const wrong = []
    for (let round = 0; round < 3; round++) {
      const users = await Promise.all(Array.from({ length: 20 }, () => monitor.user()))
      const socks = await Promise.all(
        users.map((user, i) => authenticatedEcho(redis.ports[i % redis.ports.length], user)),
      )
      try {
        for (const user of users) {
          const counted = await monitor.sent(user, 'echo')
          if (counted !== 1) wrong.push(`${user.name}: ${String(counted)}`)
        }
      } finally {
        for (const sock of socks) sock.destroy()
      }
    }
    // Before: 2 to 16 of the 60 counted 0 (6 runs, one Redis and a cluster).
    assert.deepEqual(wrong, [])
  })

  // A loaded machine can keep Redis from answering for seconds (tags.test.mjs, both cores
  // busy: 'redis CLIENT timed out after 2000 ms' from the count's CLIENT LIST). The count
  // waits for MONITOR up to 10 s; its own commands must wait as long, not fail at 2 s.
  test('a Redis that answers after more than 2 s delays the count, and does not fail it', async () => {
    const user = await monitor.user()
    const client = await connect(user)
    await client.echo('a')
    for (const pid of redis.pids) process.kill(pid, 'SIGSTOP')
    // The outage the test is about: Redis paused for 3 s, while the count runs.
    const resumed = new Promise((resolve) => {
      setTimeout(() => {
        for (const pid of redis.pids) process.kill(pid, 'SIGCONT')
        resolve()
      }, 3000)
    })
    try {
      assert.equal(await monitor.sent(user, 'echo'), 1)
    } finally {
      await resumed
      await client.close()
    }
  })
})
