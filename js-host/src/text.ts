/** A lone UTF-16 surrogate: a high one not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * True when `s` converts to UTF-8 without loss. Strings with lone surrogates cross into wasm
 * as U+FFFD, so two different cache keys would share one entry (a wrong value served): such
 * keys are not cached at all.
 */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s)
}

/** Thrown for a cache key that cannot be cached safely (see {@link isWellFormed}). */
export class IllFormedKeyError extends Error {
  readonly code = 'ERR_KEY_ILL_FORMED'
  constructor() {
    super(
      'cache key contains a lone UTF-16 surrogate: not cached (its UTF-8 form would collide with other keys)',
    )
    this.name = 'IllFormedKeyError'
  }
}
