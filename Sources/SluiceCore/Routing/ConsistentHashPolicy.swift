/// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing
/// with Bounded Loads", SODA 2018): the key's replica on the ring takes the request unless it
/// already has `ceil(loadFactor × (in-flight + 1) / available)` requests in flight; then the
/// next distinct replica clockwise that is under that bound does. Every key obeys the bound, so
/// a hot key cannot pile onto one replica, and a key moves only while its replica is full.
///
/// Without a key (no key source present) least-queue decides.
public struct ConsistentHashPolicy: BalancingPolicy {
    public let loadFactor: Double
    public let fallback: LeastQueuePolicy

    public init(loadFactor: Double = 1.25, fallback: LeastQueuePolicy = LeastQueuePolicy()) {
        precondition(loadFactor >= 1)
        self.loadFactor = loadFactor
        self.fallback = fallback
    }

    public var needsRing: Bool { true }

    public func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice? {
        guard let key = facts.key, let ring = snapshot.ring else {
            return fallback.choose(random: facts.random, in: snapshot, now: now).map { RoutingChoice(replica: $0, reason: .noKey) }
        }
        if let choice = Self.bounded(key: key, ring: ring, snapshot: snapshot, loadFactor: loadFactor, now: now) {
            return choice
        }
        // Every replica looked full: possible for a moment when the cached availability count is
        // behind an ejection, or counts race across event loops. Never a 503 for that.
        return fallback.choose(random: facts.random, in: snapshot, now: now).map { RoutingChoice(replica: $0, reason: .hashOverflow) }
    }

    /// The load bound for the next request: ceil(c × (total in flight + 1) / available). The
    /// total comes from the pool's running count when there is one (O(1)), else from a scan.
    public static func bound(loadFactor: Double, snapshot: PoolSnapshot, now: UInt64) -> Int {
        let (total, available) = snapshot.loadAndAvailability(at: now)
        guard available > 0 else { return 0 }
        return Int((loadFactor * Double(total + 1) / Double(available)).rounded(.up))
    }

    static func bounded(key: String, ring: HashRing, snapshot: PoolSnapshot, loadFactor: Double, now: UInt64) -> RoutingChoice? {
        guard !ring.points.isEmpty else { return nil }
        let replicas = snapshot.replicas
        let cap = bound(loadFactor: loadFactor, snapshot: snapshot, now: now)
        guard cap > 0 else { return nil }
        var index = ring.firstPoint(atOrAfter: HashRing.hash(key))
        var seen: [Int] = []
        var first = true
        for _ in 0..<ring.points.count {
            let replicaIndex = ring.points[index].replica
            if !seen.contains(replicaIndex) {
                seen.append(replicaIndex)
                let candidate = replicas[replicaIndex]
                if candidate.isAvailable(at: now), candidate.inFlight < cap {
                    return RoutingChoice(replica: candidate, reason: first ? .hash : .hashOverflow)
                }
                first = false
                if seen.count == replicas.count { break }
            }
            index += 1
            if index == ring.points.count { index = 0 }
        }
        return nil
    }
}
