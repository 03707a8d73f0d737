// Preloaded into a `next start` of examples/next-app by bench/revalidated-page.mjs with
// RP_TRACE=1 (NODE_OPTIONS=--require): wraps the methods of both fleetcache handlers, as the
// app's node_modules hold them, so that each call's start, end and outcome is recorded. Next
// loads the handlers from their resolved paths; the CommonJS module cache makes the instance
// Next gets the one patched here. Records go to $RP_TRACE_DIR/<INSTANCE_NAME>-<pid>.jsonl, one
// JSON line per call, buffered and written every 50 ms (never on the request path), with times
// in epoch ms (performance.timeOrigin + performance.now(), comparable across processes).
// Without fleetcache in the app (Next's default cache) it records nothing.
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const dir = process.env.RP_TRACE_DIR
const appDir = process.env.RP_APP_DIR
const at = () => performance.timeOrigin + performance.now()
const buffer = []
const out = dir ? path.join(dir, `${process.env.INSTANCE_NAME ?? 'x'}-${process.pid}.jsonl`) : null
const flush = () => {
  if (out && buffer.length) fs.appendFileSync(out, buffer.splice(0).join(''))
}
if (out) {
  setInterval(flush, 50).unref()
  process.on('exit', flush)
}
const record = (r) => buffer.push(JSON.stringify(r) + '\n')
const short = (key) => (typeof key === 'string' ? key.slice(-24) : String(key))

// Wraps target[name] (a method returning a promise) so that each call is recorded with `what`
// (the call's arguments and result, summarised).
function wrap(target, name, iface, what) {
  const orig = target[name]
  if (typeof orig !== 'function') return
  target[name] = function (...args) {
    const start = at()
    const r = { iface, call: name, start, ...what.args(args) }
    if (name === 'set' && iface === 'uc' && args[1] && typeof args[1].then === 'function') {
      // When Next's pending entry (the regeneration) resolved: the set waited for it before.
      args[1].then(
        () => (r.entryReadyAfter = at() - start),
        () => (r.entryFailed = true),
      )
    }
    let result
    try {
      result = orig.apply(this, args)
    } catch (err) {
      record({ ...r, ms: at() - start, error: String(err) })
      throw err
    }
    if (!result || typeof result.then !== 'function') {
      record({ ...r, ms: at() - start, sync: true, ...what.result(result) })
      return result
    }
    return result.then(
      (value) => {
        record({ ...r, ms: at() - start, ...what.result(value) })
        return value
      },
      (err) => {
        record({ ...r, ms: at() - start, error: String(err) })
        throw err
      },
    )
  }
}

const none = { args: () => ({}), result: () => ({}) }
const entry = (v) =>
  v === undefined || v === null
    ? { found: false }
    : {
        found: true,
        stale: v.stale,
        revalidate: v.revalidate,
        ageMs: v.timestamp === undefined ? undefined : Math.round(at() - v.timestamp),
      }

if (dir && appDir) {
  let ucPath
  let incPath
  try {
    ucPath = require.resolve('fleetcache/use-cache', { paths: [appDir] })
    incPath = require.resolve('fleetcache/incremental', { paths: [appDir] })
  } catch {
    // Next's default cache: no fleetcache installed where the app resolves it.
  }
  if (ucPath && incPath) {
    const uc = require(ucPath)
    wrap(uc, 'get', 'uc', {
      args: (a) => ({ key: short(a[0]), softTags: a[1]?.length }),
      result: entry,
    })
    wrap(uc, 'set', 'uc', { args: (a) => ({ key: short(a[0]) }), result: () => ({}) })
    wrap(uc, 'refreshTags', 'uc', none)
    wrap(uc, 'getExpiration', 'uc', {
      args: (a) => ({ tags: a[0]?.length }),
      result: (v) => ({ expiration: v }),
    })
    wrap(uc, 'updateTags', 'uc', { args: (a) => ({ tags: a[0] }), result: () => ({}) })
    const Inc = require(incPath)
    wrap(Inc.prototype, 'get', 'inc', {
      args: (a) => ({ key: short(a[0]), kind: a[1]?.kind }),
      result: (v) =>
        v === null || v === undefined
          ? { found: false }
          : { found: true, kind: v.value?.kind, isStale: v.isStale },
    })
    wrap(Inc.prototype, 'set', 'inc', {
      args: (a) => ({ key: short(a[0]), kind: a[1]?.kind ?? null }),
      result: () => ({}),
    })
    wrap(Inc.prototype, 'revalidateTag', 'inc', {
      args: (a) => ({ tags: a[0] }),
      result: () => ({}),
    })
  }
}
