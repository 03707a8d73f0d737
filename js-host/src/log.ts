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
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message
  }
  return String(err)
}
