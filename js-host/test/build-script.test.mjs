// `npm run build` (package.json's `build`, what a contributor runs after `make js` to rebuild
// the TypeScript alone) leaves the package's declarations as `make js` does: the `types` that
// `exports` names in dist/, one bundled file each, no internal module's beside them
// (bundle-declarations.mjs, docs/decisions/0019). Run on a copy of js-host in a temp dir (its
// node_modules linked, the built wasm/ and worker/ copied), so the tree under test is untouched.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const here = fileURLToPath(new URL('..', import.meta.url))
const manifest = JSON.parse(fs.readFileSync(path.join(here, 'package.json'), 'utf8'))

test('npm run build writes the bundled declarations that exports names', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-build-script-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const f of fs.readdirSync(here)) {
    if (['node_modules', 'dist', 'types', 'cli', 'test'].includes(f) || f.endsWith('.tgz')) {
      continue
    }
    fs.cpSync(path.join(here, f), path.join(dir, f), { recursive: true })
  }
  fs.symlinkSync(path.join(here, 'node_modules'), path.join(dir, 'node_modules'), 'dir')
  await run('npm', ['run', '--silent', 'build'], { cwd: dir })

  const types = new Set()
  const walk = (v, key) =>
    typeof v === 'string'
      ? key === 'types' && types.add(path.normalize(v))
      : Object.entries(v ?? {}).forEach(([k, x]) => walk(x, k))
  walk(manifest.exports)
  const inDist = [...types].filter((t) => t.startsWith(`dist${path.sep}`)).sort()
  assert.ok(inDist.length > 0)
  assert.deepEqual(
    inDist.filter((t) => !fs.existsSync(path.join(dir, t))),
    [],
    'declarations named by exports and missing after npm run build',
  )
  const shipped = fs
    .readdirSync(path.join(dir, 'dist'), { recursive: true })
    .filter((f) => /\.d\.[cm]?ts$/.test(f))
    .map((f) => path.join('dist', f))
    .sort()
  assert.deepEqual(shipped, inDist, 'declaration files in dist/ after npm run build')
})
