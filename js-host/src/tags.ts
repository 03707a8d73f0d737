import { now } from './clock'
import { currentRequest } from './consumer'
import type { Logger } from './log'
import { LOAD_STEPS, TagSync, type Subscribe, type Timer } from './tag-sync'
import type { Transport } from './transport'
import { runScript } from './transport'
import { wasm, type Engine } from './wasm'

export type { Durations } from './tag-sync'
export { TagSync } from './tag-sync'

/** Node's timer for `TagSync.watch`: it does not keep the process alive. */
const unrefTimer: Timer = {
  set(fn, ms) {
    const t = setTimeout(fn, ms)
    t.unref()
    return t
  },
  clear(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>)
  },
}

/**
 * The longest time between two pulls of a process that follows the tag state by push: the
 * bound on how late a revalidation reaches its requests when announcements fail unnoticed.
 */
export const PUSH_MAX_PULL_INTERVAL_MS = 1000

/**
 * Tag synchronisation for a Node process: node-redis (or the given transport), Next's clock;
 * with `subscribe`, following the state by push.
 */
export function nodeTagSync(
  engine: Engine,
  transport: Transport | undefined,
  log: Logger,
  subscribe?: Subscribe,
): TagSync {
  return new TagSync(engine, {
    enums: wasm,
    script:
      transport === undefined
        ? undefined
        : (argv, kind, force) =>
            runScript(transport, argv, (sha) => engine.scriptSource(sha), { kind, force }),
    now,
    wall: Date.now,
    log,
    timer: unrefTimer,
    // close() waits for pulls as long as LOAD_STEPS of them answered just within the read
    // budget took: a Redis that answers quickly has a larger state loaded by then.
    closeWaitMs: LOAD_STEPS * engine.budgetMs(wasm.CommandKind.Read),
    // One refresh per request: its page read's, shared by its render and both interfaces.
    request: currentRequest,
    push:
      subscribe === undefined
        ? undefined
        : { subscribe, maxPullIntervalMs: PUSH_MAX_PULL_INTERVAL_MS },
  })
}
