import Foundation

/// Reads the gateway's `/readyz` once a second during a run (it needs no token), so the report
/// can show how many replicas each pool had in rotation over time, its requests in progress and
/// its wait queue (depth, and what became of the requests that waited), and for scaled pools
/// the scale advisor's desired count, p95 and target.
struct GatewaySampler: Sendable {
    let client: AdminClient

    init?(adminURL: String) {
        guard let client = AdminClient(url: adminURL) else { return nil }
        self.client = client
    }

    /// One sample: each pool's replicas and how many are in rotation; nil if the gateway did not
    /// answer within a second.
    func sample() async -> [String: LoadReport.PoolSample]? {
        // (/readyz answers 503 while not ready, with the same body: either is a sample.)
        guard let response = await client.request("GET", "/readyz"),
              let object = (try? JSONSerialization.jsonObject(with: Data(response.body.utf8))) as? [String: Any],
              let pools = object["pools"] as? [String: [String: Any]]
        else { return nil }
        return pools.compactMapValues { pool in
            guard let replicas = pool["replicas"] as? Int, let available = pool["available"] as? Int else { return nil }
            var sample = LoadReport.PoolSample(
                replicas: replicas, available: available, inFlight: pool["in_flight"] as? Int, queued: pool["queued"] as? Int,
                queueDispatched: pool["queue_dispatched"] as? Int, queueFull: pool["queue_full"] as? Int,
                queueTimeout: pool["queue_timeout"] as? Int)
            sample.desired = pool["desired"] as? Int
            sample.p95Ms = pool["p95_ms"] as? Double
            sample.targetMs = pool["target_ms"] as? Double
            return sample
        }
    }
}
