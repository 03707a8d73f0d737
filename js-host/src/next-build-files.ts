/**
 * What `next build` left for the server: the build output directory, the build id and the
 * configuration it recorded. Read from disk (or a standalone server's environment) at start.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

/**
 * The Next release that built the build output directory `dir`, from
 * `diagnostics/framework.json` (which every 16.x build writes); undefined when that file is
 * missing, unreadable or names no `major.minor.patch` version.
 */
export function builtWithNext(dir: string): string | undefined {
  try {
    const f = JSON.parse(readFileSync(join(dir, 'diagnostics', 'framework.json'), 'utf8')) as {
      version?: unknown
    }
    return typeof f.version === 'string' && /^\d+\.\d+\.\d+/.test(f.version) ? f.version : undefined
  } catch {
    return undefined
  }
}

/** Environment variables, as `process.env` holds them. */
export type Env = Record<string, string | undefined>

/**
 * The build output directory of the running app, relative to the server's working directory
 * or absolute: `FLEETCACHE_DIST_DIR` (which `withFleetcache` sets from the config's `distDir`,
 * or to the app's, absolute, for a server started from another directory, when Next evaluates
 * the config, in the `next start` process itself), else the `distDir` a standalone
 * server.js announces (it puts the whole config in `__NEXT_PRIVATE_STANDALONE_CONFIG`), else
 * `.next`.
 */
export function distDir(env: Env): string {
  if (env.FLEETCACHE_DIST_DIR) return env.FLEETCACHE_DIST_DIR
  const standalone = env.__NEXT_PRIVATE_STANDALONE_CONFIG
  if (standalone) {
    try {
      const dir = (JSON.parse(standalone) as { distDir?: unknown }).distDir
      if (typeof dir === 'string' && dir !== '') return dir
    } catch {
      // Not ours to validate: Next reads the same variable and reports it.
    }
  }
  return '.next'
}

/**
 * The build output directory `distDir(env)` names, from the working directory `cwd`: resolved,
 * not joined, so an absolute `FLEETCACHE_DIST_DIR` (a server started from another directory
 * than the app's) is that directory, as the namespace line names it.
 */
function buildDir(cwd: string, env: Env): string {
  return resolve(cwd, distDir(env))
}

/** The configuration `next build` recorded: a standalone server's, else the build's. */
function recordedConfig(env: Env, cwd: string): unknown {
  const standalone = env.__NEXT_PRIVATE_STANDALONE_CONFIG
  if (standalone) return JSON.parse(standalone)
  return configIn(buildDir(cwd, env))
}

/** The configuration `next build` recorded in the build output directory `dir`. */
function configIn(dir: string): unknown {
  const file = join(dir, 'required-server-files.json')
  return (JSON.parse(readFileSync(file, 'utf8')) as { config?: unknown }).config
}

/**
 * Whether the build being served was made by webpack (`next build --webpack`): its server
 * output has webpack's runtime chunk, `<distDir>/server/webpack-runtime.js`
 * (`DEFAULT_RUNTIME_WEBPACK` in `next/dist/shared/lib/constants.js`, 16.0.0 to 16.5.0), which
 * every server route of a webpack build requires, so a standalone copy has it too. Turbopack
 * writes its runtime elsewhere (`server/chunks/[turbopack]_runtime.js`), and `next build`
 * empties the directory first, so a Turbopack build over a webpack one leaves none. Not the
 * `<distDir>/turbopack` marker Turbopack writes: `output: 'standalone'` does not copy it.
 */
export function builtWithWebpack(env: Env = process.env, cwd: string = process.cwd()): boolean {
  return webpackBuildIn(buildDir(cwd, env))
}

/** `builtWithWebpack` of the build output directory `dir`. */
function webpackBuildIn(dir: string): boolean {
  return existsSync(join(dir, 'server', 'webpack-runtime.js'))
}

/** Whether `config` and the build in `dir` key durably (`durableUseCacheEntries`). */
function durableBuild(config: unknown, dir: string): boolean {
  const c = config as { experimental?: { durableUseCacheEntries?: unknown } } | null | undefined
  return c?.experimental?.durableUseCacheEntries === true && !webpackBuildIn(dir)
}

/**
 * Whether Next keys the `'use cache'` entries of the build being served durably (by code hash
 * and release): `experimental.durableUseCacheEntries` on (read from the configuration a
 * standalone server announces, else from `<distDir>/required-server-files.json`, where
 * `next build` records it) and a Turbopack build, as Next decides
 * (`next/dist/server/async-storage/work-store.js`: `!!process.env.TURBOPACK && ...`, inlined
 * in the route runtime the build's bundler selects). False when the configuration cannot be
 * read.
 */
export function durableUseCacheEntries(
  env: Env = process.env,
  cwd: string = process.cwd(),
): boolean {
  try {
    return durableBuild(recordedConfig(env, cwd), buildDir(cwd, env))
  } catch {
    return false
  }
}

/**
 * `durableUseCacheEntries` of the build in the build output directory `dir`, wherever the
 * process runs (`fleetcache seed <dir>`): from `dir`'s own `required-server-files.json` and
 * `server/` output, not the working directory's or a standalone server's environment. False
 * when the configuration cannot be read.
 */
export function durableUseCacheEntriesIn(dir: string): boolean {
  try {
    return durableBuild(configIn(dir), dir)
  } catch {
    return false
  }
}

/** The environment variables Next puts into durable `'use cache'` keys, sorted. */
export interface UseCacheKeyEnvVars {
  /** Their values go into the key (`runtimeEnvVarsRead`). */
  read: string[]
  /** Whether each is unset, falsy or truthy goes into the key (`runtimeEnvVarsExistence`). */
  existence: string[]
}

/**
 * The variables of every `'use cache'` function of the build, from
 * `<distDir>/server/server-reference-manifest.json` (`node[id].durability[key]`, which
 * Turbopack writes when durable entries are on): an instance whose values differ hashes to
 * other keys (docs/decisions/0032). Empty lists when the manifest cannot be read.
 */
export function useCacheKeyEnvVars(
  env: Env = process.env,
  cwd: string = process.cwd(),
): UseCacheKeyEnvVars {
  const read = new Set<string>()
  const existence = new Set<string>()
  const names = (list: unknown, into: Set<string>): void => {
    if (Array.isArray(list)) for (const n of list) if (typeof n === 'string') into.add(n)
  }
  try {
    const file = join(buildDir(cwd, env), 'server', 'server-reference-manifest.json')
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { node?: unknown }
    // Any field may be missing or not an object in a manifest of another shape.
    const fields = (v: unknown): Record<string, unknown> =>
      typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {}
    for (const fn of Object.values(fields(manifest.node))) {
      for (const d of Object.values(fields(fields(fn).durability))) {
        names(fields(d).runtimeEnvVarsRead, read)
        names(fields(d).runtimeEnvVarsExistence, existence)
      }
    }
  } catch {
    // No manifest (or not one this reads): nothing to name.
  }
  return { read: [...read].sort(), existence: [...existence].sort() }
}

export function buildId(cwd: string, env: Env): string | undefined {
  try {
    return readFileSync(join(buildDir(cwd, env), 'BUILD_ID'), 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}

/**
 * The `deploymentId` the configuration of the build being served recorded (a standalone
 * server's announced config, else `<distDir>/required-server-files.json`), with where it was
 * read; undefined when it recorded none, or '' (`experimental.runtimeServerDeploymentId`), or
 * the record cannot be read. Next puts it into `NEXT_DEPLOYMENT_ID` before the handlers load,
 * unless the build set `experimental.useSkewCookie`: then the variable is '', and this is what
 * tells the build apart, its build id being the same in every build that sets a
 * `deploymentId` (`getBuildId` in `next/dist/build/index.js`: 16.2.0 to 16.3.8, and 16.4.0 to
 * 16.5.0 when it sets no `generateBuildId`).
 */
export function recordedDeploymentId(
  env: Env = process.env,
  cwd: string = process.cwd(),
): { id: string; source: string } | undefined {
  try {
    const config = recordedConfig(env, cwd) as { deploymentId?: unknown } | null | undefined
    const id = config?.deploymentId
    if (typeof id !== 'string' || id === '') return undefined
    const source = env.__NEXT_PRIVATE_STANDALONE_CONFIG
      ? '__NEXT_PRIVATE_STANDALONE_CONFIG'
      : join(buildDir(cwd, env), 'required-server-files.json')
    return { id, source: `deploymentId in ${source}` }
  } catch {
    return undefined
  }
}

/**
 * The `deploymentId` the config of the build in `dir` set, from its
 * `required-server-files.json`; undefined when it set none or the file is missing or unreadable.
 * A server of that build takes it as its namespace (Next sets `NEXT_DEPLOYMENT_ID` from it when it
 * constructs the server), so `fleetcache seed` must write there rather than under the build id.
 */
export function configuredDeploymentIdIn(dir: string): string | undefined {
  try {
    const config = configIn(dir) as { deploymentId?: unknown } | undefined
    const id = config?.deploymentId
    return typeof id === 'string' && id !== '' ? id : undefined
  } catch {
    return undefined
  }
}

/**
 * Whether a server of the build in `dir` empties `NEXT_DEPLOYMENT_ID` for
 * `experimental.useSkewCookie`: the config set it (from the build's `required-server-files.json`;
 * false when the file is missing or unreadable) and the build was not made by a 16.0 release
 * (`builtWithNext`; none named counts as a later one). From 16.1.0 (read in 16.1.0, 16.2.12,
 * 16.4.6 and 16.5.0) such a server sets the variable to '' before it loads the handlers,
 * whatever the config's `deploymentId` or the environment held (`base-server.js`), so its
 * namespace is the recorded `deploymentId`, else the build id (or `FLEETCACHE_DEPLOYMENT_ID`,
 * which Next does not touch). 16.0.x knows the option but sets the variable from the config
 * all the same (16.0.0 and 16.0.11), as for any other build.
 */
export function skewCookieIn(dir: string): boolean {
  try {
    const config = configIn(dir) as { experimental?: { useSkewCookie?: unknown } } | null
    if (config?.experimental?.useSkewCookie !== true) return false
  } catch {
    return false
  }
  const release = /^(\d+)\.(\d+)\./.exec(builtWithNext(dir) ?? '')
  return release === null || release[1] !== '16' || release[2] !== '0'
}

/**
 * Whether the config of the build in `dir` set `experimental.runtimeServerDeploymentId`, from
 * its `required-server-files.json` (which then records `deploymentId: ''`); false when the
 * file is missing or unreadable. A server of that build, `next start` and a standalone
 * `server.js` alike, takes `NEXT_DEPLOYMENT_ID` from its environment as it is, `useSkewCookie`
 * or not, and refuses to start without it (`base-server.js`, 16.4.6).
 */
export function runtimeDeploymentIdIn(dir: string): boolean {
  try {
    const config = configIn(dir) as {
      experimental?: { runtimeServerDeploymentId?: unknown }
    } | null
    return config?.experimental?.runtimeServerDeploymentId === true
  } catch {
    return false
  }
}
