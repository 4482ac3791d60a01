// Public entry of @portcullis/telemetry: logging, metrics and the metrics listener.
export { createLogger, type Logger } from './logger.ts';
export { createMetrics, type Metrics } from './metrics.ts';
export { startMetricsServer, type Readiness, type ReadinessScope } from './metrics-server.ts';
export { SUMMED_METRICS_CONTENT_TYPE, type WorkerMetrics, metricsOfWorker, sumWorkerMetrics } from './worker-metrics.ts';
export {
  SpanKinds,
  activeTraceIds,
  contextFromHeaders,
  linkTo,
  traceHeaders,
  tracingEnabled,
  withSpan,
  type SpanOptions,
} from './tracing.ts';
export { startTracing, tracingRequested, type TracingHandle } from './tracing-sdk.ts';
