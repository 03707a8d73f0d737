// Preload (`NODE_OPTIONS=--import <this file's URL>`) that leaves a process's clock behind the
// wall clock by CLOCK_BEHIND_MS (default 5000), as a wall-clock step after the process started
// does (an NTP step, a machine resumed after a pause): Next's clock,
// `performance.timeOrigin + performance.now()`, which fleetcache stamps with too
// (js-host/src/clock.ts), is moved back; `Date.now()` stays on the wall clock the rest of the
// fleet runs on (moving `Date.now` ahead instead would leave this process's clock on the
// others', not behind them). Next reads both properties each time; fleetcache reads
// `timeOrigin` once, when it loads, after this module.
const behindMs = Number(process.env.CLOCK_BEHIND_MS ?? 5000)
const origin = performance.timeOrigin
Object.defineProperty(performance, 'timeOrigin', {
  configurable: true,
  enumerable: true,
  get: () => origin - behindMs,
})
