import type { NextApiRequest, NextApiResponse } from 'next'

// POST /api/revalidate-isr?path=/isr -> res.revalidate(path): on-demand ISR. This instance
// re-renders the page and writes it through the cacheHandler; the others read the new entry.
export default async function handler(req: NextApiRequest, res: NextApiResponse) {
  const path = typeof req.query.path === 'string' ? req.query.path : '/isr'
  if (!path.startsWith('/')) return res.status(400).json({ ok: false, error: 'invalid ?path=' })
  await res.revalidate(path)
  return res.json({ ok: true, path })
}
