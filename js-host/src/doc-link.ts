/**
 * The documents a log line or the CLI's help points to, as a user of the installed package
 * opens them: the npm package ships no docs/, so each is named by its URL in the repository
 * package.json names (`repository`, `homepage`), on the branch its documentation is read on,
 * the URL scripts/check-doc-links.mjs takes for the repository's. Node-free: the worker bundle
 * may use it too.
 */
const REPO_URL = 'https://github.com/fleetcache/fleetcache/blob/main/'

/**
 * `target`: a path in the repository, with a heading's anchor (GitHub's) when it has one:
 * `docs/operating.md#access-control`. Always a string literal, which test/doc-links.test.mjs
 * checks against the repository (the file and the heading exist).
 */
export function docLink(target: string): string {
  return REPO_URL + target
}
