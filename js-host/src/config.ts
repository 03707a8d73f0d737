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
  /**
   * Lifetime in Redis of singular-handler entries with neither `expire` nor a `revalidate`
   * limit (`revalidate: false`), in seconds, capped by `maxTtlSeconds`. Default 1 year.
   */
  defaultTtlSeconds?: number | undefined
  /** Budget of one Redis read (`GET`, tag refresh), in ms. Default 300. */
  readTimeoutMs?: number | undefined
  /** Budget of one Redis write (`SET`, tag update), in ms. Default 1000. */
  writeTimeoutMs?: number | undefined
  /** Both budgets at once (read and write settings take precedence). */
  commandTimeoutMs?: number | undefined
  /** How long a command may wait for the connection to Redis, in ms. Default 1000. */
  connectTimeoutMs?: number | undefined
  /** Consecutive failed Redis commands that open the circuit breaker. Default 5. */
  breakerFailures?: number | undefined
  /** Failure rate (0, 1] over the breaker window that opens the breaker. Default 0.5. */
  breakerFailureRate?: number | undefined
  /** Results in the window before the failure rate counts. Default 20. */
  breakerMinCalls?: number | undefined
  /** The breaker's failure-rate window, in ms. Default 10000. */
  breakerWindowMs?: number | undefined
  /** How long the breaker stays open before one probe, in ms. Default 1000. */
  breakerOpenMs?: number | undefined
  /** Longest open time after failed probes, in ms. Default 5000. */
  breakerMaxOpenMs?: number | undefined
  /** Revalidations kept while Redis is unreachable (oldest dropped and logged). Default 1000. */
  outboxCapacity?: number | undefined
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
  defaultTtlSeconds: number
  /** Failure-handling settings; absent ones take the core's defaults. */
  readTimeoutMs?: number
  writeTimeoutMs?: number
  connectTimeoutMs?: number
  breakerFailures?: number
  breakerFailureRate?: number
  breakerMinCalls?: number
  breakerWindowMs?: number
  breakerOpenMs?: number
  breakerMaxOpenMs?: number
  outboxCapacity?: number
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
    defaultTtlSeconds: numberFromEnv(env, 'FLEETCACHE_DEFAULT_TTL_SECONDS'),
    commandTimeoutMs: numberFromEnv(env, 'FLEETCACHE_COMMAND_TIMEOUT_MS'),
    readTimeoutMs: numberFromEnv(env, 'FLEETCACHE_READ_TIMEOUT_MS'),
    writeTimeoutMs: numberFromEnv(env, 'FLEETCACHE_WRITE_TIMEOUT_MS'),
    connectTimeoutMs: numberFromEnv(env, 'FLEETCACHE_CONNECT_TIMEOUT_MS'),
    breakerFailures: numberFromEnv(env, 'FLEETCACHE_BREAKER_FAILURES'),
    breakerFailureRate: numberFromEnv(env, 'FLEETCACHE_BREAKER_FAILURE_RATE'),
    breakerMinCalls: numberFromEnv(env, 'FLEETCACHE_BREAKER_MIN_CALLS'),
    breakerWindowMs: numberFromEnv(env, 'FLEETCACHE_BREAKER_WINDOW_MS'),
    breakerOpenMs: numberFromEnv(env, 'FLEETCACHE_BREAKER_OPEN_MS'),
    breakerMaxOpenMs: numberFromEnv(env, 'FLEETCACHE_BREAKER_MAX_OPEN_MS'),
    outboxCapacity: numberFromEnv(env, 'FLEETCACHE_OUTBOX_CAPACITY'),
    debug: env.FLEETCACHE_DEBUG === '1' || env.FLEETCACHE_DEBUG === 'true',
    deploymentSource,
  }
}

const FAILURE_SETTINGS = [
  'readTimeoutMs',
  'writeTimeoutMs',
  'connectTimeoutMs',
  'breakerFailures',
  'breakerFailureRate',
  'breakerMinCalls',
  'breakerWindowMs',
  'breakerOpenMs',
  'breakerMaxOpenMs',
  'outboxCapacity',
] as const

/**
 * The failure-handling settings that were given, for the engine (which owns their defaults and
 * upper bounds). Non-positive values are refused here with the option's name; `commandTimeoutMs`
 * fills in the read and write budgets that are not given.
 */
function failureSettings(options: FleetcacheOptions): Partial<EngineConfig> {
  const out: Partial<EngineConfig> = {}
  const command = options.commandTimeoutMs
  const given: FleetcacheOptions = {
    ...options,
    readTimeoutMs: options.readTimeoutMs ?? command,
    writeTimeoutMs: options.writeTimeoutMs ?? command,
  }
  for (const name of FAILURE_SETTINGS) {
    const value = given[name]
    if (value !== undefined) out[name] = positive(name, value, value)
  }
  return out
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
      defaultTtlSeconds: positive('defaultTtlSeconds', options.defaultTtlSeconds, 365 * 24 * 3600),
      ...failureSettings(options),
    },
    commandTimeoutMs: positive('commandTimeoutMs', options.commandTimeoutMs, 1000),
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 1000),
    debug: options.debug ?? false,
    deploymentSource,
  }
}
