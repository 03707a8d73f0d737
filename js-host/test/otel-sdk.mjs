// The OpenTelemetry SDK the telemetry tests register before any fleetcache copy is loaded, as an
// app's instrumentation hook would: metrics read on demand (`reader.collect()`), spans kept in
// memory (`spans.getFinishedSpans()`), exported nowhere.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { metrics, trace } = require('@opentelemetry/api')
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics')
const {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} = require('@opentelemetry/sdk-trace-base')

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

/** Registers the global meter and tracer providers; returns their reader and span exporter. */
export function registerTestSdk() {
  const reader = new TestReader()
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))
  const spans = new InMemorySpanExporter()
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
  )
  return { reader, spans }
}
