/**
 * How the handler modules (`fleetcache/use-cache`, `fleetcache/incremental`) start: the
 * environment's settings are checked in full, the core's checks included, when the module
 * loads. Under `next start` and a standalone `server.js`, Next loads the `cacheHandlers` module
 * at boot and the singular handler on the first request (`unstable_preloadEntries` in
 * `next/dist/server/next-server.js`). Next catches what
 * a handler module throws and answers every request with 500 instead, so a server process with
 * an invalid setting writes one line naming the variable and exits with status 1: a platform's
 * health check sees a process that never came up. A `next build` uses neither Redis nor any
 * runtime setting (docs/decisions/0022): it warns with the same line and goes on with the
 * defaults.
 */
import {
  ConfigError,
  isBuildPhase,
  optionsFromEnv,
  resolveOptions,
  type ResolvedOptions,
} from './config'
import { createLogger, prefixed } from './log'
import { checkNextVersion } from './next-version'
import { PACKAGE_VERSION } from './package-version'
import { runtimeFor } from './runtime'

type Env = Record<string, string | undefined>

/**
 * Set on `globalThis` when this version of the package has warned of an invalid setting in a
 * `next build`: one key per package version, since each version checks the settings with its
 * own code (two copies in node_modules: the first version's warning must not hide another's,
 * which may be of another problem), and copies of one version warn once. Builds from before
 * this key used `fleetcache.build-setting-warned` for every version, which no version reads now.
 */
const WARNED = Symbol.for(`fleetcache.build-setting-warned@${PACKAGE_VERSION}`)

/** Exit status of a server process stopped by an invalid setting. */
export const CONFIG_EXIT_CODE = 1

/** Options whose variable is not `FLEETCACHE_` plus the option's name in capitals. */
const OPTION_VARIABLES: Record<string, string | undefined> = {
  sentinels: 'FLEETCACHE_REDIS_SENTINELS',
  redisNodes: 'FLEETCACHE_REDIS_NODES',
}

/** The variable an option is read from: `readTimeoutMs` is `FLEETCACHE_READ_TIMEOUT_MS`. */
function variableOf(setting: string, env: Env): string {
  const own = `FLEETCACHE_${setting.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`
  // The read and write budgets fall back to the command budget when not set themselves.
  if (
    (setting === 'readTimeoutMs' || setting === 'writeTimeoutMs') &&
    !env[own] &&
    env.FLEETCACHE_COMMAND_TIMEOUT_MS
  ) {
    return 'FLEETCACHE_COMMAND_TIMEOUT_MS'
  }
  return own
}

/**
 * An invalid setting of the environment as one line that names its variable (`REDIS_URL: ...`,
 * `FLEETCACHE_PREFIX: ... got "my app"`), or undefined when `err` is not about a setting.
 */
export function settingProblem(err: unknown, env: Env = process.env): string | undefined {
  if (err instanceof ConfigError) {
    // Checks across variables (Sentinel with Cluster) run on the options: name the variable.
    const variable = OPTION_VARIABLES[err.variable]
    return variable === undefined
      ? err.message
      : `${variable}${err.message.slice(err.variable.length)}`
  }
  // The core's checks (range of a budget, the prefix's alphabet) name the option.
  const e = err as { code?: unknown; setting?: unknown; message?: unknown } | null
  if (
    e === null ||
    typeof e.code !== 'string' ||
    !e.code.startsWith('ERR_CONFIG_') ||
    typeof e.setting !== 'string'
  ) {
    return undefined
  }
  const variable = variableOf(e.setting, env)
  const why = String(e.message).replace(/^invalid fleetcache config: \S+ /, '')
  const value = env[variable]
  return `${variable}: ${why}${value === undefined ? '' : `, got "${value}"`}`
}

/**
 * The options of this process from its environment, with the runtime they open created (so the
 * core has checked them). An invalid setting ends a server process here, with one line on
 * stderr; in a `next build` it is a warning and the result is undefined (use the defaults).
 */
export function startFromEnvironment(env: Env = process.env): ResolvedOptions | undefined {
  try {
    const options = optionsFromEnv(env)
    const resolved = resolveOptions(options, options.deploymentSource)
    runtimeFor(resolved)
    // A server (not a build: its workers would repeat it) says once when the Next.js it runs
    // is outside the range package.json declares.
    if (!isBuildPhase(env)) checkNextVersion(createLogger(resolved.debug))
    return resolved
  } catch (err) {
    const problem = settingProblem(err, env)
    if (problem === undefined) throw err
    if (isBuildPhase(env)) {
      // Once per process and package version, though both handler modules get here.
      const g = globalThis as unknown as Record<symbol, boolean | undefined>
      if (g[WARNED] === true) return undefined
      g[WARNED] = true
      console.warn(
        prefixed(
          `invalid setting ignored by next build, which uses no Redis and no runtime setting: ${problem}. A server started with it exits at once.`,
        ),
      )
      return undefined
    }
    console.error(prefixed(`invalid setting, the server does not start: ${problem}`))
    process.exit(CONFIG_EXIT_CODE)
  }
}
