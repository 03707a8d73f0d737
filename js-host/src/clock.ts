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

/** The number of the synchronous run in progress (`currentTurn`); 0 is never one. */
let turn = 0
/** Whether `turn` is still in progress (reset by a microtask queued when it began). */
let inTurn = false

function endTurn(): void {
  inTurn = false
}

/**
 * A number for the synchronous run the caller is in, different from the last run's: it changes
 * once the microtasks queued so far have run. Next reports each revalidation to `updateTags`
 * and then to the singular handler's `revalidateTag` in one synchronous loop; two calls in the
 * same run with the same number can be one event, two calls in different runs never are
 * (docs/decisions/0005-one-tag-write-per-revalidation.md).
 */
export function currentTurn(): number {
  if (!inTurn) {
    inTurn = true
    turn = turn >= 0xffff_ffff ? 1 : turn + 1
    queueMicrotask(endTurn)
  }
  return turn
}
