import { connection } from 'next/server'
import { stats } from 'fleetcache'

// /api/health: the health route of docs/observability.md, as it is written there. fleetcache's
// counts for this process, 503 once the engine trapped. `await connection()` makes it run per
// request (a static GET handler would be cached like a page). It is also the example's route
// that imports the package's root entry, whose standalone trace tests/e2e/standalone.test.mjs
// checks.
export async function GET() {
  await connection()
  const s = stats()
  const ok = s === undefined || s.engine === 'ok'
  return Response.json(s ?? {}, { status: ok ? 200 : 503 })
}
