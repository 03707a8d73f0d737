// The floor of bench/page-cost.mjs for 'use cache' (`cacheHandlers.default` and `.remote`): a
// Map in this process, the least a custom handler can be
// (next/dist/server/lib/cache-handlers/types.d.ts). The entry's stream is read once in set and
// a new one made for every get; tags are checked against the time they were last updated, as
// Next's own handler does.
'use strict'

const entries = new Map()
// tag -> ms when it was last updated.
const updated = new Map()

const newest = (tags) => tags.reduce((t, tag) => Math.max(t, updated.get(tag) ?? 0), 0)

async function bytesOf(stream) {
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

module.exports = {
  async get(key) {
    const hit = entries.get(key)
    if (!hit) return undefined
    const entry = await hit
    if (!entry || newest(entry.tags) > entry.timestamp) return undefined
    const { bytes, ...meta } = entry
    return {
      ...meta,
      value: new ReadableStream({
        start(c) {
          c.enqueue(bytes)
          c.close()
        },
      }),
    }
  },

  async set(key, pending) {
    // Stored as a promise first, so that a get during the set waits for it; a failed entry
    // reads as a miss (get must not throw) and is dropped.
    const stored = pending
      .then(async ({ value, ...meta }) => ({ ...meta, bytes: await bytesOf(value) }))
      .catch(() => undefined)
    entries.set(key, stored)
    if (!(await stored) && entries.get(key) === stored) entries.delete(key)
  },

  async refreshTags() {},

  async getExpiration(tags) {
    return newest(tags)
  },

  // With durations Next's own handler marks the tags stale (served once more while it
  // regenerates); here they expire at once, the simpler of the two.
  async updateTags(tags) {
    const now = Date.now()
    for (const tag of tags) updated.set(tag, now)
  },
}
