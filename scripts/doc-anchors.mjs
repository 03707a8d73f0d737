// What a link into the repository's Markdown resolves against, shared by the docs' link check
// (scripts/check-doc-links.mjs) and the package's test of the documents its log lines name
// (js-host/test/doc-links.test.mjs), so both take a heading's anchor and the repository's URL
// alike.
import fs from 'node:fs'

/** The repository on GitHub, as package.json's `repository` names it, at `main`. */
export const REPO_URL = 'https://github.com/fleetcache/fleetcache/blob/main/'

// GitHub's heading anchors: lower case, punctuation other than `-` and `_` dropped, spaces to `-`.
export function slug(heading) {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

const anchorCache = new Map()

/** The anchors of `file`'s headings (outside fenced blocks), a repeated one numbered as GitHub does. */
export function anchors(file) {
  let set = anchorCache.get(file)
  if (set) return set
  set = new Set()
  const seen = new Map()
  let fenced = false
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    const m = !fenced && /^#{1,6}\s+(.*)$/.exec(line)
    if (!m) continue
    const base = slug(m[1])
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    set.add(n === 0 ? base : `${base}-${n}`)
  }
  anchorCache.set(file, set)
  return set
}
