// The `fleetcache/shutdown` entry: `close()` alone, for a shutdown hook (instrumentation.ts,
// docs/operating.md "Shutdown") that should not load, or bring into a standalone build's trace,
// the rest of the package. It requires closing.ts and nothing else; what it closes are the
// runtimes the handlers opened, found through the process-wide registry whichever copy of the
// package's modules opened them. The same function as `close` from `fleetcache`.
export { close } from './closing'
