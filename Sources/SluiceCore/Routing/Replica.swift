import Synchronization

/// One model-server replica as the gateway sees it: an address plus the live counters that
/// balancing policies read. Counters are atomics so that a pick never takes a lock; the object is
/// shared by every pool snapshot that lists the replica, so counts survive membership changes.
public final class Replica: Sendable {
    public let id: ReplicaID
    private let inFlightCount = Atomic<Int>(0)
    private let sentCount = Atomic<Int>(0)
    private let failures = Atomic<Int>(0)
    /// Monotonic nanoseconds until which the replica is out of rotation; 0 when it is in.
    private let ejectedUntilNanos = Atomic<UInt64>(0)
    private let drainingFlag = Atomic<Bool>(false)
    /// The pool-wide in-flight total this replica's requests also count in (bounded loads need
    /// the total on every pick; summing every replica would cost O(N)).
    public let poolLoad: PoolLoad?
    /// The identity as one number (`HashRing.hash` of the address): what `AffinityTable` stores,
    /// equal across snapshots and gateway instances.
    public let hashKey: UInt64

    /// - Parameters:
    ///   - checked: its pool runs active health checks: it starts `pending`, out of rotation
    ///     until its first check passes.
    ///   - countsOutcomes: its pool ejects by failure rate: requests' outcomes are counted.
    public init(id: ReplicaID, poolLoad: PoolLoad? = nil, checked: Bool = false, countsOutcomes: Bool = false) {
        self.id = id
        self.poolLoad = poolLoad
        self.hashKey = HashRing.hash(id.description)
        self.checkState = Atomic(checked ? ActiveHealth.State.pending.code : ActiveHealth.State.healthy.code)
        self.countsOutcomes = countsOutcomes
    }

    /// Requests the gateway has sent to this replica and not yet finished.
    public var inFlight: Int { inFlightCount.load(ordering: .relaxed) }

    public var consecutiveFailures: Int { failures.load(ordering: .relaxed) }

    /// A draining replica takes no new requests; its in-flight ones finish.
    public var isDraining: Bool {
        get { drainingFlag.load(ordering: .relaxed) }
    }

    public func setDraining(_ draining: Bool) {
        drainingFlag.store(draining, ordering: .relaxed)
    }

    /// Call once when a request is committed to this replica; pair with exactly one
    /// `requestFinished()` on every path (success, error, cancellation).
    public func requestStarted() {
        inFlightCount.wrappingAdd(1, ordering: .relaxed)
        poolLoad?.started()
    }

    /// `requestStarted()` only while fewer than `limit` requests are in flight (a pool's
    /// `max_concurrent_per_replica`): the check and the count are one atomic step, so the cap
    /// holds however many event loops race for the last slot.
    public func tryStart(limit: Int) -> Bool {
        var current = inFlightCount.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = inFlightCount.compareExchange(
                expected: current, desired: current + 1, ordering: .sequentiallyConsistent)
            if exchanged {
                poolLoad?.started()
                return true
            }
            current = original
        }
        return false
    }

    public func requestFinished() {
        inFlightCount.wrappingSubtract(1, ordering: .relaxed)
        poolLoad?.finished()
    }

    /// A request (or a retry of one) was written to this replica. Counted here, not at
    /// `requestFinished()`, which also gives back slots a queue took but handed to no one.
    public func requestSent() {
        sentCount.wrappingAdd(1, ordering: .relaxed)
    }

    /// Requests sent to this replica: the status page's share of requests.
    public var sent: Int { sentCount.load(ordering: .relaxed) }

    public func isEjected(at now: UInt64) -> Bool {
        ejectedUntilNanos.load(ordering: .relaxed) > now
    }

    /// Whether a policy may send a new request here at `now`.
    public func isAvailable(at now: UInt64) -> Bool {
        !isDraining && !isEjected(at: now) && checkState.load(ordering: .relaxed) == ActiveHealth.State.healthy.code
    }

    /// The replica answered (its response head arrived).
    public func recordSuccess() {
        if countsOutcomes { successCount.wrappingAdd(1, ordering: .relaxed) }
        if failures.load(ordering: .relaxed) != 0 {
            failures.store(0, ordering: .relaxed)
        }
    }

    /// Records a failed request (no connection, closed before answering, no answer in time).
    /// At `consecutiveFailures` in a row the replica is ejected, if `mayEject` (the pool's share
    /// already out) allows. Returns true when this failure ejected it.
    @discardableResult
    public func recordFailure(at now: UInt64, policy: EjectionPolicy, mayEject: () -> Bool = { true }) -> Bool {
        if countsOutcomes { failureCount.wrappingAdd(1, ordering: .relaxed) }
        let count = failures.wrappingAdd(1, ordering: .relaxed).newValue
        guard count >= policy.consecutiveFailures, !isEjected(at: now), mayEject() else { return false }
        eject(at: now, policy: policy, reason: .consecutiveFailures)
        return true
    }

    /// Why a replica was last ejected.
    public enum EjectionReason: UInt8, Sendable {
        case consecutiveFailures = 1
        case failureRate = 2

        public var name: String { self == .consecutiveFailures ? "consecutive_failures" : "failure_rate" }
    }

    /// Takes the replica out of rotation for its next ejection's length (`EjectionPolicy`).
    public func eject(at now: UInt64, policy: EjectionPolicy, reason: EjectionReason) {
        failures.store(0, ordering: .relaxed)
        let count = ejectionCount.wrappingAdd(1, ordering: .relaxed).newValue
        lastEjection.store(reason.rawValue, ordering: .relaxed)
        ejectedUntilNanos.store(now &+ policy.duration(ejection: count), ordering: .relaxed)
    }

    /// Ends a passive ejection now (the replica passed an active check: it answers again).
    /// Returns whether it was ejected.
    @discardableResult
    public func restore(at now: UInt64) -> Bool {
        guard isEjected(at: now) else { return false }
        ejectedUntilNanos.store(0, ordering: .relaxed)
        return true
    }

    /// An outlier interval went by: one spent in rotation lowers the next ejection's length
    /// by one step.
    public func intervalPassed(at now: UInt64) {
        guard !isEjected(at: now), ejectionCount.load(ordering: .relaxed) > 0 else { return }
        ejectionCount.wrappingSubtract(1, ordering: .relaxed)
    }

    /// The requests answered and failed since the last call (counted only with `countsOutcomes`).
    public func takeOutcomes() -> (successes: Int, failures: Int) {
        (successCount.exchange(0, ordering: .relaxed), failureCount.exchange(0, ordering: .relaxed))
    }

    /// Ejected-until instant, for the admin view (0 when in rotation).
    public var ejectedUntil: UInt64 { ejectedUntilNanos.load(ordering: .relaxed) }
    /// Ejections in a row so far (what the next one's length is multiplied by, less one).
    public var ejections: Int { ejectionCount.load(ordering: .relaxed) }
    public var lastEjectionReason: EjectionReason? { EjectionReason(rawValue: lastEjection.load(ordering: .relaxed)) }

    /// Where its pool's active checks stand (`healthy` when the pool runs none).
    public var checkHealth: ActiveHealth.State { ActiveHealth.State(code: checkState.load(ordering: .relaxed)) }

    public func setCheckHealth(_ state: ActiveHealth.State) {
        checkState.store(state.code, ordering: .relaxed)
    }

    private let checkState: Atomic<UInt8>
    private let countsOutcomes: Bool
    private let successCount = Atomic<Int>(0)
    private let failureCount = Atomic<Int>(0)
    private let ejectionCount = Atomic<Int>(0)
    private let lastEjection = Atomic<UInt8>(0)

    private let reportedWaitingCount = Atomic<Int>(0)
    private let reportedAtNanos = Atomic<UInt64>(0)

    /// Records the queue the replica itself reported (`vllm:num_requests_waiting`) at `now`.
    public func recordReportedQueue(waiting: Int, at now: UInt64) {
        reportedWaitingCount.store(min(max(0, waiting), 1 << 30), ordering: .relaxed)
        reportedAtNanos.store(now, ordering: .relaxed)
    }

    /// The replica's reported waiting queue, or 0 once the report is older than `staleAfter`
    /// nanoseconds (a replica that stopped reporting must not keep repelling traffic).
    public func reportedWaiting(at now: UInt64, staleAfter: UInt64) -> Int {
        let at = reportedAtNanos.load(ordering: .relaxed)
        // (A report newer than `now`, from a scrape during this pick, is fresh.)
        guard at != 0, at >= now || now - at <= staleAfter else { return 0 }
        return reportedWaitingCount.load(ordering: .relaxed)
    }

    private let reportedRunningCount = Atomic<Int>(0)
    private let learntSlots = Atomic<Int>(0)

    /// Records the sequences the replica reports running (`vllm:num_requests_running`) with the
    /// waiting queue of the same report, and learns its running slots: while requests wait, the
    /// running count is the replica's limit; otherwise it is a lower bound of it.
    public func recordReportedRunning(_ running: Int, waiting: Int) {
        let running = min(max(0, running), 1 << 30)
        reportedRunningCount.store(running, ordering: .relaxed)
        if waiting > 0, running > 0 {
            learntSlots.store(running, ordering: .relaxed)
        } else if running > learntSlots.load(ordering: .relaxed) {
            learntSlots.store(running, ordering: .relaxed)
        }
    }

    /// The replica's running slots as learnt from its reports (0 until it has reported a
    /// running sequence).
    public var slots: Int { learntSlots.load(ordering: .relaxed) }

    private let pendingPrefill = Atomic<Int>(0)
    private let pendingPrefillCount = Atomic<Int>(0)

    /// Prompt bytes the gateway sent here that the replica has not cached (as far as the
    /// gateway's prompt index knows) and whose answers have not started: the prefill work
    /// waiting on this replica (llm-d's token-load signal: a cache miss costs prefill).
    public var pendingPrefillBytes: Int { pendingPrefill.load(ordering: .relaxed) }

    /// How many requests those bytes belong to.
    public var pendingPrefillRequests: Int { pendingPrefillCount.load(ordering: .relaxed) }

    /// Counts a request's uncached prompt bytes (sent) or stops counting them (its answer
    /// began, or it ended: negative).
    public func addPendingPrefill(_ bytes: Int) {
        guard bytes != 0 else { return }
        pendingPrefill.wrappingAdd(bytes, ordering: .relaxed)
        pendingPrefillCount.wrappingAdd(bytes > 0 ? 1 : -1, ordering: .relaxed)
    }

    /// Whether the replica has been saturated for a while: cache-aware routing moves a
    /// conversation off its replica only after that (`SaturationTracker`).
    public let saturation = SaturationTracker()

    /// What least-queue compares: the gateway's own in-flight requests plus the queue the
    /// replica reports (fresh reports only).
    public func load(at now: UInt64, staleAfter: UInt64) -> Int {
        inFlight + reportedWaiting(at: now, staleAfter: staleAfter)
    }
}

/// A pool's total in-flight requests, kept by its replicas as they start and finish requests.
public final class PoolLoad: Sendable {
    private let total = Atomic<Int>(0)

    public init() {}

    public var inFlight: Int { total.load(ordering: .relaxed) }
    func started() { total.wrappingAdd(1, ordering: .relaxed) }
    func finished() { total.wrappingSubtract(1, ordering: .relaxed) }
}
