/** Checks of single settings, shared by the options and the environment readers. */
import { ConfigError } from './options'

/** `value` when it is a finite number above 0; else a `ConfigError` naming the setting. */
export function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ConfigError(name, `must be a positive number, got ${String(value)}`)
  }
  return value
}

/**
 * As `positive`, for a setting where 0 has a meaning of its own (it turns something off), and
 * so says the message: "positive" would tell the user that 0 is refused. `or`: what else the
 * setting takes, for the message (`false`).
 */
export function nonNegative(name: string, value: number, or = ''): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new ConfigError(name, `must be a number >= 0${or}, got ${String(value)}`)
  }
  return value
}

/** A URL as it may appear in a log line: the password (and a user name with one) masked. */
function shownUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/\s]*@/i, (_, scheme: string | undefined) => {
    return `${scheme ?? ''}***@`
  })
}

/**
 * `url` when it is a `redis://` or `rediss://` URL, undefined when empty; a `ConfigError` naming
 * the setting otherwise, with the URL's password masked.
 */
export function checkUrl(name: string, url: string | undefined): string | undefined {
  if (url === undefined || url === '') return undefined
  const shown = shownUrl(url)
  // `localhost:6390` parses as the scheme `localhost:`: say what is missing instead.
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new ConfigError(
      name,
      `must be a redis:// or rediss:// URL such as redis://localhost:6379, got "${shown}" (no scheme)`,
    )
  }
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError(name, `is not a valid URL (check the host and the port): "${shown}"`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigError(
      name,
      `must start with redis:// or rediss://, got ${parsed.protocol}// in "${shown}"`,
    )
  }
  return url
}

/** A `host:port` address (a sentinel). */
export function checkAddress(name: string, address: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(address)
  if (m === null || Number(m[2]) > 65535) {
    throw new ConfigError(name, `expected host:port, got "${address}"`)
  }
  return address
}
