import NIOCore
import SluiceConfig
import SluiceCore
import Synchronization

/// One configured pool at run time: its policy, its current membership (an immutable snapshot,
/// copied out under a lock held for one retain and then read without any) and its metrics.
final class PoolRuntime: Sendable {
    let index: Int
    let configuration: PoolConfiguration
    let policy: any BalancingPolicy
    let upstreamSettings: UpstreamSettings
    /// Why the pool's upstream TLS did not load (`Gateway.start` refuses to start then).
    let upstreamError: UpstreamTLS.LoadError?
    let metrics: PoolMetrics
    /// `max_concurrent_per_replica` and the wait queue; nil when the pool has no cap.
    let gate: PoolGate?
    /// The latency signal and scale advisor; nil when the pool has no `scaling`.
    let scaling: PoolScaling?
    /// Gateway batching; nil when the pool has no `batching`.
    let batcher: Batcher?
    /// The current membership. A `Mutex` rather than an atomic: `Atomic` cannot hold a strong
    /// class reference (a reader could load it just as a writer releases the last reference), and
    /// the critical section here is one retain, so readers never wait behind real work.
    private let current: Mutex<PoolSnapshot>
    let poolLoad: PoolLoad
    /// Retries in progress, for the retry budget (`RetryPolicy.withinBudget`).
    let retriesInFlight = Atomic<Int>(0)
    /// Serializes membership changes (admin calls and reloads may race), so each builds on the
    /// snapshot the previous one stored; picks never take it.
    private let membershipLock = Mutex(())

    init(
        index: Int, configuration: PoolConfiguration, client: BackgroundHTTPClient, metrics: GatewayMetrics,
        clock: @escaping @Sendable () -> NIODeadline = { .now() }, notify: (@Sendable (String) -> Void)? = nil,
        provider: ProviderCredentials? = nil
    ) {
        self.clock = clock
        self.provider = provider
        self.notify = notify
        self.index = index
        self.configuration = configuration
        let routing = configuration.routing
        // Reports older than three scrape intervals no longer count.
        let staleAfter = UInt64(max(1, routing.scrapeInterval.nanoseconds * 3))
        let leastQueue = LeastQueuePolicy(exactUpTo: 16, staleAfter: staleAfter)
        switch routing.policy {
        case .roundRobin: self.policy = RoundRobinPolicy()
        case .random: self.policy = RandomPolicy()
        case .leastQueue: self.policy = leastQueue
        case .consistentHash: self.policy = ConsistentHashPolicy(loadFactor: routing.loadFactor, fallback: leastQueue)
        case .cacheAware:
            var settings = CacheAwarePolicy.Settings()
            settings.maxQueue = routing.maxQueue
            settings.slots = routing.slots
            settings.loadFactor = routing.loadFactor
            settings.maxPendingPrefillBytes = routing.maxPendingPrefill
            settings.moveAfter = UInt64(max(0, routing.moveAfter.nanoseconds))
            settings.matchThreshold = routing.matchThreshold
            settings.placeByRing = routing.placement == .ring
            self.policy = CacheAwarePolicy(
                settings, leastQueue: leastQueue, index: PromptIndex(capacity: routing.promptIndexBlocks))
        }
        do {
            self.upstreamSettings = try UpstreamSettings(configuration)
            self.upstreamError = nil
        } catch {
            self.upstreamSettings = UpstreamSettings(
                maxConnections: configuration.upstream.maxConnections, keepaliveIdle: .seconds(4), connectTimeout: .seconds(2))
            self.upstreamError = error
        }
        self.metrics = metrics.pool(configuration.name)
        let upstream = upstreamSettings
        self.batcher = configuration.batching.map { Batcher($0, pool: configuration.name, client: client, metrics: metrics, upstream: upstream) }
        self.scaling = configuration.scaling.map { PoolScaling($0, pool: configuration.name, metrics: metrics) }
        // (A pool that scales from zero queues requests for its first replica, uncapped.)
        let limit = configuration.maxConcurrentPerReplica ?? (configuration.scaling?.minReplicas == 0 ? Int.max : nil)
        self.gate = limit.map { limit in
            PoolGate(limit: limit, queue: configuration.queue, pool: configuration.name, metrics: metrics, clock: clock)
        }
        let poolLoad = PoolLoad()
        self.poolLoad = poolLoad
        let replicas = configuration.replicas.map { Self.replica($0, poolLoad: poolLoad, configuration) }
        self.current = Mutex(PoolSnapshot(replicas: replicas, generation: 1, withRing: policy.needsRing, poolLoad: poolLoad))
    }

    var name: String { configuration.name }
    /// The data path's clock, for decisions made off an exchange's loop (a slot freed, a member
    /// relocated): the event loops' in production, a manual one in tests.
    let clock: @Sendable () -> NIODeadline
    /// The hosted provider this pool's replica is (`provider:`): its host and key.
    let provider: ProviderCredentials?
    /// Tells the chat room of ejections (`ChatNotifier`).
    private let notify: (@Sendable (String) -> Void)?

    /// The membership now. A decision reads one copy throughout, so a membership change in the
    /// middle of it cannot show it two different replica lists.
    var snapshot: PoolSnapshot { current.withLock { $0 } }

    /// Swaps in a new membership. Replicas present in both keep their objects (and counters);
    /// requests already sent to a removed replica hold its object and finish undisturbed.
    func setMembers(_ ids: [ReplicaID]) {
        membershipLock.withLock { _ in swap(to: ids) }
    }

    /// Adds a replica at the end of the list; false if it is already a member.
    func add(_ id: ReplicaID) -> Bool {
        membershipLock.withLock { _ in
            let ids = snapshot.replicas.map(\.id)
            guard !ids.contains(id) else { return false }
            swap(to: ids + [id])
            return true
        }
    }

    /// Removes a replica; false if it is not a member.
    func remove(_ id: ReplicaID) -> Bool {
        membershipLock.withLock { _ in
            let ids = snapshot.replicas.map(\.id)
            guard ids.contains(id) else { return false }
            swap(to: ids.filter { $0 != id })
            return true
        }
    }

    private static func replica(_ id: ReplicaID, poolLoad: PoolLoad, _ configuration: PoolConfiguration) -> Replica {
        Replica(id: id, poolLoad: poolLoad, checked: configuration.healthCheck != nil, countsOutcomes: configuration.ejection.failureRate != nil)
    }

    /// Whether one more replica may be ejected at `now` (`health.max_ejected_percent`).
    func mayEject(at now: UInt64) -> Bool {
        let replicas = snapshot.replicas
        return configuration.ejection.mayEject(ejected: replicas.reduce(0) { $0 + ($1.isEjected(at: now) ? 1 : 0) }, total: replicas.count)
    }

    private func swap(to ids: [ReplicaID]) {
        let old = snapshot
        guard ids != old.replicas.map(\.id) else { return }
        // A removed replica leaves the pool's running total when its last request ends.
        // (A new replica waits for its first passing check, when the pool runs checks.)
        let replicas = ids.map { id in old.replica(id) ?? Self.replica(id, poolLoad: poolLoad, configuration) }
        let new = PoolSnapshot(replicas: replicas, generation: old.generation + 1, withRing: policy.needsRing, poolLoad: poolLoad)
        // Built outside the lock (the ring may take a while); stored under it.
        current.withLock { $0 = new }
        // A new replica has free slots.
        gate?.dispatch(new)
    }

    /// Takes a slot on `replica` outside the queue (a retry elsewhere): false when it is at
    /// `max_concurrent_per_replica`.
    func start(_ replica: Replica) -> Bool {
        guard let gate else {
            replica.requestStarted()
            return true
        }
        return replica.tryStart(limit: gate.limit)
    }

    /// Gives back a finished request's slot on `replica` (and hands it to a waiter, if any).
    func release(_ replica: Replica) {
        if let gate {
            gate.release(replica, snapshot: snapshot)
        } else {
            replica.requestFinished()
        }
    }

    func pick(_ facts: RoutingFacts, now: NIODeadline) -> RoutingChoice? {
        guard let choice = policy.choose(facts, in: snapshot, now: now.uptimeNanoseconds) else { return nil }
        metrics.recordRouting(choice.reason)
        if choice.reason == .cachePlacement || choice.reason == .cacheMove { tellOthers(facts, choice.replica) }
        return choice
    }

    /// Instances that share placements (`routing.shared`) hear where this one put a conversation.
    private func tellOthers(_ facts: RoutingFacts, _ replica: Replica) {
        guard let gossip = gossip.withLock({ $0 }), let conversation = CacheAwarePolicy.conversation(of: facts) else { return }
        gossip.publish(conversation: conversation, replica: replica.hashKey)
    }

    /// Set once at start when the pool shares placements.
    let gossip = Mutex<PlacementGossip?>(nil)

    /// Tells the policy when a request goes elsewhere than it chose (the chosen replica was at
    /// the pool's cap, or failed to connect), so what it remembers is where the cache really is.
    func noteDestination(of exchange: Exchange, _ replica: Replica) {
        // A spill is one request elsewhere by design: its conversation stays where it was.
        guard let picked = exchange.picked, exchange.pickedReason != .cacheSpill,
              (exchange.recordedReplica ?? picked.replica) !== replica
        else { return }
        exchange.recordedReplica = replica
        policy.relocated(picked.facts, to: replica, now: clock().uptimeNanoseconds)
        tellOthers(picked.facts, replica)
    }

    /// Another available replica than `failed`, for the one retry after a failed connect: the
    /// least loaded of the others (not counted as a routing decision; the first one was).
    func pickOther(than failed: Replica, now: NIODeadline) -> Replica? {
        leastLoaded(now: now, excluding: failed)
    }

    /// The least loaded available replica (a shadow copy's, a retry's), not counted as a
    /// routing decision.
    func leastLoaded(now: NIODeadline, excluding excluded: Replica? = nil) -> Replica? {
        let instant = now.uptimeNanoseconds
        let staleAfter = UInt64(max(1, configuration.routing.scrapeInterval.nanoseconds * 3))
        return snapshot.replicas
            .filter { $0 !== excluded && $0.isAvailable(at: instant) }
            .min { $0.load(at: instant, staleAfter: staleAfter) < $1.load(at: instant, staleAfter: staleAfter) }
    }

    /// `replica` was taken out of rotation by passive health: counted, and told to the chat room.
    func ejected(_ replica: Replica, reason: Replica.EjectionReason) {
        metrics.recordEjection(reason)
        notify?("Pool \(name): replica \(replica.id) ejected (\(reason.name.replacingOccurrences(of: "_", with: " ")))")
    }

    /// Whether routing reads the body (a `body:user` or `prefix` key source).
    var keyNeedsBody: Bool { configuration.routing.key.contains { $0.needsBody } }

}
