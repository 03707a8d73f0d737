/** `performance.timeOrigin`, fixed for the process: read once (its getter costs a call). */
const origin = performance.timeOrigin

/**
 * Wall-clock milliseconds on the same scale Next.js uses for entry timestamps and tag
 * revalidations (`performance.timeOrigin + performance.now()`), so comparisons between the two
 * are not skewed by the difference between `Date.now()` and the monotonic clock.
 */
export function now(): number {
  return origin + performance.now()
}
