// Closes fleetcache's Redis connections when the server is stopped, with the recipe of
// docs/operating.md ("Shutdown"): on SIGTERM or SIGINT, `close()` (which first sends the
// revalidations still queued and the tag records Redis lost), then the exit, within 10 s at most.
// It needs NEXT_MANUAL_SIG_HANDLE=1 in the server's environment: without it Next's own handler
// exits the process once its HTTP server is closed, before `close()` is done.
//
// The example installs it only with EXAMPLE_CLOSE_ON_SIGNALS=1 (the e2e test of shutdown,
// tests/e2e/shutdown.test.mjs); EXAMPLE_CLOSE_ON_SIGNALS=force installs it even without
// NEXT_MANUAL_SIG_HANDLE, to show what Next's handler does to it. An app copies the body of the
// `if` below into its own register().
export async function register() {
  if (process.env.NEXT_RUNTIME !== 'nodejs') return
  const mode = process.env.EXAMPLE_CLOSE_ON_SIGNALS
  if (mode !== '1' && mode !== 'force') return

  if (!process.env.NEXT_MANUAL_SIG_HANDLE) {
    console.warn(
      '[example] NEXT_MANUAL_SIG_HANDLE is not set: Next exits on SIGTERM before fleetcache close() is done',
    )
    if (mode !== 'force') return
  }
  const { close } = await import('fleetcache')
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
