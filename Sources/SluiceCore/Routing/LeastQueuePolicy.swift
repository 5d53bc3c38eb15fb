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
