/**
 * The CLI's Redis access: one node-redis client per server, binary replies, and key scans that
 * are bounded and safe on a live Redis (SCAN, never KEYS).
 */
import { createClient, RESP_TYPES } from 'redis'

const BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer } as const

/** A connected client that runs raw commands with Buffer bulk replies. */
export interface Conn {
  send(argv: readonly (string | Buffer)[]): Promise<unknown>
  close(): Promise<void>
  /** host:port, for messages. */
  readonly address: string
}

/** Connects to `url` (fails after `timeoutMs` rather than retrying forever, unlike the server). */
export async function connect(url: string, timeoutMs = 5000): Promise<Conn> {
  const client = createClient({
    url,
    socket: { connectTimeout: timeoutMs, reconnectStrategy: false },
  })
  // A CLI reports connection errors through the failing command; no process-crashing 'error'.
  client.on('error', () => undefined)
  await client.connect()
  const u = new URL(url)
  return {
    address: u.host,
    send: (argv) => client.sendCommand(argv, { typeMapping: BUFFERS }),
    close: async () => {
      await client.close()
    },
  }
}

/**
 * The servers whose keys a scan must cover. A standalone Redis (or a replica set behind one
 * endpoint) is just the one connection; on Redis Cluster every master holds its own slots, so
 * a scan has to visit each of them. Cluster discovery is issue 8: this is the single place that
 * will list the masters (`CLUSTER SHARDS`), and every scanning command already iterates over it.
 */
export function scanTargets(conn: Conn): Conn[] {
  return [conn]
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
