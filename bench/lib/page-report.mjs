// What bench/page-cost.mjs and bench/page-cpu.mjs share: the report both write into
// (bench/PAGE-COST.md) and the call to an instance's probe (bench/lib/page-cost-probe.cjs).
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** bench/PAGE-COST.md: each run's section goes on top, earlier runs kept below. */
export const PAGE_COST_REPORT = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'PAGE-COST.md',
)
const REPORT_HEADER =
  '# Page cost: where the time of a cached page request goes\n\nWritten by `node bench/page-cost.mjs` and `node bench/page-cpu.mjs`, newest run first; a section titled "conclusion (by hand)" is an engineer\'s reading of the runs next to it, and says which.\n\n'
// The headers earlier versions wrote, replaced by this one.
const OLD_HEADERS = [
  '# Page cost: where the time of a cached page request goes\n\nWritten by `node bench/page-cost.mjs`; never edited by hand. Newest run first.\n\n',
  '# Page cost: where the time of a cached page request goes\n\nWritten by `node bench/page-cost.mjs` and `node bench/page-cpu.mjs`; never edited by hand. Newest run first.\n\n',
]

/** Puts `report` (one run's section) on top of bench/PAGE-COST.md under the current header. */
export function prependPageCostReport(report) {
  let previous = fs.existsSync(PAGE_COST_REPORT)
    ? fs.readFileSync(PAGE_COST_REPORT, 'utf8').replace(REPORT_HEADER, '')
    : ''
  for (const h of OLD_HEADERS) previous = previous.replace(h, '')
  fs.writeFileSync(PAGE_COST_REPORT, REPORT_HEADER + report + '\n\n' + previous)
}

/** Asks `inst`'s probe for `pathname`; its JSON reply, or throws with the probe's error. */
export async function probe(inst, pathname, method) {
  const res = await fetch(`http://127.0.0.1:${String(inst.probePort)}${pathname}`, {
    method,
    signal: AbortSignal.timeout(30_000),
  })
  const body = await res.json()
  if (res.status !== 200) throw new Error(`probe ${pathname} on ${inst.name}: ${body.error}`)
  return body
}
