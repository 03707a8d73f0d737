// A throwaway Redis Cluster for tests: three cluster-enabled redis-server masters on loopback
// ports (optionally with replicas; no persistence), joined with `redis-cli --cluster create`,
// stopped by PID.
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { RedisError, checkServerName, redisCommand } from './redis.mjs'
import { stopChild, tailFile, trackChild, waitFor } from './util.mjs'

// True when `port` can be bound on 127.0.0.1 right now.
function canBind(port) {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.unref()
    server.once('error', () => resolve(false))
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      server.close(() => resolve(true))
    })
  })
}

// A port whose cluster bus port (port + 10000) is free too.
async function clusterPort(taken) {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000)
    if (taken.has(port) || taken.has(port + 10000)) continue
    if ((await canBind(port)) && (await canBind(port + 10000))) {
      taken.add(port)
      taken.add(port + 10000)
      return port
    }
  }
  throw new Error('no free port pair for a cluster node')
}

function run(bin, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`))
      else resolve(stdout)
    })
  })
}

async function startNode({ bin, port, dir, startTimeoutMs, tls, tlsPort }) {
  const logFile = path.join(dir, `cluster-${port}.log`)
  const out = fs.openSync(logFile, 'a')
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    path.join(dir, `nodes-${port}.conf`),
    '--cluster-node-timeout',
    '2000',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    // TLS beside the plain port (which this harness's own commands use): clients and the
    // cluster bus (`tls-cluster`) speak TLS, and a client connected by TLS is told the nodes'
    // TLS ports (CLUSTER SLOTS).
    ...(tls === undefined
      ? []
      : [
          '--tls-port',
          String(tlsPort),
          '--tls-cluster',
          'yes',
          '--tls-cert-file',
          tls.cert,
          '--tls-key-file',
          tls.key,
          '--tls-ca-cert-file',
          tls.ca,
          '--tls-auth-clients',
          'no',
        ]),
  ]
  const child = trackChild(spawn(bin, args, { stdio: ['ignore', out, out] }))
  fs.closeSync(out)
  const node = {
    port,
    host: '127.0.0.1',
    url: `redis://127.0.0.1:${port}`,
    ...(tls === undefined ? {} : { tlsUrl: `rediss://127.0.0.1:${tlsPort}` }),
    child,
    logFile,
    command: (...a) => redisCommand(port, a),
  }
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw Object.assign(new Error(`redis-server exited early (${child.exitCode})`), {
            fatal: true,
          })
        }
        return (await redisCommand(port, ['PING'], { timeoutMs: 500 })) === 'PONG'
      },
      {
        timeoutMs: startTimeoutMs,
        intervalMs: 50,
        what: `cluster node ${port}`,
        stopOn: (e) => e.fatal,
      },
    )
    await checkServerName(port)
  } catch (err) {
    await stopChild(child, { termTimeoutMs: 2000 }).catch(() => {})
    throw new Error(`${err.message}\n--- ${logFile} ---\n${tailFile(logFile, 20)}`)
  }
  return node
}

// Commands that concern one node, not a key: cluster.command refuses them.
const NODE_COMMANDS = new Set([
  'INFO',
  'PING',
  'CLUSTER',
  'CONFIG',
  'ROLE',
  'KEYS',
  'FLUSHALL',
  'FLUSHDB',
  'SCRIPT',
  'CLIENT',
  'DEBUG',
  'ACL',
])

// Starts the cluster; resolves once every node reports cluster_state:ok.
// options: logDir (required), masters (3), replicas per master (0), bin, cli, startTimeoutMs;
// tls: { cert, key, ca } file paths, for nodes that also listen with TLS (each node's `tlsUrl`).
// `nodes` lists every node, masters and replicas alike.
export async function startRedisCluster({
  logDir,
  masters = 3,
  replicas = 0,
  bin = process.env.REDIS_SERVER || 'redis-server',
  cli = process.env.REDIS_CLI || 'redis-cli',
  startTimeoutMs = 15_000,
  tls,
} = {}) {
  if (!logDir) throw new Error('startRedisCluster: logDir is required')
  const dir = fs.mkdtempSync(path.join(logDir, 'cluster-'))
  const taken = new Set()
  const nodes = []
  const cluster = {
    nodes,
    get urls() {
      return nodes.map((n) => n.url)
    },
    get url() {
      return nodes[0].url
    },
    async stop() {
      await Promise.all(nodes.map((n) => stopChild(n.child, { termTimeoutMs: 5000 })))
    },
    // What tests ask a single redis-server, over the whole cluster: DBSIZE is summed and a
    // SCAN from cursor 0 returns every matching key of every master at once (cursor 0 again).
    // Any other command names its key in args[1] (GET, SET, PTTL, EXISTS, DEL, HGET, ...) and
    // goes to the master owning that key's slot: first to one node, then where MOVED points.
    // Commands about a node rather than a key are refused: ask each of `nodes`.
    async command(...args) {
      const cmd = String(args[0]).toUpperCase()
      if (cmd === 'DBSIZE') {
        let total = 0
        for (const n of nodes) total += await n.command('DBSIZE')
        return total
      }
      if (cmd === 'SCAN') {
        const keys = []
        for (const n of nodes) {
          let cursor = '0'
          do {
            const [next, batch] = await n.command('SCAN', cursor, ...args.slice(2))
            keys.push(...batch)
            cursor = next
          } while (cursor !== '0')
        }
        return ['0', keys]
      }
      if (args.length < 2 || NODE_COMMANDS.has(cmd)) {
        throw new Error(`cluster.command: ${cmd} is not supported (send it to a node)`)
      }
      let port = nodes[0].port
      for (let hop = 0; ; hop++) {
        try {
          return await redisCommand(port, args)
        } catch (err) {
          const moved = /^MOVED \d+ \S*:(\d+)$/.exec(err instanceof RedisError ? err.message : '')
          if (!moved || hop >= 2) throw err
          port = Number(moved[1])
        }
      }
    },
    async describe() {
      const parts = []
      for (const n of nodes) {
        try {
          parts.push(
            `cluster node ${n.url} (pid ${n.child.pid}): ${await n.command('DBSIZE')} keys`,
          )
        } catch (err) {
          parts.push(`cluster node ${n.url}: cannot describe: ${err.message}`)
        }
      }
      return parts.join('\n')
    },
  }
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const port = await clusterPort(taken)
      const tlsPort = tls === undefined ? undefined : await clusterPort(taken)
      nodes.push(await startNode({ bin, port, dir, startTimeoutMs, tls, tlsPort }))
    }
    await run(
      cli,
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      startTimeoutMs,
    )
    await waitFor(
      async () => {
        for (const n of nodes) {
          const info = await n.command('CLUSTER', 'INFO')
          if (!/cluster_state:ok/.test(info)) return false
        }
        return true
      },
      { timeoutMs: startTimeoutMs, intervalMs: 100, what: 'cluster_state:ok on every node' },
    )
    if (replicas > 0) {
      // Replicas must have synced before a CLUSTER FAILOVER can be asked of them.
      await waitFor(
        async () => {
          for (const n of nodes) {
            const info = await n.command('INFO', 'replication')
            if (/role:slave/.test(info) && !/master_link_status:up/.test(info)) return false
          }
          const roles = await Promise.all(nodes.map((n) => n.command('ROLE')))
          return roles.filter((r) => r[0] === 'slave').length === masters * replicas
        },
        { timeoutMs: startTimeoutMs, intervalMs: 100, what: 'replicas in sync' },
      )
    }
  } catch (err) {
    await cluster.stop().catch(() => {})
    throw err
  }
  return cluster
}

// One cluster-enabled redis-server holding every slot (`CLUSTER ADDSLOTSRANGE 0 16383`), as a
// managed "cluster mode" Redis behind a single URL looks: every key is served there, but a
// script whose keys span two slots gets CROSSSLOT. Resolves once cluster_state:ok.
export async function startClusterEnabledServer({
  logDir,
  bin = process.env.REDIS_SERVER || 'redis-server',
  startTimeoutMs = 15_000,
} = {}) {
  if (!logDir) throw new Error('startClusterEnabledServer: logDir is required')
  const dir = fs.mkdtempSync(path.join(logDir, 'cluster-one-'))
  const node = await startNode({ bin, port: await clusterPort(new Set()), dir, startTimeoutMs })
  try {
    await node.command('CLUSTER', 'ADDSLOTSRANGE', '0', '16383')
    await waitFor(async () => /cluster_state:ok/.test(await node.command('CLUSTER', 'INFO')), {
      timeoutMs: startTimeoutMs,
      intervalMs: 100,
      what: 'cluster_state:ok',
    })
  } catch (err) {
    await stopChild(node.child, { termTimeoutMs: 5000 }).catch(() => {})
    throw err
  }
  return { ...node, stop: () => stopChild(node.child, { termTimeoutMs: 5000 }) }
}
