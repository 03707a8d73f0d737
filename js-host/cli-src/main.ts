#!/usr/bin/env node
/**
 * The `fleetcache` command: look into a live Redis, clean up an old deployment, warm a new one.
 * Usage: `fleetcache help`. Exit codes: 0 done, 1 failed, 2 usage error.
 */
// First: the CLI runs on the tools module, handed over before anything loads ../dist/wasm.
import './use-tools'

import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

import { transportOptionsFromEnv } from '../dist/config'
import { docLink } from '../dist/doc-link'
import { describe, printable } from '../dist/log'
import {
  configuredDeploymentIdIn,
  runtimeDeploymentIdIn,
  skewCookieIn,
} from '../dist/next-build-files'
import { checkUrl } from '../dist/option-checks'
import { connectionError } from '../dist/redis-errors'
import { wasm, type Interface } from '../dist/wasm'
import {
  collectStats,
  counted,
  formatInspect,
  inspectJson,
  formatKey,
  formatStats,
  formatTags,
  inspectKey,
  purgeDeployment,
  recentTags,
  type PurgeResult,
} from './commands'
import { connect, Progress, type Conn } from './redis'
import { findBuildDir, seed } from './seed'

/**
 * The `--interface` option: `inc` (the default) is the singular handler and a key segment
 * (`uc-<name>`) is read as in Redis keys; anything else is a handler's `name` (that of
 * `fleetcache/use-cache` is `default`, whatever `cacheHandlers` key Next loads it under).
 */
function cliInterface(value: string | undefined): Interface {
  if (value === undefined || value === 'inc' || value.startsWith('uc-')) {
    return wasm.Interface.parse(value ?? 'inc')
  }
  return wasm.Interface.useCache(value)
}

const USAGE = `fleetcache <command> [options]

Commands:
  stats                         keys and bytes per deployment and interface, tags, leases
  tags [--limit N]              the most recently revalidated tags, each with its last
                                revalidation (default 20)
  inspect <redis-key>           decode one stored entry and judge it against the live tag state
  inspect --cache-key K --deployment D [--interface inc|<handler name>|uc-<name>]
                                (default inc, the singular handler; 'use cache' entries of
                                fleetcache/use-cache, remote and named ones too: default;
                                a handler named inc: uc-inc)
  purge --deployment <id>       delete one deployment's entries, leases and record of builds
                                (SCAN + UNLINK, batched)
        [--dry-run] [--batch N]
  seed <.next dir or app dir>   store the build's prerendered routes for its deployment
        [--deployment <id>]     (default: FLEETCACHE_DEPLOYMENT_ID, NEXT_DEPLOYMENT_ID, the
                                build's next.config deploymentId, BUILD_ID; with
                                useSkewCookie (Next 16.1 on), the same without
                                NEXT_DEPLOYMENT_ID, unless runtimeServerDeploymentId is on too)

Options:
  --redis <url>     Redis URL (default: FLEETCACHE_REDIS_URL, then REDIS_URL); with
                    FLEETCACHE_REDIS_SENTINELS set, its host names the master (as for the server)
  --prefix <p>      key prefix (default: FLEETCACHE_PREFIX, then "fleetcache")
  --max-keys <n>    stop scans after this many keys (default 1000000)
  --json            machine-readable output (inspect: a lifetime without a limit is null)
  --quiet           nothing on stderr but warnings and errors (no progress, timing or
                    namespace line); the result still goes to stdout
  -v, --version     print the package's version and exit

Environment, read as the server reads it: FLEETCACHE_REDIS_SENTINELS, FLEETCACHE_SENTINEL_USERNAME,
FLEETCACHE_SENTINEL_PASSWORD, FLEETCACHE_REDIS_CA_FILE, FLEETCACHE_REDIS_CERT_FILE,
FLEETCACHE_REDIS_KEY_FILE (${docLink('docs/configuration.md')}).
`

class UsageError extends Error {}

const COMMANDS = new Set(['stats', 'tags', 'inspect', 'purge', 'seed'])

/** The installed package's version: cli/main.js sits one level below its package.json. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as {
    version: string
  }
  return pkg.version
}

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback
  // Decimal digits only: Number() read ' 5 ', '0x10', '1e3', '5.0' and '+5' as counts too.
  const n = /^[0-9]+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`--${name} must be a positive integer (decimal digits)`)
  }
  return n
}

/**
 * `--interface` checked as `cliInterface` reads it, before any connection: a value the
 * handlers cannot have was refused by the engine only once connected (exit 1, not 2).
 */
function checkInterface(value: string): void {
  let iface: Interface
  try {
    iface = cliInterface(value)
  } catch {
    throw new UsageError(
      `--interface must be inc, or a handler name or uc-<name> with the name matching [a-z-]{1,32}, got "${printable(value)}"`,
    )
  }
  iface.free()
}

/** The deployment segment as keys spell it (long or unusual ids are hashed by the engine). */
function keyDeployment(prefix: string, id: string): string {
  const engine = new wasm.Engine({ prefix, deployment: id })
  try {
    return engine.deployment
  } finally {
    engine.free()
  }
}

/** The shape of a hashed deployment segment (the engine writes lower-case hex only). */
const HASHED = /^h[0-9a-f]{16}$/

/**
 * The deployment segment `--deployment` names for `purge` and `inspect`: the id as configured
 * (spelled as keys spell it), or a hashed segment (`h` + 16 hex digits) as the namespace line
 * and `stats` print it, taken as is. The engine hashes an id of that shape again, so no
 * configured id keeps it: an operator who knows the deployment only from those lines (an id
 * with a space, a long one) must reach it by them, and one configured in that shape by its
 * own printed form (`hashedShapeHint` names it when the given one finds nothing). Not for
 * `seed`, which writes where a server given the same id reads.
 */
function namedDeployment(prefix: string, given: string): string {
  return HASHED.test(given) ? given : keyDeployment(prefix, given)
}

/**
 * When `--deployment` had the hashed shape and nothing was found under it: the segment a
 * deployment configured with that very id is stored under, which the operator may have meant
 * (the printed form wins, so such an id is reached only by its own printed form). A warning,
 * since a purge that deletes 0 keys otherwise reads as done.
 */
function hashedShapeHint(prefix: string, given: string): void {
  if (!HASHED.test(given)) return
  const stored = keyDeployment(prefix, given)
  process.stderr.write(
    `fleetcache: warning: nothing under ${prefix}:${given}, read as a hashed deployment as stats prints it; a deployment configured with the id ${given} is stored under ${prefix}:${stored}: for that one, pass --deployment ${stored}\n`,
  )
}

/**
 * The deployment a standalone `server.js` of the build in `distDir` takes, whatever
 * `NEXT_DEPLOYMENT_ID` was exported: it starts from the config recorded at build, whose
 * `deploymentId` (`configured`) replaces the variable, or '' and then the build id
 * (docs/configuration.md, "Deployment namespace"). Undefined when the build has no readable
 * `required-server-files.json` (no record to go by) or no build id.
 */
function standaloneNamespace(
  distDir: string,
  configured: string | undefined,
): { id: string; why: string; file: string | undefined } | undefined {
  const record = join(distDir, 'required-server-files.json')
  try {
    JSON.parse(readFileSync(record, 'utf8'))
  } catch {
    return undefined
  }
  if (configured !== undefined) {
    return {
      id: configured,
      why: `replaces NEXT_DEPLOYMENT_ID with the deploymentId the build recorded, ${configured} (${record})`,
      file: undefined,
    }
  }
  const file = join(distDir, 'BUILD_ID')
  const id = readFileSync(file, 'utf8').trim()
  if (id === '') return undefined
  return {
    id,
    why: `empties NEXT_DEPLOYMENT_ID, the build having recorded no deploymentId (${record})`,
    file,
  }
}

/**
 * When `inspect --cache-key` found nothing under a `'use cache'` handler name other than
 * `default` (`remote`, a `withFleetcache` handlers name, or its `uc-` segment): every entry of
 * `fleetcache/use-cache` is under `default`, whatever `cacheHandlers` key Next loads it under,
 * so the key there is named, and whether it holds a value.
 */
async function useCacheNameHint(
  conn: Conn,
  prefix: string,
  deployment: string,
  given: string | undefined,
  cacheKey: string,
): Promise<void> {
  if (given === undefined || given === 'inc' || given === 'default' || given === 'uc-default') {
    return
  }
  const engine = new wasm.Engine({ prefix, deployment })
  let key: string
  try {
    key = engine.entryKey(wasm.Interface.useCache('default'), cacheKey)
    const segment = namedDeployment(prefix, deployment)
    const spelled = `${prefix}:${engine.deployment}:`
    if (segment !== engine.deployment && key.startsWith(spelled)) {
      key = `${prefix}:${segment}:${key.slice(spelled.length)}`
    }
  } finally {
    engine.free()
  }
  const there = Number(await conn.send(['EXISTS', key])) === 1
  process.stderr.write(
    `fleetcache/use-cache stores every 'use cache' entry under default, 'use cache: remote' and withFleetcache's handlers names included: ${there ? `there is one at ${key}` : `nothing at ${key} either`} (--interface default); other names are those given to createUseCacheHandler({ name })\n`,
  )
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      redis: { type: 'string' },
      prefix: { type: 'string' },
      'max-keys': { type: 'string' },
      json: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      limit: { type: 'string' },
      deployment: { type: 'string' },
      'cache-key': { type: 'string' },
      interface: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      batch: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', short: 'v', default: false },
    },
  })
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`)
    return 0
  }
  const [command, ...rest] = positionals
  if (command === 'help' || values.help) {
    process.stdout.write(USAGE)
    return 0
  }
  // A usage error like the others (its line and the usage on stderr, exit 2): stdout carries
  // a command's result only, and asked for nothing, the usage is no result.
  if (command === undefined) throw new UsageError('no command')
  // Before the Redis URL is looked for or a connection opened: a mistyped command is named as
  // such, not reported as a missing URL or a refused connection.
  if (!COMMANDS.has(command)) throw new UsageError(`unknown command "${command}"`)
  // An empty value is no value: `inspect --cache-key ""` read the key of the empty cache key
  // (and printed `no value at ...`, exit 1), `--prefix ""` scanned keys under no prefix. The
  // numbers say so in their own words (positiveInt), the positionals below.
  // Blank (spaces, tabs) too: `purge --deployment ' '` looked for the hashed segment of a blank
  // id, `--cache-key ' '` read a key no handler writes. (`--redis ' '` is no URL: checkUrl says
  // so below; `--prefix` has the server's rule, below.)
  for (const name of ['redis', 'prefix', 'deployment', 'cache-key', 'interface'] as const) {
    const value = values[name]
    if (value === '' || (name !== 'redis' && name !== 'prefix' && value?.trim() === '')) {
      throw new UsageError(`--${name} must not be empty`)
    }
  }
  // The command's own arguments too, for the same reason: a `seed` of a directory without a
  // build was reported as a missing URL, or as a refused connection (exit 1, not 2).
  if (values.interface !== undefined) checkInterface(values.interface)
  const maxKeys = positiveInt('max-keys', values['max-keys'], 1_000_000)
  const limit = positiveInt('limit', values.limit, 20)
  const batch = positiveInt('batch', values.batch, 500)
  if (command === 'purge' && values.deployment === undefined) {
    throw new UsageError('purge needs --deployment <id>')
  }
  if (command === 'inspect') {
    if (values['cache-key'] !== undefined && values.deployment === undefined) {
      throw new UsageError('inspect --cache-key needs --deployment')
    }
    if (values['cache-key'] === undefined && !rest[0]?.trim()) {
      throw new UsageError('inspect needs a Redis key or --cache-key')
    }
  }
  let distDir = ''
  if (command === 'seed') {
    const dir = rest[0]
    if (!dir?.trim()) throw new UsageError('seed needs the .next directory')
    // Every build writes BUILD_ID; without one, say where it was looked for, not ENOENT.
    const found = findBuildDir(dir, process.env)
    if ('problem' in found) throw new UsageError(`seed: ${found.problem}`)
    // Resolved: the lines that name its files (the namespace line's BUILD_ID) name them as a
    // server's start line does.
    distDir = resolve(found.distDir)
  }
  // stdout carries the command's output alone (`--json` is parsed): the runtime `seed` opens
  // logs its start line through console.log, which goes to stderr here like the progress, or
  // nowhere with --quiet. Its warnings and errors (console.warn, console.error) stay.
  console.log = values.quiet ? () => undefined : console.error
  const env = process.env
  const redisUrl = values.redis ?? (env.FLEETCACHE_REDIS_URL || env.REDIS_URL)
  // `next start` also takes REDIS_URL from the app's .env files; this command does not, and
  // someone whose .env sets it needs to hear why it is not found.
  if (!redisUrl) {
    throw new UsageError(
      "no Redis URL: pass --redis, or set REDIS_URL in the CLI's environment (it does not read .env files as next start does)",
    )
  }
  // The server's check and words: node-redis's own refusal of `localhost:6379` ("Protocol -
  // localhost: - is not a valid Redis protocol") does not say what to write instead.
  const urlSource =
    values.redis !== undefined
      ? '--redis'
      : env.FLEETCACHE_REDIS_URL
        ? 'FLEETCACHE_REDIS_URL'
        : 'REDIS_URL'
  try {
    checkUrl(urlSource, redisUrl)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const prefix = values.prefix ?? (env.FLEETCACHE_PREFIX || 'fleetcache')
  // The server's rule (the engine's): `stats --prefix 'my app'` scanned keys no fleetcache
  // process writes and reported none, as if the prefix held nothing.
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(prefix)) {
    throw new UsageError(
      `${values.prefix !== undefined ? '--prefix' : 'FLEETCACHE_PREFIX'} must match [A-Za-z0-9._-]{1,64}, got ${JSON.stringify(prefix)}`,
    )
  }
  const progress = new Progress(values.quiet || values.json)
  const out = (text: string, json: unknown): void => {
    process.stdout.write(values.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`)
  }

  // Sentinels, their credentials and TLS files: the server's variables, read the same way.
  const transport = transportOptionsFromEnv(env)
  const conn = await connect(redisUrl, 5000, false, transport)
  try {
    switch (command) {
      case 'stats': {
        const r = await collectStats(conn, prefix, maxKeys, progress)
        out(formatStats(r), r)
        return 0
      }
      case 'tags': {
        const list = await recentTags(conn, prefix, limit)
        out(formatTags(list), list)
        return 0
      }
      case 'inspect': {
        let key = rest[0]
        const cacheKey = values['cache-key']
        if (cacheKey !== undefined) {
          if (values.deployment === undefined) {
            throw new UsageError('inspect --cache-key needs --deployment')
          }
          const engine = new wasm.Engine({ prefix, deployment: values.deployment })
          try {
            key = engine.entryKey(cliInterface(values.interface), cacheKey)
            // The engine spells the id given; a segment given as printed replaces it.
            const segment = namedDeployment(prefix, values.deployment)
            const spelled = `${prefix}:${engine.deployment}:`
            if (segment !== engine.deployment && key.startsWith(spelled)) {
              key = `${prefix}:${segment}:${key.slice(spelled.length)}`
            }
          } finally {
            engine.free()
          }
        }
        if (key === undefined) throw new UsageError('inspect needs a Redis key or --cache-key')
        const r = await inspectKey(conn, key, prefix)
        if (r === null) {
          process.stderr.write(`no value at ${key}\n`)
          if (cacheKey !== undefined && values.deployment !== undefined) {
            hashedShapeHint(prefix, values.deployment)
            await useCacheNameHint(conn, prefix, values.deployment, values.interface, cacheKey)
          }
          return 1
        }
        if ('kind' in r) out(formatKey(r), r)
        else out(formatInspect(r), inspectJson(r))
        return 0
      }
      case 'purge': {
        if (values.deployment === undefined) throw new UsageError('purge needs --deployment <id>')
        const deployment = namedDeployment(prefix, values.deployment)
        const dryRun = values['dry-run']
        const r = await purgeDeployment(
          conn,
          prefix,
          deployment,
          { maxKeys, batch, dryRun },
          progress,
        )
        progress.done(
          `${dryRun ? 'found' : 'deleted'} ${counted(dryRun ? r.matched : r.deleted, 'key')} of deployment ${deployment}`,
        )
        if (r.matched === 0) hashedShapeHint(prefix, values.deployment)
        out(
          dryRun
            ? `dry run: ${counted(r.matched, 'key')} of deployment ${deployment} would be deleted${
                // Cut: what lies past it (the record of builds among it) is unknown.
                r.matched >= maxKeys
                  ? ', and more: stopped at --max-keys'
                  : purgedKinds(r, `${prefix}:${deployment}:builds`)
              }`
            : `deleted ${counted(r.deleted, 'key')} of deployment ${deployment}${r.matched >= maxKeys ? ' (stopped at --max-keys: run again)' : ''}`,
          { deployment, dryRun, ...r },
        )
        return 0
      }
      case 'seed': {
        // The order a server of this build takes: Next's config load puts an exported
        // NEXT_DEPLOYMENT_ID into the config's deploymentId, and the server then exports that.
        const configured = configuredDeploymentIdIn(distDir)
        // Unless the build set useSkewCookie (and was made by 16.1.0 or later): its server then
        // empties NEXT_DEPLOYMENT_ID, and the handlers take the recorded deploymentId instead
        // (the build id is the same in every build that sets one). With
        // runtimeServerDeploymentId, every server of the build takes the variable as it is.
        const runtimeId = runtimeDeploymentIdIn(distDir)
        const skewCookie = skewCookieIn(distDir) && !runtimeId
        // With where it came from, for the namespace line, as the handlers' start line has it.
        const [deploymentId, deploymentSource]: [string, string] =
          values.deployment !== undefined
            ? [values.deployment, '--deployment']
            : env.FLEETCACHE_DEPLOYMENT_ID
              ? [env.FLEETCACHE_DEPLOYMENT_ID, 'FLEETCACHE_DEPLOYMENT_ID']
              : env.NEXT_DEPLOYMENT_ID && !skewCookie
                ? [env.NEXT_DEPLOYMENT_ID, 'NEXT_DEPLOYMENT_ID']
                : configured !== undefined
                  ? [configured, `deploymentId in ${join(distDir, 'required-server-files.json')}`]
                  : [
                      readFileSync(join(distDir, 'BUILD_ID'), 'utf8').trim(),
                      join(distDir, 'BUILD_ID'),
                    ]
        // The variable it was given and that decided nothing, said once (it was silently left
        // out): the servers of this build never see it, and which namespace they read instead.
        const ignored = env.NEXT_DEPLOYMENT_ID
        if (
          skewCookie &&
          ignored &&
          ignored !== deploymentId &&
          values.deployment === undefined &&
          !env.FLEETCACHE_DEPLOYMENT_ID
        ) {
          process.stderr.write(
            `fleetcache: note: NEXT_DEPLOYMENT_ID (${ignored}) ignored: this build sets experimental.useSkewCookie, ` +
              `so its servers (Next 16.1 on) empty NEXT_DEPLOYMENT_ID before fleetcache loads and read ` +
              `deployment ${deploymentId} (${deploymentSource}); seeding namespace ${prefix}:${keyDeployment(prefix, deploymentId)}\n`,
          )
        }
        const standalone = runtimeId ? undefined : standaloneNamespace(distDir, configured)
        if (deploymentSource === 'NEXT_DEPLOYMENT_ID' && standalone !== undefined) {
          // Which server runs the build is unknown here: the variable is taken as `next start`
          // takes it, and what a standalone server.js would read instead is said.
          if (standalone.id !== deploymentId) {
            const ns = (id: string): string => `${prefix}:${keyDeployment(prefix, id)}`
            process.stderr.write(
              `fleetcache: warning: seeding namespace ${ns(deploymentId)} (deployment ${deploymentId} from NEXT_DEPLOYMENT_ID, as next start of this build reads it); a standalone server.js of this build ${standalone.why}, and reads namespace ${ns(standalone.id)}${standalone.file === undefined ? '' : ` (${standalone.file})`}: for a standalone fleet, seed with --deployment ${standalone.id}, or without NEXT_DEPLOYMENT_ID\n`,
            )
          }
        }
        const r = await seed(
          distDir,
          { redisUrl, prefix, deploymentId, cluster: conn.cluster === true, ...transport },
          conn,
          progress,
          deploymentSource,
        )
        progress.done(`seeded ${counted(r.written, 'route')}`)
        const lines = [
          `seeded ${counted(r.written, 'prerendered route')} for deployment ${keyDeployment(prefix, deploymentId)}`,
          ...r.outdated.map((x) => `  left out (a tag was revalidated after the build): ${x}`),
          ...r.kept.map(
            (x) => `  kept (Redis holds an entry as new as the build's or newer): ${x}`,
          ),
          ...r.expired.map(
            (x) => `  left out (its expire time, counted from the build, is over): ${x}`,
          ),
          ...r.skipped.map((x) => `  skipped: ${x}`),
          ...r.failed.map((x) => `  FAILED: ${x}`),
        ]
        out(lines.join('\n'), r)
        return r.failed.length > 0 ? 1 : 0
      }
      default:
        throw new UsageError(`unknown command "${command}"`)
    }
  } finally {
    await conn.close().catch(() => undefined)
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    if (
      err instanceof UsageError ||
      (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      process.stderr.write(`fleetcache: ${(err as Error).message}\n\n${USAGE}`)
      process.exitCode = 2
    } else {
      // One line, with what to set for TLS errors (and the ACL hint, from describe()).
      process.stderr.write(`fleetcache: ${describe(new Error(connectionError(err)))}\n`)
      process.exitCode = 1
    }
  },
)

/**
 * What a dry run of `purge` found, for its line: the record of builds named by its key only
 * when it was found, nothing when no key was.
 */
function purgedKinds(r: PurgeResult, record: string): string {
  if (r.matched === 0) return ''
  if (!r.buildsRecord) return ' (its entries and leases)'
  return r.matched === 1
    ? ` (its record of builds, ${record})`
    : ` (its entries, leases and record of builds, ${record})`
}
