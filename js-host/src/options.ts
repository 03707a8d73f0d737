/**
 * The vocabulary of fleetcache's configuration: the options a user gives, what the engine and
 * the transport receive once they are resolved, and the error an invalid one raises.
 */
import type { NextRelease } from './next-release'

/** Options accepted by `createUseCacheHandler` (and, later, the other handlers). */
export interface FleetcacheOptions {
  /** `redis://` or `rediss://` URL. Without one, an in-process store is used (one process only). */
  redisUrl?: string | undefined
  /**
   * Redis Cluster: `redisUrl` (and `redisNodes`) are seeds for topology discovery, and each
   * command goes to its key's master. Default false (implied by `redisNodes`).
   */
  cluster?: boolean | undefined
  /**
   * Cluster seed URLs (`redis://` or `rediss://`); implies `cluster`. `redisUrl` may be left out.
   */
  redisNodes?: readonly string[] | undefined
  /**
   * Redis Sentinel: `host:port` of the sentinels. `redisUrl`'s host is then the name of the
   * monitored master (`redis://user:password@mymaster`), its user, password, database and
   * `rediss:` apply to the master.
   */
  sentinels?: readonly string[] | undefined
  /** User name on the sentinels themselves (an ACL user of theirs); needs `sentinelPassword`. */
  sentinelUsername?: string | undefined
  /**
   * Password of the sentinels themselves (their `requirepass`, or `sentinelUsername`'s). The
   * master's password goes in `redisUrl`.
   */
  sentinelPassword?: string | undefined
  /**
   * TLS for `rediss://`: `ca` is the PEM CA certificate(s) to trust instead of Node's bundle;
   * `cert` and `key` (both or neither, PEM) are the client certificate and its private key, for
   * a Redis that requires one (`tls-auth-clients yes`).
   */
  tls?: TlsOptions | undefined
  /**
   * First segment of every Redis key; `[A-Za-z0-9._-]{1,64}`. Default: the core's (`defaults()`).
   */
  prefix?: string | undefined
  /**
   * Entries of other deployments are never read. Default: the running server's, as the handler
   * modules choose it (`FLEETCACHE_DEPLOYMENT_ID`, `NEXT_DEPLOYMENT_ID`, else the build id), also
   * when the other options are given in code, and when this is `''` (an empty id is none).
   */
  deploymentId?: string | undefined
  /**
   * Largest entry stored, in bytes (larger ones are logged and skipped). Default: the core's
   * (`defaults()`).
   */
  maxEntryBytes?: number | undefined
  /**
   * Upper bound on any entry's lifetime in Redis, in seconds. Default: the core's (`defaults()`).
   */
  maxTtlSeconds?: number | undefined
  /** Byte budget of the in-process store; 0 turns it off. Default: the core's (`defaults()`). */
  memoryBytes?: number | undefined
  /**
   * Entries whose payload is at least this many bytes are stored compressed in Redis
   * (https://github.com/fleetcache/fleetcache/blob/main/docs/configuration.md, "Compression"); `false` or 0 stores every entry plain. Entries
   * stored compressed are read whatever this says. Default: the core's (`defaults()`).
   */
  compressMinBytes?: number | false | undefined
  /**
   * Compression level, 1 (fastest) to 9 (smallest). Default: the core's (`defaults()`).
   */
  compressLevel?: number | undefined
  /**
   * Lifetime in Redis of singular-handler entries with neither `expire` nor a `revalidate`
   * limit (`revalidate: false`), in seconds, capped by `maxTtlSeconds`. Default: the core's
   * (`defaults()`).
   */
  defaultTtlSeconds?: number | undefined
  /** Budget of one Redis read (`GET`, tag refresh), in ms. Default: the core's (`defaults()`). */
  readTimeoutMs?: number | undefined
  /** Budget of one Redis write (`SET`, tag update), in ms. Default: the core's (`defaults()`). */
  writeTimeoutMs?: number | undefined
  /** Both budgets at once (read and write settings take precedence). */
  commandTimeoutMs?: number | undefined
  /**
   * How long a command may wait for the connection to Redis, in ms. Default: the core's
   * (`defaults()`).
   */
  connectTimeoutMs?: number | undefined
  /**
   * Consecutive failed Redis commands that open the circuit breaker. Default: the core's
   * (`defaults()`).
   */
  breakerFailures?: number | undefined
  /**
   * Failure rate (0, 1] over the breaker window that opens the breaker. Default: the core's
   * (`defaults()`).
   */
  breakerFailureRate?: number | undefined
  /** Results in the window before the failure rate counts. Default: the core's (`defaults()`). */
  breakerMinCalls?: number | undefined
  /** The breaker's failure-rate window, in ms. Default: the core's (`defaults()`). */
  breakerWindowMs?: number | undefined
  /**
   * How long the breaker stays open before one probe, in ms. Default: the core's (`defaults()`).
   */
  breakerOpenMs?: number | undefined
  /** Longest open time after failed probes, in ms. Default: the core's (`defaults()`). */
  breakerMaxOpenMs?: number | undefined
  /**
   * Revalidations kept while Redis is unreachable (oldest dropped and logged). Default: the core's
   * (`defaults()`).
   */
  outboxCapacity?: number | undefined
  /**
   * Most tag records each process keeps exactly in its copy of the tag state; past it the least
   * recently revalidated are folded, which bounds that copy's memory at the cost of extra
   * staleness for older entries (https://github.com/fleetcache/fleetcache/blob/main/docs/operating.md, "Tag state in each process"). Default: the
   * core's (`defaults()`).
   */
  tagMirrorMaxTags?: number | undefined
  /** One log line per cache decision. Default off. */
  debug?: boolean | undefined
  /**
   * Environment variables known to have the same value (or, for the ones Next keys by being
   * set, the same state) on every instance. A server whose durable `'use cache'` keys carry
   * environment variables warns once at start naming them (https://github.com/fleetcache/fleetcache/blob/main/docs/configuration.md, "Deployment
   * namespace"); the ones listed here are left out of that warning, which is not printed when
   * none is left. For an app that chose `experimental.durableUseCacheEntries` deliberately.
   * Default none.
   */
  uniformEnvVars?: readonly string[] | undefined
  /**
   * How this process follows other instances' revalidations (https://github.com/fleetcache/fleetcache/blob/main/docs/failures.md, "Freshness").
   * `'pull'` (default): every request pulls the changes, so it sees every revalidation that
   * resolved before it started. `'push'`: tag updates announce themselves on a sharded
   * pub/sub channel (Redis 7.0+, Valkey; every instance must then run with `'push'` or a
   * release that knows it), and a request pulls only while the announcements cannot be
   * trusted; a revalidation may then take up to the announcement delay to reach a request,
   * and never longer than one second. On Redis Cluster the subscription follows the master
   * of the channel's slot, through Sentinel the master; pages are read from Redis on every
   * request on a cluster.
   */
  tagSync?: 'pull' | 'push' | undefined
  /**
   * One regeneration per key across the fleet: a stale or missing entry is regenerated by the
   * instance holding its lease while the others serve stale or wait (https://github.com/fleetcache/fleetcache/blob/main/docs/single-flight.md).
   * Default: the core's (`defaults()`).
   */
  leases?: boolean | undefined
  /**
   * Lifetime of a regeneration lease, in ms: the longest a crashed holder delays others. Default:
   * the core's (`defaults()`).
   */
  leaseTtlMs?: number | undefined
  /**
   * How long a request waits on a miss for another instance's regeneration, in ms. Default: the
   * core's (`defaults()`).
   */
  leaseWaitMs?: number | undefined
}

/** PEM text or bytes of TLS material. */
export interface TlsOptions {
  ca?: string | Buffer | undefined
  cert?: string | Buffer | undefined
  key?: string | Buffer | undefined
}

/** Configuration passed to the wasm engine (field names are the core's). */
export interface EngineConfig {
  deployment: string
  /** Every setting below that is absent takes the core's default (`defaults()`). */
  prefix?: string
  maxEntryBytes?: number
  maxTtlSeconds?: number
  memoryBytes?: number
  defaultTtlSeconds?: number
  /** Compression of stored entries: 0 off. */
  compressMinBytes?: number
  compressLevel?: number
  /** Failure-handling settings. */
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
  tagMirrorMaxTags?: number
  /** Single flight. */
  leases?: boolean
  leaseTtlMs?: number
  leaseWaitMs?: number
  /**
   * The Next.js release serving the handlers (read from `next/package.json` when the runtime
   * starts, js-host/src/next-release.ts); absent: judged like the newest release.
   */
  nextRelease?: NextRelease
  /**
   * The build has `experimental.durableUseCacheEntries` on (read at start,
   * `durableUseCacheEntries`): `'use cache'` entries are stored under the Next release instead
   * of the deployment.
   */
  durableUseCache?: boolean
  /**
   * Debug lines are printed (`debug`): the read machines write theirs only then, so a read
   * with debugging off builds none.
   */
  debug?: boolean
}

/** Fully resolved options. */
export interface ResolvedOptions {
  redisUrl: string | undefined
  /** Redis Cluster mode; `redisUrl` is then the first seed. */
  cluster: boolean
  /** Further cluster seeds. */
  redisSeeds: string[]
  /** Sentinels (`host:port`); `redisUrl`'s host names the master. Empty: no Sentinel. */
  sentinels: string[]
  /** Credentials of the sentinels themselves (not of the master). */
  sentinelUsername: string | undefined
  sentinelPassword: string | undefined
  /** PEM CA for TLS, if given. */
  tlsCa: string | undefined
  /** PEM client certificate and key for TLS (both or neither). */
  tlsCert: string | undefined
  tlsKey: string | undefined
  /** The settings given, for the engine; it fills in the rest with the core's defaults. */
  engine: EngineConfig
  debug: boolean
  /** How other instances' revalidations are followed. */
  tagSync: 'pull' | 'push'
  /** Left out of the warning about durable `'use cache'` keys (`uniformEnvVars`). */
  uniformEnvVars: string[]
  /** Where the deployment id came from, for the start-up line. */
  deploymentSource: string
  /**
   * The options were given in code: the environment was not read (but for the deployment id),
   * so a `REDIS_URL` there did not apply.
   */
  givenInCode: boolean
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

/** How to reach Redis, from the environment. */
export type TransportOptions = Pick<
  FleetcacheOptions,
  'sentinels' | 'sentinelUsername' | 'sentinelPassword' | 'tls'
>
