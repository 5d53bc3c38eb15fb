/// Uniformly random among available replicas: a baseline.
public struct RandomPolicy: BalancingPolicy {
    public init() {}

    public func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice? {
        let replicas = snapshot.replicas
        guard !replicas.isEmpty else { return nil }
        let start = Int(facts.random % UInt64(replicas.count))
        for offset in 0..<replicas.count {
            let candidate = replicas[(start + offset) % replicas.count]
            if candidate.isAvailable(at: now) { return RoutingChoice(replica: candidate, reason: .random) }
        }
        return nil
    }
}
