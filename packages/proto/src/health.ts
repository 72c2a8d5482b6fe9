import type { Server } from "@grpc/grpc-js";
import { ClusterError } from "@smollm/common";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "./gen/grpc/health/v1/health_pb.ts";
import { serviceDefinition, serviceImplementation } from "./grpc-service.ts";

/** How often Watch re-checks the status; default 1 s. */
const WATCH_PERIOD_MS = 1_000;

/**
 * Adds the standard `grpc.health.v1.Health` service (Check and Watch), so
 * grpc-health-probe and Kubernetes gRPC probes work. `services` are the
 * fully qualified service names served ("" means the whole server);
 * `isServing` is the readiness (false while loading or draining).
 */
export function addHealthService(server: Server, services: readonly string[], isServing: () => boolean): void {
  const known = new Set(["", ...services]);
  const statusOf = (service: string): ServingStatus => {
    if (!known.has(service)) throw new ClusterError("not_found", `unknown service "${service}"`);
    return isServing() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  server.addService(
    serviceDefinition(Health),
    serviceImplementation(Health, {
      check: async (request) => ({ status: statusOf(request.service) }),
      watch: async function* (request, context) {
        let last: ServingStatus | undefined;
        while (!context.signal.aborted) {
          const now = known.has(request.service) ? statusOf(request.service) : ServingStatus.SERVICE_UNKNOWN;
          if (now !== last) {
            last = now;
            yield { status: now };
          }
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, WATCH_PERIOD_MS);
            context.signal.addEventListener("abort", () => {
              clearTimeout(t);
              resolve();
            }, { once: true });
          });
        }
      },
    }),
  );
}
