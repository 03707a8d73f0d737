/**
 * The engine's `EVALSHA` argv crosses from wasm as one NUL-joined string (`''`: none), one copy
 * instead of an array of strings, whose conversion code each export carried
 * (docs/decisions/0028-wasm-size-budget.md). No item holds a NUL: key prefixes are
 * `[A-Za-z0-9._-]`, tags in canonical form (percent-encoded), tokens hex, numbers decimal.
 */

/** The items of a NUL-joined argv; the empty string is the empty argv. */
export function splitArgv(joined: string): string[] {
  return joined === '' ? [] : joined.split('\0')
}

/**
 * Tags joined for the engine, which takes a list as one NUL-joined string (wasm `list.rs`).
 * Next before 16.2.7 passes a tag raw, NUL included (its `validateTags` checks only type and
 * length); joined as is, `a\0b` would reach the core as two tags `a` and `b`, and a lone `\0`
 * as none: an entry stored untagged, immune to its revalidation, and a revalidation that
 * misses the `%00` form later releases send. A NUL becomes `%00`, its canonical form
 * (`tags::canonical_tag`, Next's `encodeHeaderSafe`, which encodes each code point on its own),
 * so the core sees the tag it would have made of the raw one. The empty tag (Next takes it:
 * `cacheTag('')`, `revalidateTag('')`) alone would read as no tag: an entry stored untagged,
 * a revalidation refused.
 */
export function joinTags(tags: readonly string[]): string {
  const joined = tags.some((t) => t.includes('\0'))
    ? tags.map((t) => t.replaceAll('\0', '%00')).join('\0')
    : tags.join('\0')
  // Only empty tags: joined they read as the empty list. Two empty items are the one empty
  // tag (the core keeps a duplicate once).
  return joined === '' && tags.length > 0 ? '\0' : joined
}
