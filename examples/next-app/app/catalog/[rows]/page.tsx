// A product catalogue prerendered at build time with 30 to 1500 rows, for the compression
// benchmark (bench/compression.mjs): real HTML, RSC and segment data of about 20-40 KB (30
// rows), 100 KB (HTML at 90 rows, RSC at 150) and 1 MB (HTML at 900, RSC at 1500), made by
// rendering more rows (generated from a fixed seed), never by repeating bytes.

const ROWS = [30, 90, 150, 900, 1500]

export function generateStaticParams() {
  return ROWS.map((rows) => ({ rows: String(rows) }))
}

const ADJECTIVES = [
  'brushed', 'compact', 'foldable', 'insulated', 'modular', 'recycled', 'rugged', 'silent',
  'slim', 'smart', 'stackable', 'waterproof', 'wireless', 'ergonomic', 'heated', 'portable',
]
const MATERIALS = [
  'aluminium', 'bamboo', 'ceramic', 'copper', 'cotton', 'glass', 'leather', 'linen', 'oak',
  'steel', 'walnut', 'wool', 'cork', 'granite', 'silicone', 'titanium',
]
const NOUNS = [
  'kettle', 'lamp', 'backpack', 'bottle', 'chair', 'desk', 'headphones', 'jacket', 'mug',
  'notebook', 'pan', 'planter', 'shelf', 'speaker', 'tent', 'watch', 'blanket', 'bicycle',
]
const WORDS = [
  'designed', 'for', 'daily', 'use', 'with', 'a', 'finish', 'that', 'ages', 'well', 'easy',
  'to', 'clean', 'and', 'built', 'last', 'ships', 'in', 'plastic-free', 'packaging', 'made',
  'small', 'batches', 'by', 'our', 'partner', 'workshop', 'tested', 'over', 'thousand',
  'cycles', 'backed', 'two-year', 'warranty', 'fits', 'most', 'kitchens', 'offices',
]
const CATEGORIES = ['home', 'kitchen', 'outdoor', 'office', 'travel', 'audio', 'garden']

/** A small deterministic generator (mulberry32): the same catalogue on every build. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Product {
  sku: string
  name: string
  category: string
  description: string
  price: number
  stock: number
  rating: number
  tags: string[]
}

function catalogue(rows: number): Product[] {
  const next = random(rows)
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T
  return Array.from({ length: rows }, (_, i) => {
    const words = Array.from({ length: 8 + Math.floor(next() * 14) }, () => pick(WORDS))
    return {
      sku: `${pick(CATEGORIES).slice(0, 3).toUpperCase()}-${(i * 7919 + 104729).toString(36)}`,
      name: `${pick(ADJECTIVES)} ${pick(MATERIALS)} ${pick(NOUNS)}`,
      category: pick(CATEGORIES),
      description: words.join(' ') + '.',
      price: Math.round(next() * 50000) / 100,
      stock: Math.floor(next() * 500),
      rating: Math.round(next() * 50) / 10,
      tags: Array.from({ length: 1 + Math.floor(next() * 3) }, () => pick(ADJECTIVES)),
    }
  })
}

export default async function CatalogPage({ params }: { params: Promise<{ rows: string }> }) {
  const { rows } = await params
  const n = Number(rows)
  const products = catalogue(ROWS.includes(n) ? n : 10)
  return (
    <main>
      <h1>Catalogue ({products.length} products)</h1>
      <table>
        <thead>
          <tr>
            <th>SKU</th>
            <th>Product</th>
            <th>Category</th>
            <th>Price</th>
            <th>Stock</th>
            <th>Rating</th>
          </tr>
        </thead>
        <tbody>
          {products.map((p) => (
            <tr key={p.sku} id={p.sku} data-category={p.category}>
              <td>
                <a href={`/catalog/item/${p.sku}`}>{p.sku}</a>
              </td>
              <td>
                <strong>{p.name}</strong>
                <p>{p.description}</p>
                <ul>
                  {p.tags.map((t, i) => (
                    <li key={i}>{t}</li>
                  ))}
                </ul>
              </td>
              <td>{p.category}</td>
              <td>{p.price.toFixed(2)} EUR</td>
              <td>{p.stock > 0 ? `${p.stock} in stock` : 'sold out'}</td>
              <td>{p.rating.toFixed(1)} / 5</td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  )
}
