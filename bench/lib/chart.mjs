// A dependency-free SVG bar chart: p50 get-hit latency per entry size, one bar per case.

const COLORS = [
  '#8c8c8c',
  '#c9b458',
  '#2f6fb0',
  '#7fa7d4',
  '#3a9d5d',
  '#b0452f',
  '#7b5ea7',
  '#d9822b',
]

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;')

/** hits: [{ label, results: [{ name, p50 }] }] → SVG text (log-scale y axis). */
export function latencyChart(hits, title) {
  const names = hits[0]?.results.map((r) => r.name) ?? []
  const values = hits.flatMap((h) => h.results.map((r) => r.p50))
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(0.1, Math.min(...values)))))
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values))))
  const W = 760
  const H = 400
  const left = 70
  const top = 40
  const bottom = 96
  const plotH = H - top - bottom
  const groupW = (W - left - 20) / hits.length
  const barW = Math.min(28, (groupW - 20) / names.length)
  const y = (v) => top + plotH - (Math.log10(v / lo) / Math.log10(hi / lo)) * plotH
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14">${esc(title)}</text>`,
  ]
  for (let d = lo; d <= hi; d *= 10) {
    out.push(`<line x1="${left}" x2="${W - 20}" y1="${y(d)}" y2="${y(d)}" stroke="#ddd"/>`)
    out.push(`<text x="${left - 8}" y="${y(d) + 4}" text-anchor="end">${d}</text>`)
  }
  hits.forEach((h, gi) => {
    const x0 = left + gi * groupW + (groupW - barW * names.length) / 2
    h.results.forEach((r, i) => {
      const yy = y(Math.max(lo, r.p50))
      out.push(
        `<rect x="${x0 + i * barW}" y="${yy}" width="${barW - 2}" height="${top + plotH - yy}" fill="${COLORS[i % COLORS.length]}"><title>${esc(r.name)}: ${r.p50.toFixed(1)} µs</title></rect>`,
      )
    })
    out.push(
      `<text x="${left + gi * groupW + groupW / 2}" y="${top + plotH + 18}" text-anchor="middle">${esc(h.label)}</text>`,
    )
  })
  names.forEach((n, i) => {
    const lx = left + (i % 2) * 330
    const ly = H - 62 + Math.floor(i / 2) * 14
    out.push(
      `<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`,
    )
    out.push(`<text x="${lx + 14}" y="${ly}">${esc(n)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
