import Synchronization

/// Strict rotation over the replicas that are available, skipping ejected and draining ones.
/// The cursor is the policy's only state and is one relaxed atomic increment per pick.
public final class RoundRobinPolicy: BalancingPolicy {
    private let cursor: Atomic<UInt64>

    public init(start: UInt64 = 0) {
        cursor = Atomic(start)
    }

    public func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice? {
        let replicas = snapshot.replicas
        let count = replicas.count
        guard count > 0 else { return nil }
        let start = Int(cursor.wrappingAdd(1, ordering: .relaxed).oldValue % UInt64(count))
        for offset in 0..<count {
            let candidate = replicas[(start + offset) % count]
            if candidate.isAvailable(at: now) {
                return RoutingChoice(replica: candidate, reason: .rotation)
            }
        }
        return nil
    }
}
