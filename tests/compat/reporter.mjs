// A node:test reporter that writes one JSON document: per test file, the counts of passed,
// failed and skipped tests and the names (and causes, reasons) of the failed and skipped ones.
// Suites (describe) are not counted, only the tests in them. tests/compat/run.mjs reads it.
//
// Use: node --test --test-reporter=./tests/compat/reporter.mjs --test-reporter-destination=<file>
import path from 'node:path'

const firstLine = (s) =>
  String(s ?? '')
    .split('\n')[0]
    .slice(0, 500)

export default async function* compatReporter(source) {
  const files = {}
  const entry = (file) =>
    (files[file ? path.basename(file) : '(no file)'] ??= {
      pass: 0,
      fail: 0,
      skip: 0,
      failing: [],
      skipped: [],
    })
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue
    const { data } = event
    if (data.details?.type === 'suite') {
      // A suite fails on its own only when a hook failed; its tests then fail too (cancelled),
      // but the hook's error is the cause worth recording.
      if (event.type === 'test:fail' && data.details?.error)
        entry(data.file).failing.push({
          name: `${data.name} (suite)`,
          error: firstLine(data.details.error.cause?.message ?? data.details.error.message),
        })
      continue
    }
    const e = entry(data.file)
    if (data.skip !== undefined || data.todo !== undefined) {
      e.skip++
      e.skipped.push({ name: data.name, reason: typeof data.skip === 'string' ? data.skip : '' })
    } else if (event.type === 'test:pass') {
      e.pass++
    } else {
      e.fail++
      const err = data.details?.error
      e.failing.push({ name: data.name, error: firstLine(err?.cause?.message ?? err?.message) })
    }
  }
  yield JSON.stringify(files, null, 2) + '\n'
}
