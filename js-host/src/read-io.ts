import { setTimeout as sleep } from 'node:timers/promises'

import { now } from './clock'
import { inflateStored } from './compression'
import { consumerWillServerCache } from './consumer'
import { describe, type Logger } from './log'
import { nodeCodecs } from './node-codecs'
import { logAnswer, type Answer, type ReadIo } from './read-driver'
import type { Runtime } from './runtime'
import { runScript } from './transport'
import { wasm } from './wasm'
import type { Consumer } from '../wasm/node/fleetcache_wasm'

/** What `script` rejects with when no Redis is configured: the machine hears "no lease". */
class NoRedisError extends Error {
  readonly code = 'ERR_NO_REDIS'
  constructor() {
    super('no Redis configured')
    this.name = 'NoRedisError'
  }
}

/** A Buffer over `bytes` without a copy (the store keeps Buffers; replies are Buffers already). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * The Node host's side of the read driver for `rt`: node-redis through the guarded transport
 * (budgets and breaker: guard.ts), the runtime's store and tier, unref'd timers.
 */
export function nodeReadIo(rt: Runtime): ReadIo {
  const { engine, store, transport, log } = rt
  return {
    binding: wasm,
    now,
    sleep: (ms) => sleep(ms, undefined, { ref: false }),
    refresh: () => rt.tags.refresh(),
    tierBytes: (key) => store.tierBytes(key),
    remember: (key, bytes, until, outageOnly, pageGen, order) => {
      store.remember(key, asBuffer(bytes), until, outageOnly, pageGen, order)
    },
    forget: (key) => {
      store.forget(key)
    },
    // The budget is the guarded transport's for the kind, the same engine value.
    get: (key) => store.get(key),
    getNow: store.getNow === undefined ? undefined : (key) => store.getNow?.(key, now()) ?? null,
    held: store.held === undefined ? undefined : (key) => store.held?.(key) ?? null,
    shares: true,
    // The engine's count: announcements, gaps and this process's own page writes.
    announcementsHeard: () => engine.pageHeard,
    script: (argv, _budgetMs, kind = 'lease', readsEntry = false) =>
      transport === undefined
        ? Promise.reject(new NoRedisError())
        : runScript(transport, argv, (sha) => engine.scriptSource(sha), {
            kind,
            entryReply: readsEntry,
          }),
    debug: (line) => {
      log.debug(line)
    },
    inflate: (stored) => inflateStored(engine, stored, nodeCodecs),
  }
}

/**
 * Who consumes this read's answer, from Next's work-unit store (consumer.ts): a server cache
 * (then the machine treats a stale entry as a miss) or the response. Call before any await.
 */
export function readConsumer(): Consumer {
  return consumerWillServerCache() ? wasm.Consumer.Caches : wasm.Consumer.Serves
}

/**
 * `logAnswer` for a read whose value is decided: what it throws (the machine behind the answer
 * left borrowed by a trap) is logged, not passed on. A `get` must not fail, nor lose its value,
 * over its log lines (Next turns a rejected `get` into a failed render).
 */
export function logAnswerSafely(
  log: Logger,
  answer: Answer,
  what: string,
  key: string,
  readError?: unknown,
): void {
  try {
    logAnswer(log, answer, readError)
  } catch (err) {
    log.error(
      `${what} of ${key}: its log lines could not be read, its value served: ${describe(err)}`,
    )
  }
}

/**
 * Frees a read's answer (its machine released to the pool), logging what that throws instead of
 * passing it on (`what` of `key` names the call in the line): the value is read by then, and the machine is the pool's loss (it drops one a
 * trap left borrowed), not the caller's.
 */
export function freeAnswer(log: Logger, answer: { free(): void }, what: string, key: string): void {
  try {
    answer.free()
  } catch (err) {
    log.error(
      `${what} of ${key}: its read machine could not be released, its value served: ${describe(err)}`,
    )
  }
}
