/** Checks of single settings, shared by the options and the environment readers. */
import { ConfigError } from './options'

/**
 * The range of a numeric setting: above `min` (`minOpen`) or from it, up to `max` (infinite:
 * no ceiling); `whole`: a whole number (the engine refuses a fraction, with the same words);
 * `unit`: what the number counts, for the message.
 */
export interface Range {
  min: number
  minOpen: boolean
  max: number
  whole: boolean
  unit: string
}

const U32_MAX = 2 ** 32 - 1
const budget: Range = { min: 0, minOpen: true, max: 60_000, whole: false, unit: 'milliseconds' }
const breakerMs: Range = { ...budget, max: 3_600_000 }
const count = (max: number): Range => ({ min: 1, minOpen: false, max, whole: true, unit: '' })

/**
 * Every numeric setting checked against a range before the engine sees it, with the core's
 * bounds (`Config::validate` and the constants of crates/fleetcache-core/src/config.rs, which
 * `bounds()` hands out; test/option-ranges.test.mjs holds the two together): the message states
 * the range, and a value this check lets through, the engine accepts, but for a fraction where
 * a whole number is due and `breakerMaxOpenMs` below `breakerOpenMs`, which the engine refuses.
 * `memoryBytes` and `compressMinBytes` are `nonNegative`'s (0 turns them off).
 */
export const RANGES = {
  maxEntryBytes: count(U32_MAX),
  maxTtlSeconds: { min: 0, minOpen: true, max: 3_153_600_000, whole: false, unit: 'seconds' },
  defaultTtlSeconds: {
    min: 0,
    minOpen: true,
    max: Number.POSITIVE_INFINITY,
    whole: false,
    unit: 'seconds',
  },
  readTimeoutMs: budget,
  writeTimeoutMs: budget,
  connectTimeoutMs: budget,
  commandTimeoutMs: budget,
  breakerWindowMs: breakerMs,
  breakerOpenMs: breakerMs,
  breakerMaxOpenMs: breakerMs,
  outboxCapacity: count(1_000_000),
  tagMirrorMaxTags: count(100_000_000),
  leaseTtlMs: { min: 1, minOpen: false, max: 600_000, whole: false, unit: 'milliseconds' },
  leaseWaitMs: { min: 0, minOpen: false, max: 60_000, whole: false, unit: 'milliseconds' },
  compressLevel: count(9),
  breakerFailureRate: { min: 0, minOpen: true, max: 1, whole: false, unit: '' },
  breakerFailures: count(U32_MAX),
  breakerMinCalls: count(U32_MAX),
} satisfies Record<string, Range>

/** A setting `RANGES` holds. */
export type RangedSetting = keyof typeof RANGES

/** What a value of `range` must be: `a number of milliseconds > 0 and <= 60000`. */
export function rangeText(range: Range): string {
  const what = range.whole
    ? 'a whole number'
    : range.unit === ''
      ? 'a number'
      : `a number of ${range.unit}`
  if (range.minOpen) {
    const floor = `${what} > ${String(range.min)}`
    return Number.isFinite(range.max) ? `${floor} and <= ${String(range.max)}` : floor
  }
  return Number.isFinite(range.max)
    ? `${what} from ${String(range.min)} to ${String(range.max)}`
    : `${what} >= ${String(range.min)}`
}

/** Whether `value` is a finite number inside `range` (whole or not: the engine checks that). */
export function inRange(range: Range, value: number): boolean {
  if (!Number.isFinite(value)) return false
  if (range.minOpen ? value <= range.min : value < range.min) return false
  return value <= range.max
}

/**
 * `value` when it is in the setting's range (`RANGES`); else a `ConfigError` naming the setting
 * and stating the range.
 */
export function ranged(name: RangedSetting, value: number): number {
  const range = RANGES[name]
  if (!inRange(range, value)) {
    throw new ConfigError(name, `must be ${rangeText(range)}, got ${String(value)}`)
  }
  return value
}

/**
 * A setting where 0 has a meaning of its own (it turns something off), and so says the
 * message: "positive" would tell the user that 0 is refused. `or`: what else the setting
 * takes, for the message (`false`).
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
