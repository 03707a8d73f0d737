// Small helpers shared by the e2e harness and the demo: bounded waits, log tails, stopping a child
// process by PID.
import fs from 'node:fs'
import { setTimeout as delay } from 'node:timers/promises'

export const sleep = (ms) => delay(ms)

// Calls `probe` every `intervalMs` until it returns a value other than undefined/false, or throws
// after `timeoutMs` with the last probe error (if any). `what` names the condition in the error.
// A probe error for which `stopOn(err)` is true ends the wait at once (e.g. the server exited).
export async function waitFor(probe, { timeoutMs, intervalMs = 100, what, stopOn = () => false }) {
  const deadline = Date.now() + timeoutMs
  let lastError
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value
    } catch (err) {
      if (stopOn(err)) throw err
      lastError = err
    }
    if (Date.now() >= deadline) {
      const cause = lastError ? ` (last error: ${lastError.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`)
    }
    await delay(intervalMs)
  }
}

// The last `lines` lines of a (log) file, or a note when it cannot be read.
export function tailFile(file, lines = 40) {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    return `(cannot read ${file}: ${err.message})`
  }
  const all = text.split('\n')
  if (all.length && all[all.length - 1] === '') all.pop()
  return all.slice(-lines).join('\n')
}

export function indent(text, prefix = '    ') {
  return String(text)
    .split('\n')
    .map((line) => prefix + line)
    .join('\n')
}

// Resolves once `child` has exited (immediately if it already has), or with false after timeoutMs.
export function waitForExit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit)
      resolve(false)
    }, timeoutMs)
    const onExit = () => {
      clearTimeout(timer)
      resolve(true)
    }
    child.once('exit', onExit)
  })
}

// Stops a child process we started, by its PID: SIGTERM, then SIGKILL after `termTimeoutMs`.
// Returns how it ended, for logs.
export async function stopChild(child, { termTimeoutMs = 10_000, killTimeoutMs = 5_000 } = {}) {
  if (!child || child.pid === undefined) return 'not started'
  if (child.exitCode !== null || child.signalCode !== null) return 'already exited'
  child.kill('SIGTERM')
  if (await waitForExit(child, termTimeoutMs)) return 'stopped (SIGTERM)'
  child.kill('SIGKILL')
  if (await waitForExit(child, killTimeoutMs)) return `killed (SIGKILL after ${termTimeoutMs} ms)`
  throw new Error(`process ${child.pid} did not exit after SIGKILL`)
}

// Last-resort cleanup: when this Node process exits for any reason (a failed assertion, an
// uncaught error, process.exit), SIGKILL every child still registered here. Only processes this
// harness started are ever registered.
const live = new Set()
let exitHookInstalled = false

export function trackChild(child) {
  live.add(child)
  child.once('exit', () => live.delete(child))
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once('exit', () => {
      for (const c of live) {
        try {
          c.kill('SIGKILL')
        } catch {
          // already gone
        }
      }
    })
  }
  return child
}

// Whether a process with this PID runs (EPERM: it runs, as another user).
function processRuns(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

// Takes the lock `file` for this process: the file, holding this process's PID, made by a link
// (so it never exists without its PID). While a running process holds it, waits (saying once
// who holds it), up to `timeoutMs`. A lock whose process no longer runs (or names this process,
// so was left by a dead one with the same PID) is removed, if it still names that PID when read
// again: two runs that find one dead run's lock at the same moment can both take it only if
// one's link falls between the other's second read and its unlink. Returns a function that
// releases the lock (idempotent; called on exit too), removing the file only while it holds this
// PID.
export async function takeLock(file, { what, timeoutMs = 10 * 60_000, log = () => undefined }) {
  const mine = String(process.pid)
  const own = `${file}.${mine}`
  fs.writeFileSync(own, mine)
  const read = () => {
    try {
      return fs.readFileSync(file, 'utf8').trim()
    } catch (err) {
      if (err.code === 'ENOENT') return null
      throw err
    }
  }
  const deadline = Date.now() + timeoutMs
  let told
  try {
    for (;;) {
      try {
        fs.linkSync(own, file)
        break
      } catch (err) {
        if (err.code !== 'EEXIST') throw err
      }
      const owner = read()
      if (owner === null) continue
      if (owner === mine || !processRuns(Number(owner))) {
        // Removed only if it still names the process that died.
        if (read() === owner) fs.rmSync(file, { force: true })
        continue
      }
      if (Date.now() >= deadline) {
        throw new Error(`${what}: ${file} is still held by PID ${owner} after ${timeoutMs} ms`)
      }
      if (told !== owner) log(`${what}: waiting for PID ${owner}, which holds ${file}`)
      told = owner
      await delay(1000)
    }
  } finally {
    fs.rmSync(own, { force: true })
  }
  const release = () => {
    if (read() === mine) fs.rmSync(file, { force: true })
  }
  process.once('exit', release)
  return release
}
