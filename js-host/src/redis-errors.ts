/**
 * Connection errors sorted by what fixes them (waiting, or the operator), and written as one
 * log line that says which setting to change.
 */
import { ErrorReply } from 'redis'

import { docLink } from './doc-link'
import { describe } from './log'

/**
 * A failure that waiting will not fix, found by fleetcache rather than as Redis's reply (a
 * sentinel's refused login), its message already written for the log.
 */
export class RefusedError extends Error {}

/**
 * Errors that waiting will not fix: an error reply during the handshake (WRONGPASS, NOPERM) or
 * a TLS certificate that is not trusted, not presented or not accepted (the server's alert
 * `ERR_SSL_TLSV1_ALERT_UNKNOWN_CA` or `..._DECRYPT_ERROR` for a client certificate, whose codes
 * do not say CERT). A refused or silent TCP connection is not one of them: Redis may be
 * restarting.
 */
export function isRefusal(err: unknown): boolean {
  if (err instanceof ErrorReply || err instanceof RefusedError) return true
  const code = (err as { code?: unknown } | null)?.code
  return (
    typeof code === 'string' &&
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ALERT_(UNKNOWN_CA|DECRYPT_ERROR)/.test(code)
  )
}

/** What a refusal is, in words an operator acts on, and where the docs say what to do. */
export interface Refusal {
  /** `Redis refused the login`, `the TLS certificate of Redis is not trusted`, ... */
  readonly words: string
  /** Redis's error code (`WRONGPASS`, `NOAUTH`, `NOPERM`) or Node's TLS code, when there is one. */
  readonly code: string | undefined
  /** The docs' place for it (doc-link.ts). */
  readonly doc: string
}

/** A login refused (an error reply during the handshake, or a sentinel's refusal). */
const LOGIN_DOC = docLink('docs/troubleshooting.md#at-start')
/** The server's TLS certificate, and the client's. */
const TLS_DOC = docLink('docs/configuration.md#redis-cluster-tls-sentinel')
const CLIENT_CERT_DOC = docLink('docs/operating.md#tls-client-certificates')

/**
 * What a refusal ({@link isRefusal}) means: the login refused (`WRONGPASS`, `NOAUTH`, `NOPERM`
 * during the handshake, a sentinel's refusal), the server's TLS certificate not trusted, or the
 * client's TLS certificate missing or not accepted. Undefined for anything else.
 */
export function refusalOf(err: unknown): Refusal | undefined {
  if (err instanceof RefusedError) {
    return { words: 'a sentinel refused the login', code: undefined, doc: LOGIN_DOC }
  }
  if (err instanceof ErrorReply) {
    const code = /\b(WRONGPASS|NOAUTH|NOPERM)\b/.exec(err.message)?.[1]
    return code === undefined
      ? {
          words: 'Redis refused the connection',
          code: /^\S+/.exec(err.message)?.[0],
          doc: LOGIN_DOC,
        }
      : { words: 'Redis refused the login', code, doc: LOGIN_DOC }
  }
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string' || !isRefusal(err)) return undefined
  if (code.includes('CERTIFICATE_REQUIRED')) {
    return { words: 'Redis requires a TLS client certificate', code, doc: CLIENT_CERT_DOC }
  }
  if (code.includes('ALERT')) {
    return { words: 'Redis did not accept the TLS client certificate', code, doc: CLIENT_CERT_DOC }
  }
  return { words: 'the TLS certificate of Redis is not trusted', code, doc: TLS_DOC }
}

/** A refusal as a short cause for a warning: `Redis refused the login (WRONGPASS; see <doc>)`. */
export function refusalCause(r: Refusal): string {
  return `${r.words} (${r.code === undefined ? '' : `${r.code}; `}see ${r.doc})`
}

/**
 * A connection error for a log line (`describe`d): when it is a refusal, what refused it first
 * and where the docs say what to do last (`Redis refused the login: WRONGPASS ... (check ...);
 * see <link>`); a sentinel's refusal says what it is already.
 */
export function describeConnectionError(err: unknown): string {
  const refusal = isRefusal(err) ? refusalOf(err) : undefined
  if (refusal === undefined) return describe(err)
  const what = err instanceof RefusedError ? '' : `${refusal.words}: `
  return `${what}${describe(err)}; see ${refusal.doc}`
}

/** Socket errors the kernel reports at once and a wait for the same address does not change. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND'])

/**
 * A connection attempt that failed at once: refused (nothing listens on the port), no route, or
 * a host name that does not resolve. Node reports a dual-stack attempt (`localhost`) as an
 * AggregateError whose own code is the first address's.
 */
export function isUnreachable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string') return UNREACHABLE.has(code)
  const inner = (err as { errors?: unknown } | null)?.errors
  return (
    Array.isArray(inner) &&
    inner.length > 0 &&
    inner.every((e: unknown) => {
      const c = (e as { code?: unknown } | null)?.code
      return typeof c === 'string' && UNREACHABLE.has(c)
    })
  )
}

/**
 * The server reset the connection. Before the first reply on a `redis://` URL that is most
 * often a Redis listening with TLS only: it takes the plain command for a broken handshake.
 */
export function isReset(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ECONNRESET'
}

/** What to do about a TLS error, from Node's / OpenSSL's code. */
function tlsHint(code: string): string {
  if (code.includes('CERTIFICATE_REQUIRED')) {
    return ' (the server requires a TLS client certificate: set FLEETCACHE_REDIS_CERT_FILE and FLEETCACHE_REDIS_KEY_FILE)'
  }
  if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|DECRYPT_ERROR)/.test(code)) {
    return " (the server did not accept the client certificate: it must be signed by a CA in the server's tls-ca-cert-file)"
  }
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED/.test(code)) {
    return " (the server's certificate is not signed by a CA Node trusts: set FLEETCACHE_REDIS_CA_FILE)"
  }
  return ''
}

/**
 * A connection error as one log line, without the ACL hint (`describe` adds it): OpenSSL's
 * multi-line `…:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:…` becomes its
 * reason, and TLS errors say which setting fixes them.
 */
export function connectionError(err: unknown): string {
  if (!(err instanceof Error)) return oneLine(String(err))
  const code = (err as Error & { code?: unknown }).code
  const reason = /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1]
  const message = oneLine(reason ?? err.message)
  if (typeof code !== 'string') return message
  return `${code}: ${message}${tlsHint(code)}`
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}
