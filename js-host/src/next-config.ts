/**
 * `withFleetcache(nextConfig)`: wires fleetcache into a Next.js 16 config. This module loads no
 * wasm and opens no connection, so `next.config` stays cheap to evaluate; the handlers read
 * their settings from the environment when the server starts. Its one effect beyond the copy
 * it returns: the build output directory is put into `FLEETCACHE_DIST_DIR` for the handlers.
 */
import { existsSync, realpathSync } from 'node:fs'
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

import { createLogger } from './log'
import { parseNextVersion } from './next-release'
import { installedNextVersion } from './next-version'

/** The part of Next's config this helper reads and writes; everything else passes through. */
export interface NextConfigLike {
  cacheHandler?: string | undefined
  cacheMaxMemorySize?: number | undefined
  cacheHandlers?: Record<string, string | undefined> | undefined
  serverExternalPackages?: string[] | undefined
  outputFileTracingIncludes?: Record<string, string[]> | undefined
  outputFileTracingExcludes?: Record<string, string[]> | undefined
  // `object`, not the one field read here: Next 16.0-16.3's `ExperimentalConfig` lacks
  // `durableUseCacheEntries`, and a type with no field in common with an all-optional one is
  // not assignable to it.
  experimental?: object | undefined
  distDir?: string | undefined
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
  /**
   * Project directory, for tracing globs. Default: the directory of the next.config module that
   * called withFleetcache when neither the working directory nor a parent of it holds a
   * next.config (Next was given another directory), else `process.cwd()`.
   */
  projectDir?: string | undefined
  /**
   * The Next.js version the config is for. Default: the `next` installed for `projectDir` (Next
   * evaluates the config with its own package resolvable from there).
   */
  nextVersion?: string | undefined
}

const PACKAGE = 'fleetcache'

/** The two handler entry points withFleetcache sets. */
type Subpath = 'incremental' | 'use-cache'

/**
 * Absolute path of one of this package's entry points, as Next needs it at build and run time.
 * Each resolved by its literal name: this module is server code too (the root entry re-exports
 * withFleetcache), and Turbopack's tracer takes a `require.resolve` of `fleetcache/${subpath}`
 * for every export of the package: with the workers build (`./worker`, its wasm glue) in the
 * trace of any route importing `fleetcache` (16.5.0, measured: docs/decisions/0011,
 * 2026-12-07).
 */
function entry(subpath: Subpath): string {
  return subpath === 'incremental'
    ? require.resolve('fleetcache/incremental')
    : require.resolve('fleetcache/use-cache')
}

// `T & NextConfigLike`, not `T extends NextConfigLike`: an object literal whose keys are
// Next's own (`withFleetcache({ cacheComponents: true })` in next.config.ts) would fail the
// constraint, and TypeScript would then check it against NextConfigLike alone and refuse
// every key that type does not name. The intersection keeps the literal's own keys in T and
// still refuses a wrong type for a key fleetcache sets. Next's own keys are not checked this
// way (the package cannot name Next's types): `satisfies NextConfig` does that. The default
// type argument is for `withFleetcache()`, which infers nothing: its result is then a
// NextConfigLike, not a bare `object`.
/** A copy of `config` with fleetcache's handlers set; the caller's object is not modified. */
export function withFleetcache<T extends object = NextConfigLike>(
  config: T & NextConfigLike = {} as T & NextConfigLike,
  options: WithFleetcacheOptions = {},
): T {
  const out: NextConfigLike = { ...config }
  const appDir = appDirFromStack()
  const projectDir = options.projectDir ?? appDir ?? process.cwd()
  if (options.incremental ?? true) {
    out.cacheHandler = entry('incremental')
    replaced(
      'cacheHandler',
      config.cacheHandler,
      'incremental',
      'pass { incremental: false } to withFleetcache',
      projectDir,
    )
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
      // The handler's own rule (the core's `Interface::use_cache`): a name it would refuse at
      // server start is refused here, when the config is read at build.
      if (!/^[a-z-]{1,32}$/.test(name) || name === 'private') {
        throw new Error(
          `withFleetcache: '${name}' is not a cacheHandlers name fleetcache accepts ([a-z-], 1 to 32 characters, not 'private')`,
        )
      }
      replaced(
        `cacheHandlers.${name}`,
        handlers[name],
        'use-cache',
        name === 'default' || name === 'remote'
          ? 'pass { useCache: false } to withFleetcache (it then sets neither default nor remote)'
          : `leave '${name}' out of withFleetcache's handlers option`,
        projectDir,
      )
      handlers[name] = useCache
    }
    out.cacheHandlers = handlers
  }
  // By default from 16.5.0 (16.4 only when asked), Next keys 'use cache' entries by code hash and
  // by the values of the environment variables the cached code's modules read. One
  // per-instance variable among them (INSTANCE_NAME, HOSTNAME, ...) gives every instance its own
  // keys, and the fleet no longer shares the entries. Off, the keys carry the build or deployment
  // id, as on 16.4 and before. An explicit choice of the app stands (docs/decisions/0032).
  const experimental = (config.experimental ?? {}) as { durableUseCacheEntries?: unknown }
  const release = parseNextVersion(options.nextVersion ?? installedNextVersion(projectDir))
  // 16.4.0 introduced the option: older releases would warn about an unknown key.
  const knowsDurable =
    release !== undefined && (release.major > 16 || (release.major === 16 && release.minor >= 4))
  if (names.length > 0 && knowsDurable && experimental.durableUseCacheEntries === undefined) {
    out.experimental = { ...experimental, durableUseCacheEntries: false }
  }
  // Next tells the 'use cache' handlers nothing, the singular one only its server directory,
  // and then only at construction: the build id (the deployment's namespace) and the build's
  // bundler are found through the build output directory, which `next start` only knows from
  // this config. Next evaluates it in the server process itself (`next start` and the build's
  // workers inherit the variable); a value the environment already has stands. Next resolves
  // `distDir` against the app directory, which the handlers only know as their working
  // directory: from another one (`next start /srv/app`), the app's is passed on, absolute. A
  // standalone server.js evaluates no config (it announces the recorded one, whose distDir
  // this leaves as it is), so nothing of the build's directories reaches it.
  const customDist =
    typeof config.distDir === 'string' && config.distDir !== '' ? config.distDir : undefined
  if (!process.env.FLEETCACHE_DIST_DIR) {
    if (appDir !== undefined) {
      process.env.FLEETCACHE_DIST_DIR = resolve(appDir, customDist ?? '.next')
    } else if (customDist !== undefined) {
      process.env.FLEETCACHE_DIST_DIR = customDist
    }
  }
  // Bundling would inline the wasm glue and break its path to the .wasm file.
  const externals = config.serverExternalPackages ?? []
  out.serverExternalPackages = externals.includes(PACKAGE) ? externals : [...externals, PACKAGE]
  // What `output: 'standalone'` copies of the package. Next's tracing follows the glue's fs
  // read of the server module (measured on 16.x), but a read it cannot resolve would leave the
  // server without its engine: that one file is listed explicitly. Nothing is excluded: the
  // files no server loads, the CLI's code and the tools module it loads, are out of reach of
  // every trace. Turbopack's traces (the routes' and the instrumentation hook's, where Next
  // applies no exclude) hold every file under dist/, whatever refers to it, so the CLI is
  // compiled into cli/, outside it; and only the CLI requires the tools glue, which wasm.ts does
  // not name (16.5.0, measured: docs/decisions/0011).
  //
  // The path is joined from constant segments only. This module is server code too (the root
  // entry re-exports withFleetcache), and Turbopack's tracer evaluates a path it builds: the
  // package's directory joined with a value it cannot know (the parameter of a helper, as this
  // was) put every file of the package, the CLI's among them, into the trace of any route that
  // imports `fleetcache` (16.5.0, measured: docs/decisions/0011, 2026-12-07).
  const packageDir = dirname(require.resolve(`${PACKAGE}/package.json`))
  const serverWasm = join(packageDir, 'wasm', 'fleetcache_wasm_bg.wasm')
  out.outputFileTracingIncludes = withGlobs(config.outputFileTracingIncludes, '/*', [
    relative(projectDir, serverWasm).split(sep).join('/'),
  ])
  return out as T
}

/**
 * Warns, in one line, that the config's own `key` held `had` and withFleetcache put
 * `fleetcache/<subpath>` there. Replaced all the same: a throw would fail builds that work
 * today. Not named: a config wrapped twice, or one wired by hand with the package's own entry
 * (`ownEntry`), which loads the handler withFleetcache sets.
 */
function replaced(
  key: string,
  had: string | null | undefined,
  subpath: Subpath,
  keep: string,
  projectDir: string,
): void {
  // No handler there (`null` or '' from a config that sets the key on some condition, which
  // Next takes for none): nothing of the config's own is lost.
  if (had === undefined || had === null || had === '') return
  if (typeof had === 'string' && ownEntry(had, subpath, projectDir)) return
  createLogger(false).warn(
    `withFleetcache replaced the config's ${key} ('${had}') with ${PACKAGE}/${subpath}: to keep yours, ${keep}, or set ${key} on the config it returns`,
  )
}

/**
 * Whether the handler path `had` names this package's `subpath` entry, in any spelling Next
 * loads (`formatDynamicImportPath`: a `file://` URL, as `import.meta.resolve` gives, or a path
 * relative to the project directory), CommonJS or ESM (`esm/<subpath>.mjs`, what an ESM
 * config's `import.meta.resolve` finds, re-exports the CommonJS handler: one module graph),
 * through symlinks (a pnpm store) alike.
 */
function ownEntry(had: string, subpath: Subpath, projectDir: string): boolean {
  const cjs = entry(subpath)
  if (had === cjs) return true
  const real = (p: string): string | undefined => {
    try {
      return realpathSync(p)
    } catch {
      return undefined
    }
  }
  let file: string
  try {
    file = had.startsWith('file://') ? fileURLToPath(had) : had
  } catch {
    // A URL Node cannot map to a file: not one of ours, whatever Next makes of it.
    return false
  }
  const target = real(isAbsolute(file) ? file : join(projectDir, file))
  if (target === undefined) return false
  const cjsReal = real(cjs)
  if (target === cjsReal) return true
  // `esm/<subpath>.mjs` beside the CommonJS entry's `dist/`, compared by its parts: no path is
  // built from the package's directory and `subpath`, which Turbopack's tracer would take for
  // every `esm/*.mjs` in the trace of a route importing `fleetcache` (see withFleetcache).
  return (
    cjsReal !== undefined &&
    basename(target) === `${subpath}.mjs` &&
    basename(dirname(target)) === 'esm' &&
    dirname(dirname(target)) === dirname(dirname(cjsReal))
  )
}

/**
 * The module names under which Next 16.0.0 to 16.5.0 evaluate a config (`CONFIG_FILES` in
 * `next/dist/shared/lib/constants.js`; `.mts` with Node's TypeScript support), each loaded by
 * `import()` of its file. Not the compiled name of a `next.config.ts`: `COMPILED_CONFIG`.
 */
const CONFIG_FILES = new Set([
  'next.config.js',
  'next.config.mjs',
  'next.config.ts',
  'next.config.mts',
])

/**
 * What Next names a `next.config.ts` compiled to CommonJS: `<dir>/next.config.compiled.js`,
 * `dir` being the project directory it was given, wherever the config file was found
 * (`requireFromString` in `next/dist/build/next-config-ts/transpile-config.js`, 16.0.0 to 16.5.0).
 */
const COMPILED_CONFIG = 'next.config.compiled.js'

/**
 * The app directory Next evaluates the config for, when the call stack tells it and the working
 * directory does not: undefined when no frame is a Next config module's (withFleetcache called
 * from a module evaluated by itself), or when Next, given no directory, would find a config from
 * the working directory: it looks in its project directory and then in each parent (`findUp`),
 * so from there the project directory may well be the working directory, as a plain `next
 * start` has it. The frame's file cannot tell that case apart: the loaders name a module by its
 * real path (a next.config that is a symlink to a shared file is named by its target), and an
 * ES module's imports run before it, not below it on the stack (a shared module named
 * next.config.* that the app's config re-exports is the only config frame). The outermost
 * config frame counts, the module Next loaded: a helper the config calls is passed over, and so
 * is a config-named module of another directory that the config requires.
 *
 * Read from V8's call sites (file paths, `file://` URLs for ESM), not the formatted stack,
 * which another `Error.prepareStackTrace` (source maps) may have rewritten.
 */
function appDirFromStack(cwd: string = process.cwd()): string | undefined {
  const file = configFileOnStack()
  if (file === undefined) return undefined
  const dir = realDir(dirname(file))
  // The compiled name is the project directory Next was given, wherever the file was found.
  if (basename(file) === COMPILED_CONFIG) return dir === realDir(cwd) ? undefined : dir
  return configFoundFrom(cwd) ? undefined : dir
}

/** Whether `dir` or one of its parents holds a file of a name Next loads a config from. */
function configFoundFrom(dir: string): boolean {
  for (let at = resolve(dir); ;) {
    for (const name of CONFIG_FILES) if (existsSync(join(at, name))) return true
    const up = dirname(at)
    if (up === at) return false
    at = up
  }
}

/** `dir` through its symlinks (the module loaders name files by their real path). */
function realDir(dir: string): string {
  try {
    return realpathSync(dir)
  } catch {
    return resolve(dir)
  }
}

/** The path of the outermost Next config module on the call stack, if any. */
function configFileOnStack(): string | undefined {
  // The descriptor, put back as it was: Node's own formatter (source maps), another's, or none.
  // An accessor (a tool that wraps what is assigned to it) keeps what its setter was given, so
  // it is given back, through its setter, the function its getter returned.
  const prepare = Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace')
  const accessor = prepare !== undefined && !('value' in prepare)
  let previous: { value: unknown } | undefined
  const limit = Error.stackTraceLimit
  const holder: { stack?: unknown } = {}
  let sites: unknown
  try {
    if (accessor) previous = { value: Reflect.get(Error, 'prepareStackTrace') as unknown }
    // Every frame: the config Next loaded is the outermost of its kind, below the config's
    // own helpers and requires.
    Error.stackTraceLimit = Infinity
    Error.prepareStackTrace = (_e, callSites) => callSites
    Error.captureStackTrace(holder, configFileOnStack)
    sites = holder.stack
  } catch {
    // Frozen intrinsics or a foreign stack API: no frame to go by.
    return undefined
  } finally {
    // Each on its own, so that one that cannot be put back does not keep the other as it is.
    try {
      Error.stackTraceLimit = limit
    } catch {
      // Not writable: not changed above either.
    }
    try {
      if (prepare === undefined) Reflect.deleteProperty(Error, 'prepareStackTrace')
      else if (!accessor) Object.defineProperty(Error, 'prepareStackTrace', prepare)
      else if (previous !== undefined)
        Error.prepareStackTrace = previous.value as typeof Error.prepareStackTrace
    } catch {
      // Not configurable, or an accessor without a setter: not changed above either.
    }
  }
  if (!Array.isArray(sites)) return undefined
  let found: string | undefined
  for (const site of sites as NodeJS.CallSite[]) {
    const name = site.getFileName()
    if (typeof name !== 'string') continue
    let file: string
    try {
      file = name.startsWith('file://') ? fileURLToPath(name) : name
    } catch {
      continue
    }
    if (!isAbsolute(file)) continue
    const base = basename(file)
    if (CONFIG_FILES.has(base) || base === COMPILED_CONFIG) found = file
  }
  return found
}

/** A copy of `globs` with `add` appended to the globs of `key`, each once. */
function withGlobs(
  globs: Record<string, string[]> | undefined,
  key: string,
  add: readonly string[],
): Record<string, string[]> {
  const out = { ...globs }
  const had = out[key] ?? []
  out[key] = [...had, ...add.filter((g) => !had.includes(g))]
  return out
}
