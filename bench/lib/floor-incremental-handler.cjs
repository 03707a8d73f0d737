// The floor of bench/page-cost.mjs: the least a custom singular `cacheHandler` can be, a Map in
// this process. Whatever it costs over Next's own cache is the price of Next's custom-handler
// path (it awaits an import of this module on every request), not of any store.
// It keeps Next's contract (next/dist/server/lib/incremental-cache/index.d.ts): the stored
// cacheControl is returned, and a tag revalidated after an entry was stored makes it a miss.
'use strict'

const entries = new Map()
// tag -> ms when it was last revalidated.
const revalidated = new Map()

function tagsOf(value, ctx) {
  const header = value?.headers?.['x-next-cache-tags']
  const own = typeof header === 'string' ? header.split(',') : []
  return [...own, ...(ctx.tags ?? []), ...(ctx.softTags ?? [])]
}

module.exports = class FloorIncrementalHandler {
  async get(key, ctx) {
    const hit = entries.get(key)
    if (!hit) return null
    for (const tag of tagsOf(hit.value, ctx)) {
      if ((revalidated.get(tag) ?? 0) > hit.lastModified) return null
    }
    return hit
  }

  async set(key, value, ctx) {
    entries.set(key, { lastModified: Date.now(), value, cacheControl: ctx.cacheControl })
  }

  async revalidateTag(tags) {
    const now = Date.now()
    for (const tag of [tags].flat()) revalidated.set(tag, now)
  }

  resetRequestCache() {}
}
