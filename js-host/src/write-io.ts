import { now } from './clock'
import { describe } from './log'
import { nodeCodecs } from './node-codecs'
import type { Runtime } from './runtime'
import { runScript } from './transport'
import { writeEntry, type WriteIo } from './write-driver'
import { wasm, type Interface } from './wasm'

/** Buffer view of `bytes` (no copy): node-redis sends Buffers as they are. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** The write driver's host side in Node: the runtime's store, tier, transport and log. */
export function writeIo(rt: Runtime): WriteIo {
  const { engine, store, transport, log } = rt
  return {
    enums: wasm,
    now,
    store: (key, value, ttlMs, argv, until) =>
      store.write(key, asBuffer(value), ttlMs, argv, until),
    script: async (argv) => {
      // Without Redis no lease is ever won, so nothing is released.
      if (transport === undefined) return
      await runScript(transport, argv, (sha) => engine.scriptSource(sha), { kind: 'write' })
    },
    remember: (key, value, until, outageOnly) => {
      store.remember(key, asBuffer(value), until, outageOnly)
    },
    markLocal: (key) => {
      store.markLocal(key)
    },
    wait: waitAtMost,
    compress: (codec, level, data) => nodeCodecs.compress(codec, level, data),
    ordersWrites: true,
    describe,
    log,
  }
}

/**
 * A `set` of `cacheKey` that produced nothing to store: lets a lease this process holds on it
 * go at once, so the others stop waiting for this regeneration. Never rejects.
 */
export async function abandon(rt: Runtime, iface: Interface, cacheKey: string): Promise<void> {
  try {
    const machine = wasm.WriteMachine.abandoned(rt.engine, iface, cacheKey, now())
    await writeEntry(rt.engine, machine, [], writeIo(rt))
  } catch (err) {
    rt.log.debug(`lease release not planned (${describe(err)}): it expires`)
  }
}

/**
 * `WriteIo.wait` in Node: one unref'd timer, cleared when `landed` settles. Not
 * `timers/promises` with an AbortSignal: that made a signal with its listeners and two errors
 * with stacks (the abort's reason, the rejection) per write, and kept them past the minor
 * collections (sampled: about 1 KB per write promoted to the old generation).
 */
export function waitAtMost(ms: number, landed: Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms)
    timer.unref()
    void landed.then(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}
