import { docLink } from './doc-link.js'

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
      quietly('log', m)
    },
    warn: (m) => {
      quietly('warn', m)
    },
    error: (m) => {
      quietly('error', m)
    },
    debug: debug
      ? (m) => {
          quietly('log', m)
        }
      : () => undefined,
    debugEnabled: debug,
  }
}

/**
 * Writes `message` with the console's `level` method, swallowing what it throws. The console is
 * the application's (Next's dev server and logging libraries replace its methods), and a log
 * line is bookkeeping: its throw must not fail the cache call that wrote it (a rejected `get`
 * is a failed render). There is nowhere left to report it.
 */
function quietly(level: 'log' | 'warn' | 'error', message: string): void {
  try {
    console[level](prefixed(message))
  } catch {
    // The console itself failed.
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

/**
 * `s` with its control characters escaped (`\n`, `\xNN`, C1 included): a string of the
 * application's (a tag) in a log line or a row of the CLI's tables can neither forge a line of
 * its own nor drive a terminal.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
    c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  )
}

/**
 * The reserved tag the core gives back the records it folded past `tagMirrorMaxTags` under,
 * whose record every tagged entry is judged by (crates/fleetcache-core/src/tag_fold.rs,
 * `FOLDED_TAG`; docs/operating.md, "Tag state in each process").
 */
export const FOLDED_TAG = '\u0001folded'

/** A tag as log lines name it: escaped (`printable`), the folded records' reserved one in words. */
export function tagText(tag: string): string {
  return tag === FOLDED_TAG ? '(folded revalidations)' : printable(tag)
}

/**
 * Tags for a log line: the first five, each cut at 80 characters and escaped (`printable`), so
 * that the application's strings can neither flood the log nor forge a line; the folded
 * records' reserved tag as `(folded revalidations)`. `count`: how many the list stands for
 * (`tags` may be the first of them only).
 */
export function shortList(tags: readonly string[], count = tags.length): string {
  const shown = tags.slice(0, 5).map((t) => tagText(t.length > 80 ? `${t.slice(0, 80)}…` : t))
  return count > shown.length
    ? `${shown.join(',')} and ${String(count - shown.length)} more`
    : shown.join(',')
}

/** Text of an unknown thrown value, for log lines. */
export function describe(err: unknown): string {
  // It runs in catch blocks, after a read's value is decided: a thrown value without a string
  // form (`Object.create(null)`, a throwing `toString` or `message`) must not throw again there.
  try {
    if (err instanceof Error) {
      const code = (err as Error & { code?: unknown }).code
      const text = typeof code === 'string' ? `${code}: ${err.message}` : err.message
      return text + hint(err.message)
    }
    return String(err)
  } catch {
    return `a thrown ${err instanceof Error ? 'error' : typeof err} without a readable message`
  }
}

/**
 * True for the failure of the circuit breaker's probe (breaker-log.ts `FailedProbeError`): told
 * by its `failedProbe` mark, not its class, since both bundles hold a copy of the class. The
 * breaker stays open in an outage already logged, so the command's own line is a debug line.
 */
export function isFailedProbe(err: unknown): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    (err as { failedProbe?: unknown }).failedProbe === true
  )
}

/** What to do about Redis's access-control replies, which only configuration can fix. */
function hint(message: string): string {
  if (/\b(WRONGPASS|NOAUTH)\b/.test(message)) {
    return ' (check the user name and password in the Redis URL)'
  }
  if (/\bNOPERM\b/.test(message)) {
    return ` (the Redis ACL user lacks a permission fleetcache needs: see ${docLink('docs/operating.md#access-control')})`
  }
  return ''
}
