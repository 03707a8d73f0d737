/**
 * Checks and completes the options a handler was given (`resolveOptions`): what the engine
 * receives is only the settings given, since the core owns every default and bound. The
 * configuration's other parts are re-exported from here, the package's `config` module.
 */
import { checkAddress, checkUrl, nonNegative, ranged } from './option-checks'
import { deploymentFromEnv } from './env-options'
import {
  ConfigError,
  type EngineConfig,
  type FleetcacheOptions,
  type ResolvedOptions,
} from './options'

export { ConfigError } from './options'
export type {
  EngineConfig,
  FleetcacheOptions,
  ResolvedOptions,
  TlsOptions,
  TransportOptions,
} from './options'
export {
  DEV_SERVER_VARS,
  isBuildPhase,
  isDevServer,
  localOnlyPhase,
  optionsFromEnv,
  transportOptionsFromEnv,
} from './env-options'
export {
  durableUseCacheEntries,
  durableUseCacheEntriesIn,
  useCacheKeyEnvVars,
} from './next-build-files'

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
 * upper bounds). Values out of their range are refused here with the option's name and the
 * range (`RANGES`, the core's bounds); `commandTimeoutMs`
 * fills in the read and write budgets that are not given.
 */
function failureSettings(options: FleetcacheOptions): Partial<EngineConfig> {
  const out: Partial<EngineConfig> = {}
  const command = options.commandTimeoutMs
  if (command !== undefined) ranged('commandTimeoutMs', command)
  const given: FleetcacheOptions = {
    ...options,
    readTimeoutMs: options.readTimeoutMs ?? command,
    writeTimeoutMs: options.writeTimeoutMs ?? command,
  }
  for (const name of FAILURE_SETTINGS) {
    const value = given[name]
    if (value !== undefined) out[name] = ranged(name, value)
  }
  return out
}

/** The single-flight settings that were given (the engine owns defaults and bounds). */
function leaseSettings(options: FleetcacheOptions): Partial<EngineConfig> {
  const out: Partial<EngineConfig> = {}
  if (options.leases !== undefined) out.leases = options.leases
  if (options.leaseTtlMs !== undefined) {
    out.leaseTtlMs = ranged('leaseTtlMs', options.leaseTtlMs)
  }
  // 0: followers never wait for a holder's write.
  if (options.leaseWaitMs !== undefined) {
    out.leaseWaitMs = ranged('leaseWaitMs', options.leaseWaitMs)
  }
  return out
}

/**
 * The key and size settings that were given (the engine owns their defaults and bounds);
 * values out of their range are refused here with the option's name and the range.
 */
function storageSettings(options: FleetcacheOptions): Partial<EngineConfig> {
  const out: Partial<EngineConfig> = {}
  if (options.prefix !== undefined) out.prefix = options.prefix
  for (const name of [
    'maxEntryBytes',
    'maxTtlSeconds',
    'defaultTtlSeconds',
    'tagMirrorMaxTags',
  ] as const) {
    const value = options[name]
    if (value !== undefined) out[name] = ranged(name, value)
  }
  // 0 turns the in-process tier off (Redis only); without Redis, nothing is cached.
  const memory = options.memoryBytes
  if (memory !== undefined) out.memoryBytes = nonNegative('memoryBytes', memory)
  // false or 0 stores every entry plain; the level's bounds are the engine's.
  const min = options.compressMinBytes
  if (min !== undefined)
    out.compressMinBytes = min === false ? 0 : nonNegative('compressMinBytes', min, ' or false')
  if (options.compressLevel !== undefined) {
    out.compressLevel = ranged('compressLevel', options.compressLevel)
  }
  return out
}

function pem(value: string | Buffer | undefined): string | undefined {
  return value === undefined ? undefined : Buffer.isBuffer(value) ? value.toString('utf8') : value
}

/**
 * Checks and completes options; throws `ConfigError` naming the bad setting. Options given in
 * code (`deploymentSource` left as `options`) replace the environment, but for the deployment id:
 * without one, it is the running server's, as the handler modules choose it
 * (`deploymentFromEnv`), so that two builds never share a namespace unless told to. An empty
 * `deploymentId` is none, as an empty `FLEETCACHE_DEPLOYMENT_ID` is: taken as given, it was the
 * namespace `default`, which every process without an id shares, and nothing said so.
 */
export function resolveOptions(given: FleetcacheOptions, givenSource = 'options'): ResolvedOptions {
  let options = given
  let deploymentSource = givenSource
  if (givenSource === 'options' && (given.deploymentId ?? '') === '') {
    const found = deploymentFromEnv()
    options = { ...given, deploymentId: found.deploymentId }
    deploymentSource = found.deploymentSource
  }
  const nodes = (options.redisNodes ?? []).map((u) => {
    const checked = checkUrl('redisNodes', u)
    if (checked === undefined) throw new ConfigError('redisNodes', 'contains an empty URL')
    return checked
  })
  const url = checkUrl('redisUrl', options.redisUrl)
  const seeds = url === undefined ? nodes : [url, ...nodes]
  const tls = options.tls
  const sentinels = (options.sentinels ?? []).map((a) => checkAddress('sentinels', a))
  if ((tls?.cert === undefined) !== (tls?.key === undefined)) {
    throw new ConfigError('tls', 'a client certificate needs both `cert` and `key`')
  }
  if (sentinels.length === 0) {
    if (options.sentinelPassword !== undefined) {
      throw new ConfigError('sentinelPassword', 'is set without `sentinels`')
    }
    if (options.sentinelUsername !== undefined) {
      throw new ConfigError('sentinelUsername', 'is set without `sentinels`')
    }
  }
  if (options.sentinelUsername !== undefined && options.sentinelPassword === undefined) {
    throw new ConfigError('sentinelUsername', 'needs `sentinelPassword`')
  }
  if (sentinels.length > 0 && (options.cluster === true || nodes.length > 0)) {
    throw new ConfigError('sentinels', 'Sentinel and Redis Cluster cannot be combined')
  }
  if (sentinels.length > 0 && url === undefined) {
    throw new ConfigError(
      'sentinels',
      'needs a Redis URL naming the master, for example redis://user:password@mymaster',
    )
  }
  return {
    redisUrl: seeds[0],
    cluster: options.cluster === true || nodes.length > 0,
    redisSeeds: seeds.slice(1),
    sentinels,
    sentinelUsername: options.sentinelUsername,
    sentinelPassword: options.sentinelPassword,
    tlsCa: pem(tls?.ca),
    tlsCert: pem(tls?.cert),
    tlsKey: pem(tls?.key),
    engine: {
      deployment: options.deploymentId ?? '',
      ...storageSettings(options),
      ...failureSettings(options),
      ...leaseSettings(options),
    },
    debug: options.debug ?? false,
    tagSync: tagSync(options.tagSync),
    uniformEnvVars: uniformEnvVars(options.uniformEnvVars),
    deploymentSource,
    givenInCode: givenSource === 'options',
  }
}

function tagSync(given: unknown): 'pull' | 'push' {
  if (given === undefined || given === 'pull' || given === 'push') return given ?? 'pull'
  const shown = typeof given === 'string' ? `'${given}'` : typeof given
  throw new ConfigError('tagSync', `must be 'pull' or 'push', got ${shown}`)
}

/** `uniformEnvVars` as given in code: names of environment variables, in any order. */
function uniformEnvVars(given: unknown): string[] {
  if (given === undefined) return []
  if (!Array.isArray(given) || !given.every((n) => typeof n === 'string' && n !== '')) {
    throw new ConfigError('uniformEnvVars', 'must be an array of environment variable names')
  }
  return [...(given as string[])]
}
