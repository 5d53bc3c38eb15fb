import NIOCore
import Prometheus

/// Renders `/metrics`. State gauges are set from the live atomics just before rendering, so the
/// request path never updates them.
enum MetricsExport {
    static func render(_ gateway: Gateway) -> String {
        let runtime = gateway.runtime
        let registry = runtime.metrics.registry
        let now = NIODeadline.now().uptimeNanoseconds
        runtime.metrics.downstreamConnections.set(Int64(runtime.tracker.count))
        let connections = runtime.upstreamStats.totals()
        for pool in runtime.pools {
            if let gate = pool.gate {
                registry.makeGauge(descriptor: .sluice("sluice_queue_depth", "Requests waiting for a replica slot (pools with max_concurrent_per_replica)."), labels: [("pool", pool.name)])
                    .set(Int64(gate.waiting))
            }
            for replica in pool.snapshot.replicas {
                let labels = [("pool", pool.name), ("replica", replica.id.description)]
                registry.makeGauge(descriptor: .sluice("sluice_replica_in_flight", "Requests sent to the replica and not yet finished."), labels: labels)
                    .set(Int64(replica.inFlight))
                registry.makeGauge(descriptor: .sluice("sluice_replica_available", "1 when the replica takes new requests (not ejected, not draining)."), labels: labels)
                    .set(Int64(replica.isAvailable(at: now) ? 1 : 0))
                let totals = connections[.init(pool: pool.name, replica: replica.id)] ?? .init()
                registry.makeGauge(descriptor: .sluice("sluice_upstream_connections", "Connections to the replica, by state (open includes idle)."), labels: labels + [("state", "open")])
                    .set(Int64(totals.open))
                registry.makeGauge(descriptor: .sluice("sluice_upstream_connections", "Connections to the replica, by state (open includes idle)."), labels: labels + [("state", "idle")])
                    .set(Int64(totals.idle))
                registry.makeGauge(descriptor: .sluice("sluice_upstream_connects", "Connection attempts to the replica, by result (a running total)."), labels: labels + [("result", "ok")])
                    .set(Int64(totals.connectsSucceeded))
                registry.makeGauge(descriptor: .sluice("sluice_upstream_connects", "Connection attempts to the replica, by result (a running total)."), labels: labels + [("result", "failed")])
                    .set(Int64(totals.connectsFailed))
            }
        }
        return runtime.metrics.render()
    }
}
