import Synchronization

/// The membership of one pool at one moment. Immutable: a membership change builds a new snapshot
/// and swaps it in atomically, so a pick in progress keeps the view it started with.
public final class PoolSnapshot: Sendable {
    public let replicas: [Replica]
    /// Increases with every membership change; lets observers tell snapshots apart.
    public let generation: UInt64
    /// The consistent-hash ring over `replicas`, for policies that hash.
    public let ring: HashRing?
    /// The pool's in-flight total, when its replicas keep one (`Replica.poolLoad`).
    public let poolLoad: PoolLoad?
    /// Replica index by `Replica.hashKey`, for policies that remember where keys went.
    public let indexByHashKey: [UInt64: Int]
    /// How many replicas are available, recounted at most once a millisecond (ejection and
    /// draining change rarely; a pick must not scan every replica).
    private let availableCount = Atomic<Int>(-1)
    private let availableCountedAt = Atomic<UInt64>(0)

    public init(replicas: [Replica], generation: UInt64 = 0, withRing: Bool = false, poolLoad: PoolLoad? = nil) {
        self.replicas = replicas
        self.generation = generation
        self.ring = withRing ? HashRing(replicas: replicas.map(\.id)) : nil
        self.poolLoad = poolLoad
        self.indexByHashKey = withRing ? Dictionary(replicas.enumerated().map { ($1.hashKey, $0) }, uniquingKeysWith: { first, _ in first }) : [:]
    }

    /// The pool's total in flight and its available replicas at `now`.
    public func loadAndAvailability(at now: UInt64) -> (inFlight: Int, available: Int) {
        guard let poolLoad else {
            var total = 0
            var available = 0
            for replica in replicas where replica.isAvailable(at: now) {
                total += replica.inFlight
                available += 1
            }
            return (total, available)
        }
        var available = availableCount.load(ordering: .relaxed)
        if available < 0 || now &- availableCountedAt.load(ordering: .relaxed) > 1_000_000 {
            available = replicas.reduce(0) { $0 + ($1.isAvailable(at: now) ? 1 : 0) }
            availableCount.store(available, ordering: .relaxed)
            availableCountedAt.store(now, ordering: .relaxed)
        }
        return (poolLoad.inFlight, available)
    }

    public func replica(_ id: ReplicaID) -> Replica? {
        replicas.first { $0.id == id }
    }
}
