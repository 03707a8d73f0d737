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
      console.log(`[fleetcache] ${m}`)
    },
    warn: (m) => {
      console.warn(`[fleetcache] ${m}`)
    },
    error: (m) => {
      console.error(`[fleetcache] ${m}`)
    },
    debug: debug
      ? (m) => {
          console.log(`[fleetcache] ${m}`)
        }
      : () => undefined,
    debugEnabled: debug,
  }
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
