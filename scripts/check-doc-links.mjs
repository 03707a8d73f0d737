// Every link and every repository path in the user docs must open: a reader of the repository
// (or of the npm page, whose links point at the repository on GitHub) follows them.
//
//   node scripts/check-doc-links.mjs   exit 1, naming file:line, when one does not resolve
//                                      (make lint runs this)
//
// Checked: Markdown links to files of the repository (relative, or
// https://github.com/fleetcache/fleetcache/blob/main/...), the heading a `#fragment` names
// (GitHub's anchors), and paths written in backticks that start with a top-level directory of
// the repository (`tests/e2e/cli.test.mjs`). A path with a placeholder (`<release>`), a glob
// or a build output (made by `make`, absent from a clean checkout) is not a reference to open.
// A test named by its title after its file (`js-host/test/x.test.mjs`, 'the title ...', or in
// double quotes) must be a title that file holds: up to a trailing `...`, a prefix of it.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { REPO_URL, anchors } from './doc-anchors.mjs'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const TOP_DIRS = ['docs', 'js-host', 'tests', 'crates', 'scripts', 'bench', 'examples']
// Written by the build or by a run, not committed: named in the docs as outputs.
const OUTPUTS = [/^js-host\/(dist|cli|wasm|worker)(\/|$)/, /^target\//, /^pkg\//]

function docFiles() {
  const files = ['README.md', 'CHANGELOG.md', 'js-host/README.md']
  for (const dir of ['docs', 'docs/decisions']) {
    for (const f of fs.readdirSync(path.join(repoRoot, dir))) {
      if (f.endsWith('.md')) files.push(`${dir}/${f}`)
    }
  }
  return files
}

function checkTarget(doc, target) {
  const [rawPath, fragment] = target.split('#')
  let file
  if (rawPath.startsWith(REPO_URL)) file = path.join(repoRoot, rawPath.slice(REPO_URL.length))
  else if (/^[a-z]+:/.test(rawPath)) return undefined
  else if (rawPath === '') file = path.join(repoRoot, doc)
  else file = path.resolve(path.dirname(path.join(repoRoot, doc)), decodeURI(rawPath))
  if (!fs.existsSync(file)) return `${target}: no such file`
  if (fragment !== undefined && fs.statSync(file).isFile() && file.endsWith('.md')) {
    if (!anchors(file).has(fragment)) return `${target}: no heading with this anchor`
  }
  return undefined
}

function checkPath(p) {
  if (/[<>*{}$]|\.\.\./.test(p) || OUTPUTS.some((re) => re.test(p))) return undefined
  const clean = p.replace(/[:#].*$/, '').replace(/[.,;)]+$/, '')
  return fs.existsSync(path.join(repoRoot, clean)) ? undefined : `${p}: no such path`
}

// Where a test file named without its directory lives.
const TEST_DIRS = ['js-host/test', 'tests/e2e']

function testFile(named) {
  if (named.includes('/')) return path.join(repoRoot, named)
  const dir = TEST_DIRS.find((d) => fs.existsSync(path.join(repoRoot, d, named)))
  return dir === undefined ? undefined : path.join(repoRoot, dir, named)
}

const squash = (text) => text.replace(/\s+/g, ' ')

// A test file's backticked name, then within a few characters a quoted title; the closing
// quote is one no letter follows (`Redis's` goes on).
const TITLED = /`([\w./-]+\.test\.mjs)`[,:]? \(?(['"])(.{3,300}?)\2(?![\p{L}])/gu

// A title the test builds (`${label}, revalidated on P`): each template literal of the file
// with a placeholder, as a pattern its placeholders match anything in.
function templates(source) {
  const found = []
  for (const m of source.matchAll(/`([^`]*\$\{[^`]*)`/g)) {
    const parts = m[1].split(/\$\{[^}]*\}/)
    // Mostly placeholders (`${a}: ${b}`) would match any title.
    if (parts.join('').trim().length < 12) continue
    const escaped = parts.map((p) => p.replace(/[.*+?^$()|[\]\\{}]/g, '\\$&'))
    found.push(new RegExp(`^${escaped.join('.+')}$`))
  }
  return found
}

function checkTitles(doc, text) {
  const found = []
  for (const m of squash(text).matchAll(TITLED)) {
    const file = testFile(m[1])
    if (file === undefined || !fs.existsSync(file)) continue
    const title = m[3].replace(/ ?(\.\.\.|…)$/, '')
    const source = squash(fs.readFileSync(file, 'utf8'))
    if (!source.includes(title) && !templates(source).some((re) => re.test(m[3]))) {
      found.push(`${doc}: ${m[1]} has no test titled ${m[2]}${m[3]}${m[2]}`)
    }
  }
  return found
}

const problems = []
for (const doc of docFiles()) {
  problems.push(...checkTitles(doc, fs.readFileSync(path.join(repoRoot, doc), 'utf8')))
  let fenced = false
  fs.readFileSync(path.join(repoRoot, doc), 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.startsWith('```')) fenced = !fenced
      if (fenced) return
      const where = `${doc}:${i + 1}`
      for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        const p = checkTarget(doc, m[1])
        if (p) problems.push(`${where}: ${p}`)
      }
      for (const m of line.matchAll(/`([^`\s]+)`/g)) {
        if (!TOP_DIRS.some((d) => m[1].startsWith(`${d}/`))) continue
        const p = checkPath(m[1])
        if (p) problems.push(`${where}: ${p}`)
      }
    })
}
for (const p of problems) console.error(p)
process.exit(problems.length === 0 ? 0 : 1)
