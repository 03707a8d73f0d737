import type { OriginData } from '@/lib/origin'
import { instanceName } from '@/lib/origin'

// Renders a cached value in a form that is easy to read from the HTML: numbers and plain words in
// data-* attributes plus a `v=<n>` text. data-error is present only when the origin could not be
// read.
export function DataView({ data }: { data: OriginData }) {
  return (
    <section>
      <p
        id="data"
        data-name={data.name}
        data-version={data.version}
        data-calls={data.calls}
        data-generated-at={data.generatedAt}
        data-generated-by={data.generatedBy}
        data-rendered-by={instanceName()}
        data-error={data.error}
      >
        v={data.version}
      </p>
      <pre>{JSON.stringify(data, null, 2)}</pre>
    </section>
  )
}
