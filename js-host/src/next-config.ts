/**
 * `withFleetcache(nextConfig)`: wires fleetcache into a Next.js 16 config. This module loads no
 * wasm and opens no connection, so `next.config` stays cheap to evaluate; the handlers read
 * their settings from the environment when the server starts.
 */
import { dirname, join, relative, sep } from 'node:path'

/** The part of Next's config this helper reads and writes; everything else passes through. */
export interface NextConfigLike {
  cacheHandler?: string | undefined
  cacheMaxMemorySize?: number | undefined
  cacheHandlers?: Record<string, string | undefined> | undefined
  serverExternalPackages?: string[] | undefined
  outputFileTracingIncludes?: Record<string, string[]> | undefined
  // No index signature: Next's `NextConfig` is an interface, and an interface is not
  // assignable to one (`withFleetcache(config satisfies NextConfig)` must type-check).
}

export interface WithFleetcacheOptions {
  /**
   * Route the singular `cacheHandler` (ISR, full-route cache, route handlers, fetch and
   * `unstable_cache`) through fleetcache. Default true.
   */
  incremental?: boolean | undefined
  /** Route `cacheHandlers.default` and `.remote` (`'use cache'`) through fleetcache. Default true. */
  useCache?: boolean | undefined
  /** More `cacheHandlers` names (`'use cache: <name>'`) to route through fleetcache. */
  handlers?: readonly string[] | undefined
  /** Project directory, for tracing globs. Default `process.cwd()` (where Next evaluates the config). */
  projectDir?: string | undefined
}

const PACKAGE = 'fleetcache'

/** Absolute path of one of this package's entry points, as Next needs it at build and run time. */
function entry(subpath: string): string {
  return require.resolve(`${PACKAGE}/${subpath}`)
}

/** A copy of `config` with fleetcache's handlers set; the caller's object is not modified. */
export function withFleetcache<T extends NextConfigLike>(
  config: T = {} as T,
  options: WithFleetcacheOptions = {},
): T {
  const out: NextConfigLike = { ...config }
  if (options.incremental ?? true) {
    out.cacheHandler = entry('incremental')
    // Next's per-process memory layer would keep serving this instance's own copy after
    // another instance revalidated (docs/incremental.md); an explicit setting is respected.
    if (config.cacheMaxMemorySize === undefined) out.cacheMaxMemorySize = 0
  }
  const names = [
    ...((options.useCache ?? true) ? ['default', 'remote'] : []),
    ...(options.handlers ?? []),
  ]
  if (names.length > 0) {
    const useCache = entry('use-cache')
    const handlers: Record<string, string | undefined> = { ...config.cacheHandlers }
    for (const name of names) {
      if (!/^[a-z-]+$/.test(name) || name === 'private') {
        throw new Error(
          `withFleetcache: '${name}' is not a cacheHandlers name Next accepts ([a-z-]+, not 'private')`,
        )
      }
      handlers[name] = useCache
    }
    out.cacheHandlers = handlers
  }
  // Bundling would inline the wasm glue and break its path to the .wasm file.
  const externals = config.serverExternalPackages ?? []
  out.serverExternalPackages = externals.includes(PACKAGE) ? externals : [...externals, PACKAGE]
  // The glue reads the .wasm with fs at run time, which tracing for `output: 'standalone'`
  // cannot see: list the package's runtime files explicitly.
  const packageDir = dirname(require.resolve(`${PACKAGE}/package.json`))
  const projectDir = options.projectDir ?? process.cwd()
  const glob = relative(projectDir, join(packageDir, 'wasm')).split(sep).join('/') + '/**'
  const includes = { ...config.outputFileTracingIncludes }
  const all = includes['/*'] ?? []
  includes['/*'] = all.includes(glob) ? all : [...all, glob]
  out.outputFileTracingIncludes = includes
  return out as T
}
