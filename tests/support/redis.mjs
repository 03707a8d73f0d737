// A throwaway redis-server for tests and the demo: a child process on a free loopback port, no
// persistence, stopped by PID. Plus a minimal RESP client (raw TCP, no deps) for the readiness
// PING and for diagnostics.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { freePort } from './ports.mjs'
import { stopChild, tailFile, trackChild, waitFor } from './util.mjs'

function encodeCommand(args) {
  let out = `*${args.length}\r\n`
  for (const arg of args) {
    const s = String(arg)
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`
  }
  return out
}

// Parses one RESP2 reply from buf at offset; returns [value, nextOffset] or null if incomplete.
function parseReply(buf, offset = 0) {
  const lineEnd = buf.indexOf('\r\n', offset)
  if (lineEnd === -1) return null
  const type = String.fromCharCode(buf[offset])
  const line = buf.toString('utf8', offset + 1, lineEnd)
  const next = lineEnd + 2
  switch (type) {
    case '+':
      return [line, next]
    case '-':
      return [new RedisError(line), next]
    case ':':
      return [Number(line), next]
    case '$': {
      const len = Number(line)
      if (len === -1) return [null, next]
      if (buf.length < next + len + 2) return null
      return [buf.toString('utf8', next, next + len), next + len + 2]
    }
    case '*': {
      const count = Number(line)
      if (count === -1) return [null, next]
      const items = []
      let pos = next
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, pos)
        if (!item) return null
        items.push(item[0])
        pos = item[1]
      }
      return [items, pos]
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`)
  }
}

export class RedisError extends Error {}

// Sends one command on a new connection and resolves with the reply (RedisError replies reject).
export async function redisCommand(port, args, options) {
  const [reply] = await redisPipeline(port, [args], options)
  if (reply instanceof RedisError) throw reply
  return reply
}

// Sends `commands` in one write on a new connection, which Redis runs in that order, and
// resolves with their replies (a RedisError for an error reply) once all have arrived.
export function redisPipeline(port, commands, { host = '127.0.0.1', timeoutMs = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host })
    let buf = Buffer.alloc(0)
    const replies = []
    const done = (err, value) => {
      socket.destroy()
      if (err) reject(err)
      else resolve(value)
    }
    const what = commands.map((c) => c[0]).join(', ')
    socket.setTimeout(timeoutMs, () =>
      done(new Error(`redis ${what} timed out after ${timeoutMs} ms`)),
    )
    socket.once('error', (err) => done(err))
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      for (;;) {
        let parsed
        try {
          parsed = parseReply(buf)
        } catch (err) {
          return done(err)
        }
        if (!parsed) return
        replies.push(parsed[0])
        buf = buf.subarray(parsed[1])
        if (replies.length === commands.length) return done(null, replies)
      }
    })
    socket.write(commands.map(encodeCommand).join(''))
  })
}

// Which server the tests run: $REDIS_SERVER names its binary (default redis-server on PATH),
// $REDIS_CLI the matching cli (redis-cluster.mjs). `make test-valkey` points them at
// valkey-server and valkey-cli and sets $REDIS_SERVER_NAME=valkey, which every server started
// here must then report in INFO, so a suite cannot pass on the wrong server.

// Rejects unless the server on `port` is the one $REDIS_SERVER_NAME asks for (no check when it
// is unset). Valkey reports server_name:valkey; Redis reports no server_name, taken as redis.
export async function checkServerName(port) {
  const want = process.env.REDIS_SERVER_NAME
  if (!want) return
  const info = await redisCommand(port, ['INFO', 'server'])
  const name = /^server_name:(\S+)/m.exec(info)?.[1] ?? 'redis'
  if (name !== want) {
    const version = (/^valkey_version:(\S+)/m.exec(info) ?? /^redis_version:(\S+)/m.exec(info))?.[1]
    throw new Error(
      `the server on port ${port} is ${name} ${version}, not $REDIS_SERVER_NAME ${want}`,
    )
  }
}

// Starts redis-server on a free loopback port. Resolves once it answers PING with PONG.
// options: bin (default $REDIS_SERVER or 'redis-server'), logDir (required), startTimeoutMs.
export async function startRedis({
  bin = process.env.REDIS_SERVER || 'redis-server',
  logDir,
  startTimeoutMs = 10_000,
  attempts = 3,
} = {}) {
  if (!logDir) throw new Error('startRedis: logDir is required')
  let lastError
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = await freePort()
    const logFile = path.join(logDir, `redis-${port}.log`)
    try {
      return await startOnPort({ bin, port, logFile, startTimeoutMs })
    } catch (err) {
      lastError = err
      // Port taken between freePort() and bind: try another one.
      if (!/Address already in use/i.test(tailFile(logFile, 20))) break
    }
  }
  throw lastError
}

// Starts redis-server on a given loopback port (a restart on the port a stopped one used, for
// the fault tests). Resolves once it answers PING.
export async function startRedisOnPort({
  port,
  bin = process.env.REDIS_SERVER || 'redis-server',
  logDir,
  startTimeoutMs = 10_000,
}) {
  if (!logDir) throw new Error('startRedisOnPort: logDir is required')
  const logFile = path.join(logDir, `redis-${port}.log`)
  return startOnPort({ bin, port, logFile, startTimeoutMs })
}

async function startOnPort({ bin, port, logFile, startTimeoutMs }) {
  const out = fs.openSync(logFile, 'a')
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
  ]
  const child = trackChild(spawn(bin, args, { stdio: ['ignore', out, out] }))
  fs.closeSync(out)
  let spawnError
  child.once('error', (err) => {
    spawnError = err
  })
  const redis = {
    port,
    host: '127.0.0.1',
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child.pid
    },
    logFile,
    child,
    command: (...args) => redisCommand(port, args),
    logTail: (lines = 30) => tailFile(logFile, lines),
    async stop() {
      return stopChild(child, { termTimeoutMs: 5000 })
    },
    // A short summary for failure diagnostics: key count and the first keys found (SCAN, bounded).
    async describe({ maxKeys = 40 } = {}) {
      try {
        const size = await redisCommand(port, ['DBSIZE'])
        const keys = []
        let cursor = '0'
        for (let i = 0; i < 20 && keys.length < maxKeys; i++) {
          const [next, batch] = await redisCommand(port, ['SCAN', cursor, 'COUNT', '100'])
          keys.push(...batch)
          cursor = next
          if (cursor === '0') break
        }
        return (
          `redis ${redis.url} (pid ${child.pid}): ${size} keys\n` +
          keys.slice(0, maxKeys).sort().join('\n')
        )
      } catch (err) {
        return `redis ${redis.url} (pid ${child.pid}): cannot describe: ${err.message}`
      }
    },
  }
  try {
    await waitFor(
      async () => {
        if (spawnError) throw Object.assign(spawnError, { fatal: true })
        if (child.exitCode !== null || child.signalCode !== null) {
          const e = new Error(
            `redis-server exited early (code ${child.exitCode}, signal ${child.signalCode})`,
          )
          e.fatal = true
          throw e
        }
        return (await redisCommand(port, ['PING'], { timeoutMs: 500 })) === 'PONG'
      },
      {
        timeoutMs: startTimeoutMs,
        intervalMs: 50,
        what: `redis-server on port ${port} to answer PING`,
        stopOn: (e) => e.fatal,
      },
    )
  } catch (err) {
    await stopChild(child, { termTimeoutMs: 2000 }).catch(() => {})
    throw new Error(`${err.message}\n--- ${logFile} ---\n${tailFile(logFile, 20)}`)
  }
  try {
    await checkServerName(port)
  } catch (err) {
    await stopChild(child, { termTimeoutMs: 2000 }).catch(() => {})
    throw err
  }
  return redis
}
