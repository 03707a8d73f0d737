// The Node.js half of the example's instrumentation: instrumentation.ts imports it only when
// NEXT_RUNTIME is 'nodejs', so the Edge build leaves it out (Next's bundler warns about every
// Node.js API, process.on, process.exit, process.listeners, in a module the Edge build holds:
// tests/e2e/shutdown.test.mjs checks that the build logs no such warning).
//
// Closes fleetcache's Redis connections when the server is stopped, with the recipes of
// docs/operating.md ("Shutdown"), switched on by EXAMPLE_CLOSE_ON_SIGNALS (the e2e test of
// shutdown, tests/e2e/shutdown.test.mjs). An app copies instrumentation.ts and the body of the
// `if` it uses into its own instrumentation-node.ts.
//
// EXAMPLE_CLOSE_ON_SIGNALS=1, with NEXT_MANUAL_SIG_HANDLE=1 in the server's environment: Next
// installs no handler; on SIGTERM or SIGINT this one calls `close()` (which first sends the
// revalidations still queued and the tag records Redis lost), then exits, within 10 s at most.
// Without NEXT_MANUAL_SIG_HANDLE it warns and installs nothing: Next's own handler exits the
// process once its HTTP server is closed, before `close()` is done. =force installs it anyway,
// to show that.
//
// EXAMPLE_CLOSE_ON_SIGNALS=after-next, without NEXT_MANUAL_SIG_HANDLE: Next's handler stays and
// drains (its HTTP server closed, the requests in flight and their after() work done); its
// process.exit is held until `close()` is done (10 s at most), then made with Next's exit code.
// When Next installed no handler (NEXT_MANUAL_SIG_HANDLE set), it warns and installs nothing.
//
// Both import `close` from fleetcache/shutdown, which loads nothing else of the package (no wasm,
// no Redis client). The standalone build's trace of the hook holds `esm/shutdown.mjs` and dist/
// whole, with what dist/ loads (the Redis client, the server's wasm), which Turbopack traces for
// any hook; none of the CLI's files (docs/operating.md, "Shutdown").
export async function closeOnSignals() {
  const mode = process.env.EXAMPLE_CLOSE_ON_SIGNALS
  if (mode === 'after-next') return closeAfterNext()
  if (mode !== '1' && mode !== 'force') return

  if (!process.env.NEXT_MANUAL_SIG_HANDLE) {
    console.warn(
      '[example] NEXT_MANUAL_SIG_HANDLE is not set: Next exits on SIGTERM before fleetcache close() is done',
    )
    if (mode !== 'force') return
  }
  const { close } = await import('fleetcache/shutdown')
  let stopping = false
  const stop = (signal: NodeJS.Signals, code: number) => {
    if (stopping) return
    stopping = true
    const t = Date.now()
    console.log(`[example] ${signal}: closing fleetcache`)
    // The bound: exit even if close() takes longer (keep it under the platform's grace period).
    setTimeout(() => process.exit(code), 10_000).unref()
    close()
      .then(() => console.log(`[example] fleetcache closed in ${Date.now() - t} ms`))
      .catch((err) => console.error('[example] fleetcache close() failed:', err))
      .finally(() => process.exit(code))
  }
  process.on('SIGTERM', () => stop('SIGTERM', 143))
  process.on('SIGINT', () => stop('SIGINT', 130))
}

async function closeAfterNext() {
  // Next installs its SIGTERM handler before register() runs, unless NEXT_MANUAL_SIG_HANDLE is
  // set in the environment (one in a .env file is read after the test). Its handler is one
  // function, named `cleanup`, listening to both SIGTERM and SIGINT
  // (next/dist/server/lib/start-server.js, 16.0.0 to 16.5.0): a listener of another module
  // (16.5.0's `next start --experimental-cpu-prof` adds two) is not taken for it.
  // Listeners compared as values: @types/node 26 types each signal's listeners apart.
  const sigint: readonly unknown[] = process.listeners('SIGINT')
  const nextHandler = process
    .listeners('SIGTERM')
    .find((l) => l.name === 'cleanup' && sigint.includes(l))
  if (nextHandler === undefined) {
    console.warn('[example] Next installed no SIGTERM handler: close() is not held for')
    return
  }
  const { close } = await import('fleetcache/shutdown')
  const exit = process.exit
  let signalled = false
  let exiting = false
  const hold = (signal: NodeJS.Signals) => {
    if (signalled) return
    signalled = true
    console.log(`[example] ${signal}: fleetcache closes when Next has drained`)
    // Next's handler calls process.exit once its HTTP server is closed and its close
    // listeners (after() work among them) are done: close() runs then, and the exit after it.
    process.exit = ((code?: number | string | null) => {
      if (exiting) return undefined as never
      exiting = true
      const t = Date.now()
      console.log('[example] Next drained: closing fleetcache')
      const leave = () => exit.call(process, code)
      // The bound: exit even if close() takes longer (keep it under the platform's grace period).
      setTimeout(leave, 10_000).unref()
      close()
        .then(() => console.log(`[example] fleetcache closed in ${Date.now() - t} ms`))
        .catch((err) => console.error('[example] fleetcache close() failed:', err))
        .finally(leave)
      return undefined as never
    }) as typeof process.exit
  }
  process.on('SIGTERM', () => hold('SIGTERM'))
  process.on('SIGINT', () => hold('SIGINT'))
}

