// `close()` and the process-wide registry it closes, in a module that imports nothing: the
// `fleetcache/shutdown` entry (shutdown.ts, for instrumentation.ts: docs/operating.md
// "Shutdown") loads this file and no other, no wasm, no Redis client, no CLI, and closes what
// the handlers opened, whichever copy of the package's modules opened it. `close` from
// `fleetcache` is this same function.

/**
 * What the registry holds, as far as closing goes: each runtime (runtime.ts) knows how to close
 * itself, so this module needs none of what a runtime is made of.
 */
export interface Closable {
  /**
   * Stops what the runtime does on its own (telemetry, the build record) at once, then closes
   * its tag channel and its Redis connection; settles when they are closed.
   */
  shut(): Promise<void>
}

/**
 * The runtimes of this process, shared by every copy of the package's modules, of every version
 * of the package (two copies in node_modules): each version keys its own (runtime.ts), and
 * `close()` of any version shuts every one, through the `shut` each carries.
 */
const REGISTRY = Symbol.for('fleetcache.runtimes')

/**
 * The process-wide registry of runtimes, keyed by package version and configuration (runtime.ts).
 */
export function registry<T extends Closable>(): Map<string, T> {
  const g = globalThis as unknown as Record<symbol, Map<string, T> | undefined>
  let r = g[REGISTRY]
  if (r === undefined) {
    r = new Map()
    g[REGISTRY] = r
  }
  return r
}

/** The closes in progress, as one promise (shared by every copy of this module, as the registry). */
const CLOSING = Symbol.for('fleetcache.closing')

/**
 * Closes every Redis connection this process opened (graceful shutdown, tests), once the
 * revalidations still queued, and the tag records Redis lost that this process has not given
 * back yet, are sent or reported lost (https://github.com/fleetcache/fleetcache/blob/main/docs/operating.md, "Shutdown"); a call
 * while another is in progress settles when that one is done too (two shutdown hooks). Every
 * runtime in the registry is shut, whichever version of the package opened it. Settles once
 * every runtime it waits for is shut: rejects with a runtime's error when one failed to close,
 * with an AggregateError of their errors when more did (a call that joined another: that one's
 * runtimes' too). Handlers keep working afterwards as if Redis were unreachable.
 */
export function close(): Promise<void> {
  const reg = registry()
  const runtimes = [...reg.values()]
  reg.clear()
  return closing(runtimes).all
}

/**
 * Closes one runtime as `close()` closes each (a `seed` done with its own, in a process whose
 * handlers go on serving); the others are left open. Resolves when it is closed (a `close()`
 * called meanwhile waits for it too); for a runtime closed already, when the closes in
 * progress are done.
 */
export function closeRuntime(runtime: Closable): Promise<void> {
  const reg = registry()
  const id = [...reg].find(([, r]) => r === runtime)?.[0]
  if (id === undefined) {
    const g = globalThis as unknown as Record<symbol, Promise<void> | undefined>
    return g[CLOSING] ?? Promise.resolve()
  }
  reg.delete(id)
  return closing([runtime]).mine
}

/**
 * Closes `runtimes`, taken out of the registry by the caller: `mine` settles when they are
 * closed, `all` when every close in progress is done too.
 */
function closing(runtimes: Closable[]): { mine: Promise<void>; all: Promise<void> } {
  // Every runtime closes before this settles, even when one fails (an engine that trapped):
  // a call that joins this one must not resolve while connections are still closing.
  const mine = Promise.allSettled(runtimes.map(async (r) => r.shut())).then(failures)
  const g = globalThis as unknown as Record<symbol, Promise<void> | undefined>
  const earlier = g[CLOSING]
  // Both settled, then every failure of either reported.
  const all = earlier === undefined ? mine : Promise.allSettled([earlier, mine]).then(failures)
  g[CLOSING] = all
  const done = (): void => {
    if (g[CLOSING] === all) g[CLOSING] = undefined
  }
  all.then(done, done)
  return { mine, all }
}

/**
 * Marks the AggregateError `failures` makes, on any copy of this module: a close() that joins
 * another reports that one's failures one by one beside its own, not the AggregateError as one.
 */
const FAILURES = Symbol.for('fleetcache.close-failures')

/**
 * Nothing when every close in `results` succeeded; else the one error when one failed, an
 * AggregateError of every error (in the order of `results`) when more did.
 */
function failures(results: PromiseSettledResult<unknown>[]): void {
  const all = results.flatMap((r) => {
    if (r.status === 'fulfilled') return []
    const reason: unknown = r.reason
    return reason instanceof AggregateError && FAILURES in reason
      ? (reason.errors as unknown[])
      : [reason]
  })
  if (all.length === 1) throw all[0]
  if (all.length > 1) {
    const err = new AggregateError(all, `${String(all.length)} runtimes failed to close`)
    // Not enumerable: a log of the error shows the runtimes' errors, not the mark.
    Object.defineProperty(err, FAILURES, { value: true })
    throw err
  }
}
