/// The membership of one pool at one moment. Immutable: a membership change builds a new snapshot
/// and swaps it in atomically, so a pick in progress keeps the view it started with.
public final class PoolSnapshot: Sendable {
    public let replicas: [Replica]
    /// Increases with every membership change; lets observers tell snapshots apart.
    public let generation: UInt64
    /// The consistent-hash ring over `replicas`, for policies that hash.
    public let ring: HashRing?

    public init(replicas: [Replica], generation: UInt64 = 0, withRing: Bool = false) {
        self.replicas = replicas
        self.generation = generation
        self.ring = withRing ? HashRing(replicas: replicas.map(\.id)) : nil
    }

    public func replica(_ id: ReplicaID) -> Replica? {
        replicas.first { $0.id == id }
    }
}
