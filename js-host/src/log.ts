/** One-line logging with a fixed prefix, so fleetcache's lines are easy to grep in server logs. */
export interface Logger {
  info(message: string): void
  warn(message: string): void
  error(message: string): void
  /** Called for every cache decision when debugging is on; a no-op otherwise. */
  debug(message: string): void
  readonly debugEnabled: boolean
}

export function createLogger(debug: boolean): Logger {
  return {
    info: (m) => {
      console.log(prefixed(m))
    },
    warn: (m) => {
      console.warn(prefixed(m))
    },
    error: (m) => {
      console.error(prefixed(m))
    },
    debug: debug
      ? (m) => {
          console.log(prefixed(m))
        }
      : () => undefined,
    debugEnabled: debug,
  }
}

/**
 * `message` with `[fleetcache] ` before each of its lines: a read's decisions, an error's
 * text or a stack may span several, and every line must carry the prefix for
 * `grep '\[fleetcache\]'` to find it (docs/troubleshooting.md). One string, so one write.
 */
export function prefixed(message: string): string {
  return `[fleetcache] ${message.replace(/\r?\n/g, '\n[fleetcache] ')}`
}

/** Text of an unknown thrown value, for log lines. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code
    const text = typeof code === 'string' ? `${code}: ${err.message}` : err.message
    return text + hint(err.message)
  }
  return String(err)
}

/** What to do about Redis's access-control replies, which only configuration can fix. */
function hint(message: string): string {
  if (/\b(WRONGPASS|NOAUTH)\b/.test(message)) {
    return ' (check the user name and password in the Redis URL)'
  }
  if (/\bNOPERM\b/.test(message)) {
    return " (the Redis ACL user lacks a permission fleetcache needs: see docs/operating.md, 'Access control')"
  }
  return ''
}
