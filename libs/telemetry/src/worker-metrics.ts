// Gateway workers (node:cluster): each worker's metrics as data for its primary, and the primary's sum of them as Prometheus text.
import { AggregatorRegistry, Registry } from 'prom-client';

/** One worker's metrics as plain data (they travel over the IPC channel). */
export type WorkerMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** The content type of {@link sumWorkerMetrics}' text. */
export const SUMMED_METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** In a worker: its metrics, to send to the primary. */
export function metricsOfWorker(registry: Registry): Promise<WorkerMetrics> {
  return registry.getMetricsAsJSON();
}

/**
 * In the primary: the workers' metrics as one exposition — each series summed over the workers,
 * except where a metric names another aggregator (connection states take the minimum,
 * `authentik_outpost_info` the first worker's).
 */
export function sumWorkerMetrics(perWorker: WorkerMetrics[]): Promise<string> {
  return AggregatorRegistry.aggregate(perWorker).metrics();
}
