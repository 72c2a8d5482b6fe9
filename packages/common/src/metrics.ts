import { collectDefaultMetrics, Registry } from "prom-client";

export { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * One prom-client registry per process, with Node's default metrics under the
 * `smollm_<service>_` prefix and a `service` label on everything. Every
 * metric of the cluster is `smollm_<service>_<what>[_<unit>]` (base units:
 * seconds, bytes, tokens; counters end in `_total`) and passes
 * `promtool check metrics`.
 */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  const prefix = `smollm_${service}_`;
  collectDefaultMetrics({ register: registry, prefix });
  // prom-client exports these three sums as gauges named `_total`, which
  // `promtool check metrics` rejects (only counters end in `_total`); the
  // same figures are there per type as `nodejs_active_{handles,requests,resources}`.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    registry.removeSingleMetric(prefix + name);
  }
  return registry;
}

/** Latency buckets in seconds, from 1 ms to 2 min. */
export const LATENCY_BUCKETS_S = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
] as const;

/** Inter-token latency buckets in seconds, from 0.1 ms to 2 s. */
export const TOKEN_LATENCY_BUCKETS_S = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2,
] as const;
