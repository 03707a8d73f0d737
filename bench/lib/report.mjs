// bench/REPORT.md: one dated section per run, newest first, earlier runs kept below.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const REPORT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'REPORT.md')
const HEADER =
  '# fleetcache benchmark report\n\nWritten by `make bench`; never edited by hand. Newest run first.\n\n'

/** Puts `lines` (one run's section) at the top of the report; returns the report's path. */
export function prependReport(lines) {
  const previous = fs.existsSync(REPORT) ? fs.readFileSync(REPORT, 'utf8').replace(HEADER, '') : ''
  fs.writeFileSync(REPORT, HEADER + lines.join('\n') + '\n' + previous)
  return REPORT
}
