import { setTimeout as sleep } from 'node:timers/promises'

import type { Engine } from './wasm'
import type { Transport } from './transport'
import { isCircuitOpen } from './transport'

/** Where envelopes live: Redis, or this process's memory when no Redis is configured. */
export interface EntryStore {
  /** The stored envelope, or null. Rejects on transport errors (callers turn them into misses). */
  get(key: string, now: number): Promise<Buffer | null>
  /** Stores an envelope for `ttlMs`. */
  set(key: string, value: Buffer, ttlMs: number, now: number): Promise<void>
  readonly kind: 'redis' | 'memory'
}

export class RedisStore implements EntryStore {
  readonly kind = 'redis'
  constructor(private readonly transport: Transport) {}

  async get(key: string): Promise<Buffer | null> {
    let reply: unknown
    try {
      reply = await this.transport.send(['GET', key], { kind: 'read' })
    } catch (err) {
      // Redis is known to be down (the breaker logged it once): a plain miss, not a log line.
      if (isCircuitOpen(err)) return null
      throw err
    }
    if (reply === null || reply === undefined) return null
    if (!Buffer.isBuffer(reply)) throw new Error('GET returned a non-string reply')
    return reply
  }

  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    try {
      await this.transport.send(['SET', key, value, 'PX', String(Math.max(1, Math.round(ttlMs)))], {
        kind: 'write',
      })
    } catch (err) {
      // Skipped while Redis is known to be down (logged once, when the breaker opened).
      if (!isCircuitOpen(err)) throw err
    }
  }
}

/**
 * The embedded store: bytes in a Map, while the engine's index decides recency, lifetime and
 * eviction under the byte budget.
 */
export class MemoryStore implements EntryStore {
  readonly kind = 'memory'
  private readonly bytes = new Map<string, Buffer>()
  constructor(private readonly engine: Engine) {}

  get(key: string, now: number): Promise<Buffer | null> {
    if (!this.engine.memoryTouch(key, now)) {
      this.bytes.delete(key)
      return Promise.resolve(null)
    }
    return Promise.resolve(this.bytes.get(key) ?? null)
  }

  set(key: string, value: Buffer, ttlMs: number, now: number): Promise<void> {
    const evicted = this.engine.memoryInsert(key, value.byteLength, now + ttlMs)
    this.bytes.set(key, value)
    if (evicted !== '') for (const k of evicted.split('\0')) this.bytes.delete(k)
    return Promise.resolve()
  }
}

/**
 * Waits for a write at most `ms`. Next may hold a response until a handler's `set` resolves,
 * and a stalled Redis must cost that response no more than a read budget; the write itself
 * goes on under its own, longer deadline. `write` must not reject.
 */
export function settleWithin(write: Promise<void>, ms: number): Promise<void> {
  return Promise.race([write, sleep(ms, undefined, { ref: false })])
}
