import NIOCore
import Prometheus
import SluiceConfig
import SluiceCore
import Synchronization

/// A pool's `max_concurrent_per_replica` and its wait queue (`queue: {max, timeout}`); in a
/// pool that scales from zero (`scaling.min_replicas: 0`) without a cap, the queue where
/// requests wait for the first replica.
///
/// A request takes a *slot* on a replica: the one its routing policy picked if that replica has
/// room, else the least busy replica that has room (so a request waits only when **every**
/// available replica is at the cap). Otherwise it waits in a `FairQueue` (priority first, tenants
/// in turn within a priority, a deadline each); a full queue answers 503 at once. A slot freed by
/// a finished request goes straight to the next waiter, on the waiter's own event loop, and the
/// waiter goes to the replica it had been routed to if that one has room (affinity kept where it
/// costs nothing), else to the freed one. While anyone waits, new arrivals queue behind them
/// rather than take a slot first.
///
/// Without a waiter, entry is one compare-and-swap on the replica's in-flight count: no lock.
/// The lock is taken only to queue, to leave the queue, and to hand freed slots to waiters.
/// A request queuing and a slot being freed at the same instant cannot miss each other: each
/// side publishes its change, then a sequentially consistent fence, then looks at the other's
/// (the store-buffering pattern), so at least one of them dispatches.
///
/// Like HAProxy's `maxconn` + `timeout queue`, and unlike it in two ways: waiting requests are
/// served by priority and fairly across tenants, not first-come; and the cap is per gateway
/// process (several instances each allow `max_concurrent_per_replica`).
final class PoolGate: Sendable {
    struct Waiter: Sendable {
        /// The replica routing chose; tried first when a slot frees. Nil when no replica was in
        /// rotation (a pool scaled to zero): any that comes takes it.
        let preferred: Replica?
        let enqueuedAt: UInt64
        /// Hands the slot over; must hop to the waiter's event loop.
        let deliver: @Sendable (Replica) -> Void
    }

    enum Entry {
        /// A slot on this replica is taken (`requestStarted` done).
        case slot(Replica)
        /// Waiting; keep the ticket to leave the queue.
        case queued(FairQueue<Waiter>.Ticket)
        /// The queue is full: answer 503.
        case full
    }

    /// What became of requests that reached the queue, as counted in metrics.
    enum Outcome: String, CaseIterable {
        /// Queued, later given a slot.
        case dispatched
        /// Refused because the queue was full.
        case full
        /// Waited `queue.timeout` without a slot.
        case timeout
        /// The client left, or the request was answered otherwise, while waiting.
        case cancelled
    }

    let limit: Int
    let timeout: TimeAmount
    let fairness: QueueFairness
    /// `queue.headroom`: free slots the heaviest recent tenant leaves for the others while they are active.
    let headroom: Int
    /// A tenant is active while its last request is this recent (for `headroom`).
    static let activeWindow: UInt64 = 2_000_000_000
    /// The data path's clock (the event loops' in production; a manual one in tests).
    private let clock: @Sendable () -> NIODeadline
    private let queue: Mutex<FairQueue<Waiter>>
    private let waitingCount = Atomic<Int>(0)
    private let outcomes: [Counter]
    /// The same counts, readable (Prometheus counters are write-only): for `/readyz`.
    private let totals: AtomicArray<Int>
    private let wait: LatencyHistogram

    init(limit: Int, queue configuration: QueueConfiguration, pool: String, metrics: GatewayMetrics, clock: @escaping @Sendable () -> NIODeadline) {
        self.clock = clock
        self.limit = limit
        self.timeout = .nanoseconds(configuration.timeout.nanoseconds)
        self.queue = Mutex(FairQueue(capacity: configuration.max, fairness: configuration.fairness))
        self.fairness = configuration.fairness
        self.headroom = configuration.headroom
        self.outcomes = Outcome.allCases.map { outcome in
            metrics.registry.makeCounter(
                descriptor: .sluice("sluice_queue_requests_total", "Requests that had to wait for a replica slot, by what became of them."),
                labels: [("pool", pool), ("outcome", outcome.rawValue)])
        }
        self.totals = AtomicArray(repeating: 0, count: Outcome.allCases.count)
        self.wait = metrics.queueWait.makeSeries(labels: [("pool", pool)])
    }

    /// Requests waiting now.
    var waiting: Int { waitingCount.load(ordering: .relaxed) }

    /// Takes a slot for a request routed to `preferred`, or queues it. `cost`: the tokens it is
    /// expected to take (`fairness: tokens`), charged to its tenant when it gets its slot.
    func enter(
        preferred: Replica?, snapshot: PoolSnapshot, tenant: Int, priority: Int, now: UInt64, cost: Int = 1,
        deliver: @escaping @Sendable (Replica) -> Void
    ) -> Entry {
        if headroom > 0 { queue.withLock { $0.noteArrival(tenant: tenant, now: now, cost: cost) } }
        if waitingCount.load(ordering: .relaxed) == 0, let replica = takeSlot(preferring: preferred, in: snapshot, now: now) {
            charge(tenant: tenant, tokens: cost)
            return .slot(replica)
        }
        let waiter = Waiter(preferred: preferred, enqueuedAt: now, deliver: deliver)
        let deadline = now &+ UInt64(max(0, timeout.nanoseconds))
        let ticket = queue.withLock { queue -> FairQueue<Waiter>.Ticket? in
            let ticket = queue.enqueue(waiter, tenant: tenant, priority: priority, deadline: deadline, cost: cost)
            waitingCount.store(queue.count, ordering: .relaxed)
            return ticket
        }
        guard let ticket else {
            count(.full)
            return .full
        }
        // A slot freed between the first look and the enqueue must not be missed.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        dispatch(snapshot)
        return .queued(ticket)
    }

    /// Counts `tokens` as served to `tenant` (`fairness: tokens`; no lock taken otherwise): a
    /// request that took a slot without waiting, or the difference between a request's expected
    /// cost and the usage its replica reported.
    func charge(tenant: Int, tokens: Int) {
        guard fairness == .tokens, tokens != 0 else { return }
        queue.withLock { $0.charge(tenant: tenant, tokens: tokens) }
    }

    /// Tokens served to each tenant so far (`fairness: tokens`).
    var served: [Int: Double] { queue.withLock { $0.served } }

    /// Gives `replica`'s slot back (a request on it ended) and hands free slots to waiters.
    func release(_ replica: Replica, snapshot: PoolSnapshot) {
        replica.requestFinished()
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if waitingCount.load(ordering: .relaxed) > 0 { dispatch(snapshot) }
    }

    /// Takes a waiting request out (its client left, or it was answered); false when it is no
    /// longer queued (a slot is already on its way to it, and must be released on arrival).
    @discardableResult
    func leave(_ ticket: FairQueue<Waiter>.Ticket, timedOut: Bool = false) -> Bool {
        let removed = queue.withLock { queue -> Bool in
            let removed = queue.remove(ticket) != nil
            waitingCount.store(queue.count, ordering: .relaxed)
            return removed
        }
        if removed { count(timedOut ? .timeout : .cancelled) }
        return removed
    }

    /// Hands free slots to waiters, in the queue's order, while slots and waiters last. Called
    /// when a slot frees, a request queues, or membership or draining changes.
    func dispatch(_ snapshot: PoolSnapshot) {
        let now = clock().uptimeNanoseconds
        var handed: [(Waiter, Replica)] = []
        queue.withLock { queue in
            while !queue.isEmpty {
                // Any slot at all? (Checked before dequeuing, so a waiter is only taken out
                // with a slot in hand.)
                guard let free = takeSlot(preferring: nil, in: snapshot, now: now) else { break }
                guard let waiter = nextWaiter(&queue, snapshot: snapshot, now: now) else {
                    // Only the heaviest tenant waits, and this slot is headroom: kept free.
                    free.requestFinished()
                    break
                }
                var replica = free
                if let preferred = waiter.preferred, preferred !== free, preferred.isAvailable(at: now),
                   snapshot.replica(preferred.id) === preferred,  // still a member
                   preferred.tryStart(limit: limit) {
                    // The waiter's own replica has room too: it goes there, and the other slot
                    // is given back (no one else can be waiting for it: we hold the lock).
                    free.requestFinished()
                    replica = preferred
                }
                handed.append((waiter, replica))
            }
            waitingCount.store(queue.count, ordering: .relaxed)
        }
        for (waiter, replica) in handed {
            count(.dispatched)
            // (A waiter may have queued after `now` was read: no negative waits.)
            wait.record(nanoseconds: Int64(now > waiter.enqueuedAt ? now - waiter.enqueuedAt : 0))
            waiter.deliver(replica)
        }
    }

    /// The waiter to hand a slot just taken to. Within `headroom` free slots (counting that one),
    /// the tenant asking for the most tokens lately may not have it while another tenant is
    /// active: the slot stays for a lighter one, and nil is returned when none of those waits.
    private func nextWaiter(_ queue: inout FairQueue<Waiter>, snapshot: PoolSnapshot, now: UInt64) -> Waiter? {
        guard headroom > 0 else { return queue.dequeue() }
        var free = 1
        for replica in snapshot.replicas where replica.isAvailable(at: now) { free += max(0, limit - replica.inFlight) }
        guard free <= headroom, let heaviest = queue.heaviest(now: now, window: Self.activeWindow) else { return queue.dequeue() }
        return queue.dequeue { $0 != heaviest }
    }

    /// A slot on `preferred` if it has room, else on the least busy available replica with room.
    private func takeSlot(preferring preferred: Replica?, in snapshot: PoolSnapshot, now: UInt64) -> Replica? {
        if let preferred, preferred.isAvailable(at: now), preferred.tryStart(limit: limit) { return preferred }
        // A lost race for the last slot of one replica moves on to the next best.
        for _ in 0..<max(1, snapshot.replicas.count) {
            var best: Replica?
            var bestLoad = Int.max
            for replica in snapshot.replicas where replica.isAvailable(at: now) {
                let load = replica.inFlight
                if load < limit, load < bestLoad {
                    best = replica
                    bestLoad = load
                }
            }
            guard let best else { return nil }
            if best.tryStart(limit: limit) { return best }
        }
        return nil
    }

    /// How many requests ended their wait with `outcome` so far.
    func total(_ outcome: Outcome) -> Int {
        totals[Outcome.allCases.firstIndex(of: outcome)!].load(ordering: .relaxed)
    }

    private func count(_ outcome: Outcome) {
        totals[Outcome.allCases.firstIndex(of: outcome)!].wrappingAdd(1, ordering: .relaxed)
        outcomes[Outcome.allCases.firstIndex(of: outcome)!].increment()
    }
}
