import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/** Options accepted by `createUseCacheHandler` (and, later, the other handlers). */
export interface FleetcacheOptions {
  /** `redis://` or `rediss://` URL. Without one, an in-process store is used (one process only). */
  redisUrl?: string | undefined
  /** First segment of every Redis key; `[A-Za-z0-9._-]{1,64}`. Default `fleetcache`. */
  prefix?: string | undefined
  /** Entries of other deployments are never read. Default: deployment id, else build id. */
  deploymentId?: string | undefined
  /** Largest entry stored, in bytes (larger ones are logged and skipped). Default 8 MiB. */
  maxEntryBytes?: number | undefined
  /** Upper bound on any entry's lifetime in Redis, in seconds. Default 30 days. */
  maxTtlSeconds?: number | undefined
  /** Byte budget of the in-process store. Default 50 MiB. */
  memoryBytes?: number | undefined
  /** Budget for one Redis command, in ms. Default 500. */
  commandTimeoutMs?: number | undefined
  /** Budget for connecting to Redis, in ms. Default 2000. */
  connectTimeoutMs?: number | undefined
  /** One log line per cache decision. Default off. */
  debug?: boolean | undefined
}

/** Configuration passed to the wasm engine (field names are the core's). */
export interface EngineConfig {
  prefix: string
  deployment: string
  maxEntryBytes: number
  maxTtlSeconds: number
  memoryBytes: number
}

/** Fully resolved options. */
export interface ResolvedOptions {
  redisUrl: string | undefined
  engine: EngineConfig
  commandTimeoutMs: number
  connectTimeoutMs: number
  debug: boolean
  /** Where the deployment id came from, for the start-up line. */
  deploymentSource: string
}

/** An invalid setting; `variable` names the option or environment variable. */
export class ConfigError extends Error {
  readonly code = 'ERR_FLEETCACHE_CONFIG'
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`)
    this.name = 'ConfigError'
  }
}

type Env = Record<string, string | undefined>

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0) {
    throw new ConfigError(name, `must be a positive number, got ${String(value)}`)
  }
  return value
}

function numberFromEnv(env: Env, name: string): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) {
    throw new ConfigError(name, `must be a positive number, got "${raw}"`)
  }
  return n
}

function checkUrl(name: string, url: string | undefined): string | undefined {
  if (url === undefined || url === '') return undefined
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError(name, 'is not a valid URL')
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigError(name, `must start with redis:// or rediss://, got ${parsed.protocol}//`)
  }
  return url
}

function buildId(cwd: string): string | undefined {
  try {
    return readFileSync(join(cwd, '.next', 'BUILD_ID'), 'utf8').trim() || undefined
  } catch {
    return undefined
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
  let deploymentId = env.FLEETCACHE_DEPLOYMENT_ID
  let deploymentSource = 'FLEETCACHE_DEPLOYMENT_ID'
  if (!deploymentId) {
    deploymentId = env.NEXT_DEPLOYMENT_ID
    deploymentSource = 'NEXT_DEPLOYMENT_ID'
  }
  if (!deploymentId) {
    deploymentId = buildId(process.cwd())
    deploymentSource = '.next/BUILD_ID'
  }
  if (!deploymentId) deploymentSource = 'none found'
  return {
    redisUrl: checkUrl(urlVar, env[urlVar]),
    prefix: env.FLEETCACHE_PREFIX || undefined,
    deploymentId,
    maxEntryBytes: numberFromEnv(env, 'FLEETCACHE_MAX_ENTRY_BYTES'),
    maxTtlSeconds: numberFromEnv(env, 'FLEETCACHE_MAX_TTL_SECONDS'),
    memoryBytes: numberFromEnv(env, 'FLEETCACHE_MEMORY_BYTES'),
    commandTimeoutMs: numberFromEnv(env, 'FLEETCACHE_COMMAND_TIMEOUT_MS'),
    connectTimeoutMs: numberFromEnv(env, 'FLEETCACHE_CONNECT_TIMEOUT_MS'),
    debug: env.FLEETCACHE_DEBUG === '1' || env.FLEETCACHE_DEBUG === 'true',
    deploymentSource,
  }
}

/** Checks and completes options; throws `ConfigError` naming the bad setting. */
export function resolveOptions(
  options: FleetcacheOptions,
  deploymentSource = 'options',
): ResolvedOptions {
  return {
    redisUrl: checkUrl('redisUrl', options.redisUrl),
    engine: {
      prefix: options.prefix ?? 'fleetcache',
      deployment: options.deploymentId ?? '',
      maxEntryBytes: positive('maxEntryBytes', options.maxEntryBytes, 8 * 1024 * 1024),
      maxTtlSeconds: positive('maxTtlSeconds', options.maxTtlSeconds, 30 * 24 * 3600),
      memoryBytes: positive('memoryBytes', options.memoryBytes, 50 * 1024 * 1024),
    },
    commandTimeoutMs: positive('commandTimeoutMs', options.commandTimeoutMs, 500),
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 2000),
    debug: options.debug ?? false,
    deploymentSource,
  }
}
