/**
 * Options from environment variables: the server's (`optionsFromEnv`) and the connection
 * settings it shares with the `fleetcache` CLI (`transportOptionsFromEnv`).
 */
import { resolve } from 'node:path'

import { buildId, distDir, type Env, recordedDeploymentId } from './next-build-files'
import {
  checkAddress,
  checkUrl,
  inRange,
  RANGES,
  rangeText,
  type RangedSetting,
} from './option-checks'
import {
  ConfigError,
  type FleetcacheOptions,
  type TlsOptions,
  type TransportOptions,
} from './options'

/**
 * A number from the variable `name` in the range of the option `setting` (`RANGES`, the
 * core's bounds; the message states it); unset or empty is undefined.
 */
function numberFromEnv(env: Env, name: string, setting: RangedSetting): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const n = Number(raw)
  const range = RANGES[setting]
  // Number(' ') is 0: spaces alone are refused, also where 0 is in range (leaseWaitMs).
  if (!inRange(range, n) || raw.trim() === '') {
    throw new ConfigError(name, `must be ${rangeText(range)}, got "${raw}"`)
  }
  return n
}

/**
 * A number >= 0 from the variable `name`, for a size where 0 turns something off, and so says
 * the message.
 * `or`: what else the variable takes, for the message (`false or off`).
 */
function nonNegativeNumberFromEnv(env: Env, name: string, or = ''): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const n = Number(raw)
  // Number(' ') is 0, which turns these settings off: spaces alone are refused, as they are
  // elsewhere (numberFromEnv), not taken as an off switch nobody wrote.
  if (!Number.isFinite(n) || n < 0 || raw.trim() === '') {
    throw new ConfigError(name, `must be a number >= 0${or}, got "${raw}"`)
  }
  return n
}

/** A size in bytes, or `0`/`false`/`off` (false); unset or empty is undefined. */
function sizeOrOffFromEnv(env: Env, name: string): number | false | undefined {
  const raw = env[name]
  if (raw === '0' || raw === 'false' || raw === 'off') return false
  const n = nonNegativeNumberFromEnv(env, name, ', false or off')
  return n === 0 ? false : n
}

/** `1`/`true` or `0`/`false`; unset or empty is undefined. */
function booleanFromEnv(env: Env, name: string): boolean | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  if (raw === '1' || raw === 'true') return true
  if (raw === '0' || raw === 'false') return false
  throw new ConfigError(name, `must be 1, true, 0 or false, got "${raw}"`)
}

/** Whether this process is a `next build` worker (NEXT_PHASE is unset under `next start`). */
export function isBuildPhase(env: Env = process.env): boolean {
  return env.NEXT_PHASE === 'phase-production-build'
}

/**
 * The variables Next sets only in a development server (`isDevServer`'s marks). A production
 * server (`next start`, a standalone `server.js`) never has them, so they are the same, unset,
 * on every instance of a fleet, though Turbopack lists `__NEXT_DEV_SERVER` among those that
 * Next's own modules read in a cached function's graph (docs/decisions/0032).
 */
export const DEV_SERVER_VARS: readonly string[] = ['__NEXT_DEV_SERVER', 'NEXT_PRIVATE_WORKER']

/**
 * Whether this process is the server `next dev` runs: `next dev` forks it with
 * `NEXT_PRIVATE_WORKER=1` (every 16.x), and 16.4.6 and later also set `__NEXT_DEV_SERVER=1`.
 * `NODE_ENV` is not asked: `next start` keeps a `NODE_ENV=development` its shell exported, and a
 * production server must not leave the fleet over it. A custom server made with
 * `next({ dev: true })` is recognised where its `prepare()` sets `__NEXT_DEV_SERVER` (16.4.6,
 * 16.5.0), not under 16.0.0, which sets neither. A build is never one.
 */
export function isDevServer(env: Env = process.env): boolean {
  if (isBuildPhase(env)) return false
  return env.__NEXT_DEV_SERVER === '1' || env.NEXT_PRIVATE_WORKER === '1'
}

/**
 * Why this process keeps its entries in memory whatever the settings say, or undefined when it
 * uses the Redis it is given. A `next build` worker: nothing it renders would land under a
 * namespace a server reads (docs/decisions/0022). A development server: its entries are made by
 * code being edited, its `.next/BUILD_ID` (when there is one) is a production build's, and a
 * `revalidateTag` in it would reach every deployment on that Redis. The value names the phase
 * in the start line.
 */
export function localOnlyPhase(env: Env = process.env): 'next build' | 'next dev' | undefined {
  if (isBuildPhase(env)) return 'next build'
  if (isDevServer(env)) return 'next dev'
  return undefined
}

/**
 * `node:fs` through `process.getBuiltinModule`, out of sight of Next's build-time tracers, as in
 * next-version.ts (which says why): `readFileSync` of the path a variable names had Turbopack
 * put every file of `dist/` into every route's trace.
 */
const fs = process.getBuiltinModule('node:fs')

/** The contents of the PEM file a variable names, or undefined when it is unset. */
function pemFile(env: Env, name: string): string | undefined {
  const file = env[name]
  if (file === undefined || file === '') return undefined
  try {
    return fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(
      name,
      `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`,
    )
  }
}

/**
 * The connection settings besides the URL (Sentinel, TLS material), from the environment: the
 * part the server and the `fleetcache` CLI share. Throws `ConfigError` naming the variable.
 */
export function transportOptionsFromEnv(env: Env = process.env): TransportOptions {
  const sentinels = (env.FLEETCACHE_REDIS_SENTINELS ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '')
    .map((a) => checkAddress('FLEETCACHE_REDIS_SENTINELS', a))
  const sentinelUsername = env.FLEETCACHE_SENTINEL_USERNAME || undefined
  const sentinelPassword = env.FLEETCACHE_SENTINEL_PASSWORD || undefined
  for (const [name, value] of [
    ['FLEETCACHE_SENTINEL_USERNAME', sentinelUsername],
    ['FLEETCACHE_SENTINEL_PASSWORD', sentinelPassword],
  ] as const) {
    if (value !== undefined && sentinels.length === 0) {
      throw new ConfigError(name, 'is set but FLEETCACHE_REDIS_SENTINELS is not')
    }
  }
  if (sentinelUsername !== undefined && sentinelPassword === undefined) {
    throw new ConfigError('FLEETCACHE_SENTINEL_USERNAME', 'needs FLEETCACHE_SENTINEL_PASSWORD')
  }
  const certSet = Boolean(env.FLEETCACHE_REDIS_CERT_FILE)
  const keySet = Boolean(env.FLEETCACHE_REDIS_KEY_FILE)
  if (certSet !== keySet) {
    throw new ConfigError(
      certSet ? 'FLEETCACHE_REDIS_CERT_FILE' : 'FLEETCACHE_REDIS_KEY_FILE',
      'a TLS client certificate needs both FLEETCACHE_REDIS_CERT_FILE and FLEETCACHE_REDIS_KEY_FILE',
    )
  }
  const ca = pemFile(env, 'FLEETCACHE_REDIS_CA_FILE')
  const cert = pemFile(env, 'FLEETCACHE_REDIS_CERT_FILE')
  const key = pemFile(env, 'FLEETCACHE_REDIS_KEY_FILE')
  const tls: TlsOptions = {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
  }
  return {
    sentinels,
    ...(sentinelUsername === undefined ? {} : { sentinelUsername }),
    ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
    tls: Object.keys(tls).length === 0 ? undefined : tls,
  }
}

/** `deploymentSource` when neither a deployment id nor a build id was found. */
export const NO_DEPLOYMENT_FOUND = 'none found'

/** The build id file a server looks for, resolved (named when it is missing). */
export function buildIdFile(env: Env = process.env): string {
  return resolve(process.cwd(), distDir(env), 'BUILD_ID')
}

/**
 * Why no build id was read from `buildIdFile`, for the warning: the file may be there, empty
 * (a build cut short) or unreadable, and "does not exist" would send the operator looking for
 * a file that does.
 */
export function buildIdFileProblem(env: Env = process.env): string {
  const file = buildIdFile(env)
  try {
    fs.readFileSync(file, 'utf8')
    return `${file} is empty`
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return `${file} does not exist`
    return `${file} cannot be read: ${typeof code === 'string' ? code : (err as Error).message}`
  }
}

/**
 * The running server's deployment id, and where it was found: `FLEETCACHE_DEPLOYMENT_ID`, else
 * `NEXT_DEPLOYMENT_ID`, else the `deploymentId` the build recorded (which Next empties the
 * variable of under `experimental.useSkewCookie`), else the build id in the dist directory;
 * undefined (`none found`, the namespace `default`) when there is none of them.
 */
export function deploymentFromEnv(env: Env = process.env): {
  deploymentId: string | undefined
  deploymentSource: string
} {
  if (env.FLEETCACHE_DEPLOYMENT_ID) {
    return {
      deploymentId: env.FLEETCACHE_DEPLOYMENT_ID,
      deploymentSource: 'FLEETCACHE_DEPLOYMENT_ID',
    }
  }
  if (env.NEXT_DEPLOYMENT_ID) {
    return { deploymentId: env.NEXT_DEPLOYMENT_ID, deploymentSource: 'NEXT_DEPLOYMENT_ID' }
  }
  const recorded = recordedDeploymentId(env)
  if (recorded !== undefined) {
    return { deploymentId: recorded.id, deploymentSource: recorded.source }
  }
  const id = buildId(process.cwd(), env)
  // The file read, resolved: a standalone server.js changes to its own directory first, and
  // its config's `./.next` read as the app's `.next` (another build, or none).
  return {
    deploymentId: id,
    deploymentSource: id ? buildIdFile(env) : NO_DEPLOYMENT_FOUND,
  }
}

/**
 * Options from the environment of the running server (read when the handler module is first
 * loaded, i.e. at server start, never frozen into the build).
 */
export function optionsFromEnv(
  env: Env = process.env,
): FleetcacheOptions & { deploymentSource: string } {
  const urlVar = env.FLEETCACHE_REDIS_URL ? 'FLEETCACHE_REDIS_URL' : 'REDIS_URL'
  const { deploymentId, deploymentSource } = deploymentFromEnv(env)
  const nodes = (env.FLEETCACHE_REDIS_NODES ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '')
  return {
    redisUrl: checkUrl(urlVar, env[urlVar]),
    cluster: booleanFromEnv(env, 'FLEETCACHE_REDIS_CLUSTER'),
    redisNodes: nodes.map((u) => {
      checkUrl('FLEETCACHE_REDIS_NODES', u)
      return u
    }),
    ...transportOptionsFromEnv(env),
    prefix: env.FLEETCACHE_PREFIX || undefined,
    deploymentId,
    maxEntryBytes: numberFromEnv(env, 'FLEETCACHE_MAX_ENTRY_BYTES', 'maxEntryBytes'),
    maxTtlSeconds: numberFromEnv(env, 'FLEETCACHE_MAX_TTL_SECONDS', 'maxTtlSeconds'),
    memoryBytes: nonNegativeNumberFromEnv(env, 'FLEETCACHE_MEMORY_BYTES'),
    defaultTtlSeconds: numberFromEnv(env, 'FLEETCACHE_DEFAULT_TTL_SECONDS', 'defaultTtlSeconds'),
    compressMinBytes: sizeOrOffFromEnv(env, 'FLEETCACHE_COMPRESS_MIN_BYTES'),
    compressLevel: numberFromEnv(env, 'FLEETCACHE_COMPRESS_LEVEL', 'compressLevel'),
    commandTimeoutMs: numberFromEnv(env, 'FLEETCACHE_COMMAND_TIMEOUT_MS', 'commandTimeoutMs'),
    readTimeoutMs: numberFromEnv(env, 'FLEETCACHE_READ_TIMEOUT_MS', 'readTimeoutMs'),
    writeTimeoutMs: numberFromEnv(env, 'FLEETCACHE_WRITE_TIMEOUT_MS', 'writeTimeoutMs'),
    connectTimeoutMs: numberFromEnv(env, 'FLEETCACHE_CONNECT_TIMEOUT_MS', 'connectTimeoutMs'),
    breakerFailures: numberFromEnv(env, 'FLEETCACHE_BREAKER_FAILURES', 'breakerFailures'),
    breakerFailureRate: numberFromEnv(env, 'FLEETCACHE_BREAKER_FAILURE_RATE', 'breakerFailureRate'),
    breakerMinCalls: numberFromEnv(env, 'FLEETCACHE_BREAKER_MIN_CALLS', 'breakerMinCalls'),
    breakerWindowMs: numberFromEnv(env, 'FLEETCACHE_BREAKER_WINDOW_MS', 'breakerWindowMs'),
    breakerOpenMs: numberFromEnv(env, 'FLEETCACHE_BREAKER_OPEN_MS', 'breakerOpenMs'),
    breakerMaxOpenMs: numberFromEnv(env, 'FLEETCACHE_BREAKER_MAX_OPEN_MS', 'breakerMaxOpenMs'),
    outboxCapacity: numberFromEnv(env, 'FLEETCACHE_OUTBOX_CAPACITY', 'outboxCapacity'),
    tagMirrorMaxTags: numberFromEnv(env, 'FLEETCACHE_TAG_MIRROR_MAX_TAGS', 'tagMirrorMaxTags'),
    leases: booleanFromEnv(env, 'FLEETCACHE_LEASES'),
    leaseTtlMs: numberFromEnv(env, 'FLEETCACHE_LEASE_TTL_MS', 'leaseTtlMs'),
    // 0: followers never wait for a holder's write (docs/single-flight.md, "Settings").
    leaseWaitMs: numberFromEnv(env, 'FLEETCACHE_LEASE_WAIT_MS', 'leaseWaitMs'),
    debug: booleanFromEnv(env, 'FLEETCACHE_DEBUG') ?? false,
    tagSync: tagSyncFromEnv(env.FLEETCACHE_TAG_SYNC),
    uniformEnvVars: (env.FLEETCACHE_UNIFORM_ENV_VARS ?? '')
      .split(',')
      .map((n) => n.trim())
      .filter((n) => n !== ''),
    deploymentSource,
  }
}

/** `FLEETCACHE_TAG_SYNC`: `pull` (default) or `push`. */
function tagSyncFromEnv(value: string | undefined): 'pull' | 'push' | undefined {
  if (value === undefined || value === '') return undefined
  if (value === 'pull' || value === 'push') return value
  throw new ConfigError('FLEETCACHE_TAG_SYNC', `must be pull or push, got "${value}"`)
}
