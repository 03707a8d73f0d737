/**
 * The CLI's Redis access: one node-redis client per server, binary replies, and key scans that
 * are bounded and safe on a live Redis (SCAN, never KEYS).
 */
import { createClient, createCluster, RESP_TYPES } from 'redis'

import type { TransportOptions } from '../dist/config'
import { firstKey } from '../dist/redis-cluster'
import { connectionError } from '../dist/redis-errors'
import { sentinelError, sentinelNode } from '../dist/redis-sentinel'

const BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer } as const

/** A connected client that runs raw commands with Buffer bulk replies. */
export interface Conn {
  send(argv: readonly (string | Buffer)[]): Promise<unknown>
  close(): Promise<void>
  /** host:port, for messages. */
  readonly address: string
  /** The URL it was opened with (credentials included, for connections to other nodes). */
  readonly url: string
  /** Routes by key over a Redis Cluster (scans then need {@link scanTargets}). */
  readonly cluster?: boolean
  /** TLS material, for connections to other nodes. */
  readonly transport?: CliTransport
}

/**
 * How to reach Redis besides the URL, as the server reads it (`transportOptionsFromEnv`):
 * Sentinel (with the sentinels' own credentials) and TLS material in PEM.
 */
export type CliTransport = TransportOptions

/** Node's TLS options from PEM material (none given: Node's defaults). */
function tlsSocket(transport: CliTransport | undefined) {
  const t = transport?.tls
  return {
    ...(t?.ca === undefined ? {} : { ca: t.ca }),
    ...(t?.cert === undefined ? {} : { cert: t.cert }),
    ...(t?.key === undefined ? {} : { key: t.key }),
  }
}

/**
 * The master's URL from the sentinels, asked in turn (`SENTINEL GET-MASTER-ADDR-BY-NAME`): the
 * URL names the master where the host goes, and keeps its user, password, database and scheme.
 */
export async function sentinelMaster(
  url: string,
  transport: CliTransport,
  timeoutMs = 5000,
): Promise<string> {
  const u = new URL(url)
  const name = decodeURIComponent(u.hostname)
  const failures: string[] = []
  for (const address of transport.sentinels ?? []) {
    const client = createClient({
      ...(transport.sentinelUsername === undefined ? {} : { username: transport.sentinelUsername }),
      ...(transport.sentinelPassword === undefined ? {} : { password: transport.sentinelPassword }),
      // The sentinel user of docs/operating.md has no CLIENT SETINFO.
      disableClientInfo: true,
      maintNotifications: 'disabled',
      socket: { ...sentinelNode(address), connectTimeout: timeoutMs, reconnectStrategy: false },
    })
    client.on('error', () => undefined)
    try {
      await client.connect()
      const reply = await client.sendCommand(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name])
      if (Array.isArray(reply) && reply.length === 2) {
        const host = String(reply[0])
        u.hostname = host.includes(':') ? `[${host}]` : host
        u.port = String(reply[1])
        return u.toString()
      }
      failures.push(`${address}: monitors no master named "${name}"`)
    } catch (err) {
      failures.push(`${address}: ${connectionError(sentinelError(err))}`)
    } finally {
      client.destroy()
    }
  }
  throw new Error(`no sentinel could name the master "${name}" (${failures.join('; ')})`)
}

/**
 * Connects to `url` (fails after `timeoutMs` rather than retrying forever, unlike the server).
 * On a Redis Cluster node the connection routes each command by its key through a node-redis
 * cluster client (`single` opens just the one node, for per-node scans). With sentinels in
 * `transport`, `url` names the master, and the connection goes to the one they name now.
 */
export async function connect(
  url: string,
  timeoutMs = 5000,
  single = false,
  transport: CliTransport = {},
): Promise<Conn> {
  if (transport.sentinels !== undefined && transport.sentinels.length > 0) {
    const master = await sentinelMaster(url, transport, timeoutMs)
    return connect(master, timeoutMs, true, { tls: transport.tls })
  }
  const client = createClient({
    url,
    // As the server's clients: no CLIENT SETINFO for the least-privilege user to be denied.
    disableClientInfo: true,
    maintNotifications: 'disabled',
    socket: { connectTimeout: timeoutMs, reconnectStrategy: false, ...tlsSocket(transport) },
  })
  // A CLI reports connection errors through the failing command; no process-crashing 'error'.
  client.on('error', () => undefined)
  await client.connect()
  const u = new URL(url)
  const plain: Conn = {
    address: u.host,
    url,
    transport,
    send: (argv) => client.sendCommand(argv, { typeMapping: BUFFERS }),
    close: async () => {
      await client.close()
    },
  }
  if (single) return plain
  const info = String(await plain.send(['INFO', 'cluster']))
  if (!/cluster_enabled:1/.test(info)) return plain
  await plain.close()
  const cluster = createCluster({
    rootNodes: [{ url }],
    defaults: {
      ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
      ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
      disableClientInfo: true,
      maintNotifications: 'disabled',
      socket: {
        connectTimeout: timeoutMs,
        reconnectStrategy: false,
        ...tlsSocket(transport),
        ...(u.protocol === 'rediss:' ? { tls: true as const } : {}),
      },
    },
  })
  cluster.on('error', () => undefined)
  cluster.on('node-error', () => undefined)
  await cluster.connect()
  return {
    address: u.host,
    url,
    transport,
    cluster: true,
    send: (argv) =>
      cluster.sendCommand(firstKey(argv), false, argv as (string | Buffer)[], {
        typeMapping: BUFFERS,
      }),
    close: async () => {
      await cluster.close()
    },
  }
}

/**
 * The servers whose keys a scan must cover. A standalone Redis (or a replica set behind one
 * endpoint) is just the one connection; on Redis Cluster every master holds its own slots, so
 * a scan has to visit each of them: the masters `CLUSTER NODES` lists (not failed), each
 * opened on its own with `conn`'s credentials and TLS. The caller closes every target that is
 * not `conn`.
 */
export async function scanTargets(conn: Conn): Promise<Conn[]> {
  if (conn.cluster !== true) return [conn]
  const nodes = String(await conn.send(['CLUSTER', 'NODES']))
  const targets: Conn[] = []
  try {
    for (const line of nodes.split('\n')) {
      const [, addr, flags] = line.split(' ')
      if (addr === undefined || flags === undefined) continue
      const f = flags.split(',')
      if (!f.includes('master') || f.includes('fail') || f.includes('noaddr')) continue
      // ip:port@cport[,hostname]
      const hostPort = addr.split('@')[0] ?? ''
      const colon = hostPort.lastIndexOf(':')
      const host = hostPort.slice(0, colon)
      const u = new URL(conn.url)
      u.hostname = host.includes(':') ? `[${host}]` : host
      u.port = hostPort.slice(colon + 1)
      targets.push(await connect(u.toString(), 5000, true, { tls: conn.transport?.tls }))
    }
  } catch (err) {
    for (const t of targets) await t.close().catch(() => undefined)
    throw err
  }
  return targets
}

/** Escapes glob characters for `SCAN MATCH` (key segments are validated, but stay literal). */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

export interface ScanOptions {
  /** Keys per SCAN page (a hint to Redis). */
  count: number
  /** Stop after this many keys in total: a bound on any run. */
  maxKeys: number
}

/**
 * Keys matching `pattern` on one server, one SCAN page at a time. SCAN may return a key twice
 * (during a rehash); callers that count must tolerate that or dedupe. Ends when the cursor
 * returns to 0 or `maxKeys` keys were yielded.
 */
export async function* scanPages(
  conn: Conn,
  pattern: string,
  { count, maxKeys }: ScanOptions,
): AsyncGenerator<string[]> {
  let cursor = '0'
  let seen = 0
  do {
    const reply = (await conn.send(['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(count)])) as [
      Buffer,
      Buffer[],
    ]
    cursor = reply[0].toString()
    const keys = reply[1].map((k) => k.toString())
    const room = maxKeys - seen
    const page = keys.length > room ? keys.slice(0, room) : keys
    seen += page.length
    if (page.length > 0) yield page
    if (seen >= maxKeys) return
  } while (cursor !== '0')
}

/**
 * Progress lines on stderr for long runs: at most one a second, plus the final one, so a
 * terminal and a CI log both stay readable.
 */
export class Progress {
  private last = Date.now()
  private readonly start = Date.now()
  constructor(
    private readonly quiet: boolean,
    private readonly write: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
  ) {}

  tick(line: () => string): void {
    if (this.quiet) return
    const t = Date.now()
    if (t - this.last < 1000) return
    this.last = t
    this.write(`${line()} (${((t - this.start) / 1000).toFixed(1)} s)`)
  }

  done(line: string): void {
    if (!this.quiet) this.write(`${line} in ${((Date.now() - this.start) / 1000).toFixed(1)} s`)
  }
}
