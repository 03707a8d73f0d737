/**
 * What `next build` left for the server: the build output directory, the build id and the
 * configuration it recorded. Read from disk (or a standalone server's environment) at start.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/** Environment variables, as `process.env` holds them. */
export type Env = Record<string, string | undefined>

/**
 * The build output directory of the running app: `.next`, or the `distDir` a standalone
 * server.js announces (it puts the whole config in `__NEXT_PRIVATE_STANDALONE_CONFIG`).
 */
export function distDir(env: Env): string {
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
 * Whether the build being served has Next's `experimental.durableUseCacheEntries` on: read from
 * the configuration a standalone server announces, else from `<distDir>/required-server-files.json`
 * (where `next build` records it). False when neither can be read.
 */
export function durableUseCacheEntries(
  env: Env = process.env,
  cwd: string = process.cwd(),
): boolean {
  const durable = (config: unknown): boolean =>
    (config as { experimental?: { durableUseCacheEntries?: unknown } } | null)?.experimental
      ?.durableUseCacheEntries === true
  try {
    const standalone = env.__NEXT_PRIVATE_STANDALONE_CONFIG
    if (standalone) return durable(JSON.parse(standalone))
    const file = join(cwd, distDir(env), 'required-server-files.json')
    return durable((JSON.parse(readFileSync(file, 'utf8')) as { config?: unknown }).config)
  } catch {
    return false
  }
}

export function buildId(cwd: string, env: Env): string | undefined {
  try {
    return readFileSync(join(cwd, distDir(env), 'BUILD_ID'), 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}
