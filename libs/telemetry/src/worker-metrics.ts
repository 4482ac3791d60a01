// Gateway workers (node:cluster): the primary serves their metrics aggregated; each worker answers the primary's requests for its own.
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * In a worker: answers the primary's metrics requests (prom-client's cluster messages) with
 * `registry`'s metrics.
 */
export function answerMetricsRequests(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // The constructor installs the worker's message listener (once per process).
  new AggregatorRegistry();
}

/**
 * In the primary: a metrics source for the metrics listener that asks every connected worker and
 * aggregates their answers — summed, except where a metric names another aggregator (connection
 * states take the minimum, `authentik_outpost_info` the first). Rejects when a worker does not
 * answer within 5 s (the listener then answers 500).
 */
export function workersMetrics(): Pick<Registry, 'metrics' | 'contentType'> {
  const aggregator = new AggregatorRegistry<typeof Registry.PROMETHEUS_CONTENT_TYPE>();
  return { metrics: () => aggregator.clusterMetrics(), contentType: aggregator.contentType };
}
