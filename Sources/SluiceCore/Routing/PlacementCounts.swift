import Synchronization

/// How many conversations each replica was recently given (placed or moved there), decaying
/// with `halfLife`: what cache-aware placement evens out, as SGLang's router sends a new prompt
/// to the worker with the smallest tree. Why not the load at the moment of placement: at a few
/// requests in flight every replica ties, so a burst of new conversations (a fleet's start,
/// a rush of users) lands wherever the ring says, and one replica ends up holding a third more
/// conversations (and cache) than another; a count given the moment a conversation is placed
/// balances them at once. Decay lets conversations that ended stop counting.
public final class PlacementCounts: Sendable {
    struct Count {
        var value: Double
        var at: UInt64
    }

    public let halfLife: UInt64
    private let counts = Mutex<[UInt64: Count]>([:])

    public init(halfLife: UInt64 = 60_000_000_000) {
        self.halfLife = max(1, halfLife)
    }

    /// The replica's count at `now`.
    public func count(_ replica: UInt64, now: UInt64) -> Double {
        counts.withLock { counts in counts[replica].map { decayed($0, to: now) } ?? 0 }
    }

    /// One more conversation given to `replica` at `now`.
    public func add(_ replica: UInt64, now: UInt64) {
        counts.withLock { counts in
            // Bounded whatever is heard (a shared channel may name replicas never seen): past
            // 4,096 replicas, those decayed to almost nothing go.
            if counts.count >= 4_096 { counts = counts.filter { decayed($0.value, to: now) > 0.01 } }
            let current = counts[replica].map { decayed($0, to: now) } ?? 0
            counts[replica] = Count(value: current + 1, at: max(now, counts[replica]?.at ?? 0))
        }
    }

    /// Forgets replicas that are no longer members.
    public func retain(_ members: Set<UInt64>) {
        counts.withLock { counts in counts = counts.filter { members.contains($0.key) } }
    }

    private func decayed(_ count: Count, to now: UInt64) -> Double {
        guard now > count.at else { return count.value }
        return count.value * Self.halving(Double(now - count.at) / Double(halfLife))
    }

    /// 2^-x for x ≥ 0 without Foundation: whole halvings exactly, the fraction by a series
    /// (relative error below 3e-5, plenty for a balance count).
    static func halving(_ x: Double) -> Double {
        guard x < 1_000 else { return 0 }
        let whole = Int(x)
        let y = (x - Double(whole)) * 0.693_147_180_559_945_3
        let fraction = 1 - y * (1 - y / 2 * (1 - y / 3 * (1 - y / 4 * (1 - y / 5 * (1 - y / 6)))))
        return Double(sign: .plus, exponent: -whole, significand: 1) * fraction
    }
}
