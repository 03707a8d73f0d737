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
 * A number for the run the caller is in: the first call of a run takes a new one, and the calls
 * made until the microtasks queued before that first call have run get the same (so a run is
 * one synchronous stretch, or a few microtasks queued together). Next reports each
 * revalidation to `updateTags` and then to the singular handler's `revalidateTag` in one
 * synchronous loop: two reports with the same number can be one event, two with different
 * numbers never are (docs/decisions/0005-one-tag-write-per-revalidation.md).
 */
export function currentTurn(): number {
  if (!inTurn) {
    inTurn = true
    turn = turn >= 0xffff_ffff ? 1 : turn + 1
    queueMicrotask(endTurn)
  }
  return turn
}
