/**
 * The engine's `EVALSHA` argv crosses from wasm as one NUL-joined string (`''`: none), one copy
 * instead of an array of strings, whose conversion code each export carried
 * (docs/decisions/0028-wasm-size-budget.md). No item holds a NUL: key prefixes are
 * `[A-Za-z0-9._-]`, tags printable text, tokens hex, numbers decimal.
 */

/** The items of a NUL-joined argv; the empty string is the empty argv. */
export function splitArgv(joined: string): string[] {
  return joined === '' ? [] : joined.split('\0')
}
