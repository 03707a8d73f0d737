// After tsc (the Makefile's js-host/dist/.stamp rule): each entry point's declaration file under
// dist/ and worker/ (the `types` that `exports`, `types` and `typesVersions` name) becomes one
// file holding what its public types reference (rollup-plugin-dts), and no other declaration
// file is left there. tsc writes one per module, internal ones too, which are no API: shipped,
// an editor offers auto-imports from them. dist/'s are read from types/ (tsconfig.json's
// declarationDir, not packed; the CLI compiles against them), worker/'s in place, and worker/'s
// other declaration files are deleted. tests/package/run.mjs fails on a packed declaration file
// that no entry point's types reach.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { rollup } from 'rollup'
import { dts } from 'rollup-plugin-dts'

const here = path.dirname(fileURLToPath(import.meta.url))
const DIRS = ['dist', 'worker']
const manifest = JSON.parse(fs.readFileSync(path.join(here, 'package.json'), 'utf8'))

const named = new Set()
const walk = (v, key) =>
  typeof v === 'string'
    ? key === 'types' && named.add(v)
    : Object.entries(v ?? {}).forEach(([k, x]) => walk(x, k))
walk(manifest.exports)
if (manifest.types !== undefined) named.add(manifest.types)
for (const targets of Object.values(manifest.typesVersions ?? {})) {
  for (const list of Object.values(targets)) list.forEach((t) => named.add(t))
}
const inDirs = (file) => DIRS.includes(path.relative(here, file).split(path.sep)[0])
const entries = [...named].map((t) => path.join(here, t)).filter(inDirs)
const isEntry = new Set(entries)

/** The declaration file a relative import in `importer` names. */
const declarationOf = (id, importer) => {
  const base = path.resolve(path.dirname(importer), id)
  const stem = base.replace(/\.js$/, '.d.ts')
  return stem !== base && fs.existsSync(stem) ? stem : `${base}.d.ts`
}

/** Where tsc wrote an entry's declarations: types/ for dist/'s. */
const TYPES = path.join(here, 'types')
const sourceOf = (entry) =>
  entry.replace(`${path.join(here, 'dist')}${path.sep}`, `${TYPES}${path.sep}`)
const inputs = new Set(entries.map(sourceOf))

const bundled = new Map()
for (const entry of entries) {
  const bundle = await rollup({
    input: sourceOf(entry),
    plugins: [dts()],
    // Another entry (worker/edge.d.ts's './index.js') and the wasm glue's declarations (wasm/)
    // stay imports; every other module the entry reaches is inlined, what its types use only.
    external: (id, importer) => {
      if (importer === undefined || !id.startsWith('.')) return false
      const file = declarationOf(id, importer)
      return inputs.has(file) || !(inDirs(file) || file.startsWith(`${TYPES}${path.sep}`))
    },
  })
  const { output } = await bundle.generate({ format: 'es' })
  await bundle.close()
  let code = output[0].code
  // A CommonJS module's `export =` (dist/use-cache.d.ts, dist/incremental.d.ts) comes out as an
  // ES default export, which is another module shape: put it back.
  if (/^export = \w+;$/m.test(fs.readFileSync(sourceOf(entry), 'utf8'))) {
    const asDefault = /^export \{ ([\w$]+) as default \};$/m
    if (!asDefault.test(code)) throw new Error(`${entry}: no default export to make \`export =\``)
    code = code.replace(asDefault, 'export = $1;')
  }
  bundled.set(entry, code)
}
for (const dir of DIRS) {
  for (const f of fs.readdirSync(path.join(here, dir), { recursive: true })) {
    const file = path.join(here, dir, f)
    if (/\.d\.[cm]?ts$/.test(f) && !isEntry.has(file)) fs.rmSync(file)
  }
}
for (const [entry, code] of bundled) fs.writeFileSync(entry, code)
