// The documents a log line or the CLI's help names must open for a user of the installed
// package, which ships no docs/: each is named by its URL in the repository (docLink,
// src/doc-link.ts), never by a bare `docs/x.md`, and each path and heading anchor it names
// exists in this checkout (a renamed document or heading fails here, not in a user's hands).
// Read from the TypeScript sources with the compiler's parser: string and template literals
// only, not comments.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { REPO_URL, anchors } from '../../scripts/doc-anchors.mjs'

const require = createRequire(import.meta.url)
const ts = require('typescript')

const hostRoot = fileURLToPath(new URL('..', import.meta.url))
const repoRoot = path.resolve(hostRoot, '..')
const SOURCE_DIRS = ['src', 'cli-src', 'worker-src']

function sources() {
  const files = []
  for (const dir of SOURCE_DIRS) {
    const full = path.join(hostRoot, dir)
    if (!fs.existsSync(full)) continue
    for (const f of fs.readdirSync(full)) if (f.endsWith('.ts')) files.push(path.join(full, f))
  }
  return files
}

/** Every string literal and template part of `file`, and every docLink call's argument. */
function literals(file) {
  const text = fs.readFileSync(file, 'utf8')
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const strings = []
  const links = []
  // docLink's own arguments: the paths it makes URLs of.
  const linked = new Set()
  const visit = (node) => {
    if (linked.has(node)) return
    if (
      ts.isStringLiteral(node) ||
      ts.isNoSubstitutionTemplateLiteral(node) ||
      ts.isTemplateHead(node) ||
      ts.isTemplateMiddle(node) ||
      ts.isTemplateTail(node)
    ) {
      const { line } = sf.getLineAndCharacterOfPosition(node.getStart())
      strings.push({ text: node.text, where: `${path.relative(repoRoot, file)}:${line + 1}` })
    }
    if (
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'docLink'
    ) {
      const { line } = sf.getLineAndCharacterOfPosition(node.getStart())
      const where = `${path.relative(repoRoot, file)}:${line + 1}`
      const arg = node.arguments[0]
      assert.ok(
        node.arguments.length === 1 && arg !== undefined && ts.isStringLiteral(arg),
        `${where}: docLink takes one string literal, so that this test can check it`,
      )
      links.push({ target: arg.text, where })
      linked.add(arg)
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
  return { strings, links }
}

const all = sources().map(literals)

test('no log line or help text names a document by a bare repository path', () => {
  const bare = all
    .flatMap((f) => f.strings)
    .filter((s) => /(^|[^/\w])docs\/[\w./-]+\.md/.test(s.text))
    .map((s) => `${s.where}: ${s.text.slice(0, 120)}`)
  assert.deepEqual(bare, [], 'use docLink(...): the npm package ships no docs/')
})

test('every document and heading a docLink names exists in the repository', () => {
  const links = all.flatMap((f) => f.links)
  assert.ok(links.length >= 10, `docLink calls found: ${String(links.length)}`)
  for (const { target, where } of links) {
    const [file, fragment] = target.split('#')
    const full = path.join(repoRoot, file)
    assert.ok(fs.existsSync(full), `${where}: ${file} is not in the repository`)
    if (fragment !== undefined) {
      assert.ok(anchors(full).has(fragment), `${where}: ${file} has no heading #${fragment}`)
    }
  }
})

test("docLink's URL is the repository's that package.json names, as the docs' link check takes it", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(hostRoot, 'package.json'), 'utf8'))
  const repo = pkg.repository.url.replace(/^git\+/, '').replace(/\.git$/, '')
  assert.equal(pkg.homepage, `${repo}#readme`)
  assert.equal(REPO_URL, `${repo}/blob/main/`)
  const { docLink } = require('../dist/doc-link.js')
  assert.equal(
    docLink('docs/operating.md#access-control'),
    `${repo}/blob/main/docs/operating.md#access-control`,
  )
})

// The type declarations the package ships carry the sources' doc comments, which an editor
// shows a user on hover: a `docs/x.md` there names a file the package does not hold either.
// Built: run after `make js` (dist/, worker/); esm/ is written by hand.
test('no shipped type declaration names a document by a bare repository path', () => {
  const bare = []
  for (const dir of ['dist', 'worker', 'esm']) {
    const full = path.join(hostRoot, dir)
    assert.ok(fs.existsSync(full), `${dir}/ is not built`)
    for (const f of fs.readdirSync(full)) {
      if (!f.endsWith('.d.ts') && !f.endsWith('.d.mts')) continue
      const lines = fs.readFileSync(path.join(full, f), 'utf8').split('\n')
      lines.forEach((line, i) => {
        if (/(^|[^/\w])docs\/[\w./-]+\.md/.test(line))
          bare.push(`${dir}/${f}:${i + 1}: ${line.trim()}`)
      })
    }
  }
  assert.deepEqual(bare, [], "name the document by its URL in the repository (docLink's)")
})
