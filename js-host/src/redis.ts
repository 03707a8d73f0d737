import { createClient, RESP_TYPES } from 'redis'

import type { Logger } from './log'
import { describe } from './log'
import type { Transport } from './transport'

const BUFFERS = { [RESP_TYPES.BLOB_STRING]: Buffer } as const

export interface RedisTransportOptions {
  url: string
  commandTimeoutMs: number
  connectTimeoutMs: number
  log: Logger
}

/**
 * node-redis transport: one client per process, connected on first use. Commands issued while
 * disconnected fail at once instead of queueing (a dead Redis must not pile up requests), and
 * every command carries a deadline.
 */
export class RedisTransport implements Transport {
  private readonly client
  private connecting: Promise<void> | undefined
  private connectDeadline = 0
  private lastErrorLog = 0

  constructor(private readonly options: RedisTransportOptions) {
    this.client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: options.connectTimeoutMs,
        // Back off to at most 2 s between attempts, forever: Redis restarts must heal by themselves.
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 6), 2000),
      },
    })
    // Without a listener node-redis would throw on 'error' and crash the server; log at most
    // once every 10 s so an outage does not flood the logs.
    this.client.on('error', (err: unknown) => {
      const t = Date.now()
      if (t - this.lastErrorLog > 10_000) {
        this.lastErrorLog = t
        options.log.error(`redis: ${describe(err)}`)
      }
    })
  }

  /**
   * Resolves when a command can be sent. Only the first connect may be waited for, and only
   * within the connect budget; after that a disconnected client fails fast and node-redis keeps
   * reconnecting in the background.
   */
  private ensureConnected(): Promise<void> {
    if (this.client.isReady) return Promise.resolve()
    if (this.connecting === undefined) {
      this.connectDeadline = Date.now() + this.options.connectTimeoutMs
      this.connecting = this.client.connect().then(() => undefined)
      this.connecting.catch(() => undefined)
    }
    const remaining = this.connectDeadline - Date.now()
    if (remaining <= 0) return Promise.reject(new Error('redis is not connected'))
    return withDeadline(this.connecting, remaining, 'redis connect')
  }

  async send(argv: readonly (string | Buffer)[]): Promise<unknown> {
    await this.ensureConnected()
    return this.client.sendCommand(argv, {
      typeMapping: BUFFERS,
      timeout: this.options.commandTimeoutMs,
    })
  }

  async close(): Promise<void> {
    if (!this.client.isOpen) return
    // A client that is still (re)connecting has nothing to flush; stop its retry loop at once.
    if (this.client.isReady) await this.client.close()
    else this.client.destroy()
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${what} took longer than ${ms} ms`))
    }, ms)
    promise.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (e: unknown) => {
        clearTimeout(timer)
        reject(e instanceof Error ? e : new Error(String(e)))
      },
    )
  })
}
