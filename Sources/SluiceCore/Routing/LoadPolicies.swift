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

/// Join the shortest queue: a replica's load is the gateway's own in-flight requests to it plus
/// the waiting queue it reports (`Replica.load`, stale reports ignored).
///
/// Pools of up to `exactUpTo` replicas get the exact minimum, scanning from a random start so
/// that ties (common: idle replicas) spread instead of herding onto the first one. Larger pools
/// use power of two choices (Mitzenmacher): two distinct random replicas, the less loaded wins,
/// which keeps the maximum load within O(log log n) of the mean at O(1) cost.
public struct LeastQueuePolicy: BalancingPolicy {
    public let exactUpTo: Int
    /// Reports older than this (nanoseconds) count as no queue.
    public let staleAfter: UInt64

    public init(exactUpTo: Int = 16, staleAfter: UInt64 = 5_000_000_000) {
        self.exactUpTo = exactUpTo
        self.staleAfter = staleAfter
    }

    public func choose(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> RoutingChoice? {
        choose(random: facts.random, in: snapshot, now: now).map { RoutingChoice(replica: $0, reason: .leastQueue) }
    }

    /// Two distinct indexes below `count` (≥ 2) from one random draw.
    public static func twoChoices(random: UInt64, count: Int) -> (Int, Int) {
        let first = Int(random % UInt64(count))
        let second = (first + 1 + Int((random >> 32) % UInt64(count - 1))) % count
        return (first, second)
    }

    func choose(random: UInt64, in snapshot: PoolSnapshot, now: UInt64) -> Replica? {
        let replicas = snapshot.replicas
        let count = replicas.count
        guard count > 0 else { return nil }
        if count > exactUpTo {
            let (first, second) = Self.twoChoices(random: random, count: count)
            let a = replicas[first]
            let b = replicas[second]
            switch (a.isAvailable(at: now), b.isAvailable(at: now)) {
            case (true, true):
                return b.load(at: now, staleAfter: staleAfter) < a.load(at: now, staleAfter: staleAfter) ? b : a
            case (true, false): return a
            case (false, true): return b
            case (false, false): break  // rare: fall back to a full scan
            }
        }
        let start = Int(random % UInt64(count))
        var best: Replica?
        var bestLoad = Int.max
        for offset in 0..<count {
            let candidate = replicas[(start + offset) % count]
            guard candidate.isAvailable(at: now) else { continue }
            let load = candidate.load(at: now, staleAfter: staleAfter)
            if load < bestLoad {
                best = candidate
                bestLoad = load
            }
        }
        return best
    }
}

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
