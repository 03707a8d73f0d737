// Next's instrumentation hook. Node-only code (process.on, process.exit, process.listeners)
// stays in instrumentation-node.ts, imported only in the Node.js runtime, as Next's docs put
// runtime-specific code: Next replaces NEXT_RUNTIME in each build, so the Edge build drops the
// import and does not warn about Node.js APIs (an early `return` when NEXT_RUNTIME is not
// 'nodejs' does not: the code after it stays in the Edge build, and each API is warned about).
export async function register() {
  if (process.env.NEXT_RUNTIME === 'nodejs') {
    const { closeOnSignals } = await import('./instrumentation-node')
    await closeOnSignals()
  }
}
