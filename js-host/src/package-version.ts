// This copy's package version, from the package.json beside dist/ (one level up from this file
// compiled): read by `require`, so a standalone build's trace holds that file, and the same for
// CommonJS and ESM consumers (esm/ re-exports dist/). Names the version the OpenTelemetry meter
// and tracer report, and keys the runtimes this version opens (runtime.ts), so two versions of
// the package in one process never share a runtime.

/** The `version` of the package.json of the copy of the package this module belongs to. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const PACKAGE_VERSION = (require('../package.json') as { version: string }).version
