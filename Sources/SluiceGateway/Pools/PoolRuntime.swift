import Atomics
import NIOCore
import SluiceConfig
import SluiceCore

extension PoolSnapshot: AtomicReference {}

/// One configured pool at run time: its policy, its current membership (an immutable snapshot
/// behind one atomic reference, so picks take no lock) and its metrics.
final class PoolRuntime: Sendable {
    let index: Int
    let configuration: PoolConfiguration
    let policy: any BalancingPolicy
    let upstreamSettings: UpstreamSettings
    let metrics: PoolMetrics
    private let current: ManagedAtomic<PoolSnapshot>

    init(index: Int, configuration: PoolConfiguration, metrics: GatewayMetrics) {
        self.index = index
        self.configuration = configuration
        switch configuration.policy {
        case .roundRobin:
            self.policy = RoundRobinPolicy()
        }
        self.upstreamSettings = UpstreamSettings(configuration)
        self.metrics = metrics.pool(configuration.name)
        let replicas = configuration.replicas.map { Replica(id: $0) }
        self.current = ManagedAtomic(PoolSnapshot(replicas: replicas, generation: 1))
    }

    var name: String { configuration.name }

    var snapshot: PoolSnapshot { current.load(ordering: .acquiring) }

    /// Swaps in a new membership. Replicas present in both keep their objects (and counters).
    func setMembers(_ ids: [ReplicaID]) {
        let old = snapshot
        let replicas = ids.map { id in old.replica(id) ?? Replica(id: id) }
        current.store(PoolSnapshot(replicas: replicas, generation: old.generation + 1), ordering: .releasing)
    }

    func pick(_ facts: RoutingFacts, now: NIODeadline) -> Replica? {
        policy.pick(facts, in: snapshot, now: now.uptimeNanoseconds)
    }
}
