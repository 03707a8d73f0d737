// Starts workerd (the npm `workerd` package's binary, resolved by the caller) on a free loopback
// port, serving one worker of `modules` (capnp module entries, files embedded from `dir`), and
// waits until its `/info` answers 200. Output goes to `logFile`; the caller stops the child it
// returns by PID (stopChild). One that does not answer is stopped here; one that exits while
// starting fails at once.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

import { freePort } from './ports.mjs'
import { stopChild, trackChild, waitFor } from './util.mjs'

/** Returns `{ child, base }` (`base`: `http://127.0.0.1:<port>`). */
export async function startWorkerd({ bin, dir, modules, logFile }) {
  const port = await freePort()
  fs.writeFileSync(
    path.join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .worker)],
  sockets = [(name = "http", address = "127.0.0.1:${String(port)}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [${modules.join(', ')}],
  compatibilityDate = "2025-06-01",
);
`,
  )
  const out = fs.openSync(logFile, 'a')
  const child = trackChild(
    spawn(bin, ['serve', path.join(dir, 'config.capnp')], {
      cwd: dir,
      stdio: ['ignore', out, out],
    }),
  )
  fs.closeSync(out)
  const base = `http://127.0.0.1:${String(port)}`
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) {
          throw Object.assign(new Error(`workerd exited (${String(child.exitCode)})`), {
            fatal: true,
          })
        }
        const res = await fetch(`${base}/info`, { signal: AbortSignal.timeout(2000) })
        await res.arrayBuffer()
        return res.status === 200
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'workerd to answer', stopOn: (e) => e.fatal },
    )
  } catch (err) {
    await stopChild(child, { termTimeoutMs: 5000 })
    throw err
  }
  return { child, base }
}
