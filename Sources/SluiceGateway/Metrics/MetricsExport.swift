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
            if let published = pool.scaling?.latest {
                let labels = [("pool", pool.name)]
                let decision = published.decision
                registry.makeGauge(descriptor: .sluice("sluice_pool_desired_replicas", "The replicas the pool needs to hold its p95 objective (the scale advisor's decision)."), labels: labels)
                    .set(Int64(decision.desired))
                registry.makeGauge(descriptor: .sluice("sluice_pool_current_replicas", "Healthy replicas in the pool at the last scale decision."), labels: labels)
                    .set(Int64(decision.current))
                registry.makeGauge(descriptor: .sluice("sluice_pool_scale_panic", "1 while the pool's scale advisor is in panic mode."), labels: labels)
                    .set(Int64(decision.mode == .panic ? 1 : 0))
                registry.makeGauge(descriptor: .sluice("sluice_pool_latency_target_seconds", "The pool's p95 objective."), labels: labels)
                    .set(Double(decision.target) / 1e9)
                for (window, value) in [("stable", decision.stableP95), ("panic", decision.panicP95)] {
                    // No samples: NaN, which Prometheus treats as absent.
                    registry.makeGauge(descriptor: .sluice("sluice_pool_latency_p95_seconds", "p95 of the pool's scaling signal over the stable and panic windows."), labels: labels + [("window", window)])
                        .set(value.map { Double($0) / 1e9 } ?? .nan)
                }
            }
            if let batcher = pool.batcher {
                registry.makeGauge(descriptor: .sluice("sluice_batch_cap", "The batch size cap the controller allows now (AIMD against target_latency)."), labels: [("pool", pool.name)])
                    .set(Int64(batcher.cap))
                registry.makeGauge(descriptor: .sluice("sluice_batch_waiting", "Requests waiting at the gateway for their batch to go."), labels: [("pool", pool.name)])
                    .set(Int64(batcher.waiting))
            }
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
