/// When to send a batch, and how big batches may grow: the adaptive policy of gateway batching
/// (issue 7), pure, with the clock passed in.
///
/// A batch is sent when the first of these holds:
/// - it reached the current **cap**;
/// - its oldest request has waited **`max_wait`**;
/// - a replica it could go to is **idle** (never hold a request while the replica it would go
///   to has nothing to do: batching must not add latency at low load).
///
/// The cap adapts to the latency each batch took, AIMD as in Clipper: while batches finish
/// under `target_latency` the cap grows by `increase` (additively), and a batch over the target
/// cuts it by `decrease` (multiplicatively), within `1...max_batch`. So the cap settles just
/// below the size at which a batch's latency reaches the target.
public struct BatchController: Sendable, Equatable {
    public struct Policy: Sendable, Equatable {
        public var maxBatch: Int
        /// Nanoseconds the oldest request may wait for others.
        public var maxWait: UInt64
        /// Nanoseconds a batch may take upstream.
        public var targetLatency: UInt64
        public var increase: Int
        public var decrease: Double

        public init(maxBatch: Int, maxWait: UInt64, targetLatency: UInt64, increase: Int = 1, decrease: Double = 0.5) {
            precondition(maxBatch >= 1 && increase >= 1 && decrease > 0 && decrease < 1)
            self.maxBatch = maxBatch
            self.maxWait = maxWait
            self.targetLatency = targetLatency
            self.increase = increase
            self.decrease = decrease
        }
    }

    /// Why a batch goes now.
    public enum Trigger: String, Sendable, Equatable, CaseIterable {
        /// It reached the cap.
        case full
        /// Its oldest request waited `max_wait`.
        case waited
        /// A replica is idle.
        case idleReplica = "idle_replica"
    }

    public let policy: Policy
    /// The current size cap.
    public private(set) var cap: Int

    /// Starts at `initialCap` (default: a quarter of `max_batch`, at least 1), so the first
    /// batches probe upwards instead of overshooting the target.
    public init(policy: Policy, initialCap: Int? = nil) {
        self.policy = policy
        self.cap = min(policy.maxBatch, max(1, initialCap ?? policy.maxBatch / 4))
    }

    /// Whether a batch of `size` requests, the oldest enqueued at `oldest`, goes at `now`.
    /// - Parameter idleReplica: a replica the batch could go to has no request in progress.
    public func shouldSend(size: Int, oldest: UInt64, now: UInt64, idleReplica: Bool) -> Trigger? {
        guard size > 0 else { return nil }
        if size >= cap { return .full }
        if idleReplica { return .idleReplica }
        if now >= oldest, now - oldest >= policy.maxWait { return .waited }
        return nil
    }

    /// When a batch whose oldest request came at `oldest` must go at the latest (its timer).
    public func deadline(oldest: UInt64) -> UInt64 {
        oldest &+ policy.maxWait
    }

    /// Adapts the cap to a batch of `size` that took `latency` nanoseconds upstream. Only a
    /// batch that filled the cap can tell whether the cap may grow (a small batch under the
    /// target says nothing about a bigger one); any batch over the target cuts it.
    public mutating func record(size: Int, latency: UInt64) {
        if latency > policy.targetLatency {
            cap = max(1, Int((Double(cap) * policy.decrease).rounded(.down)))
        } else if size >= cap {
            cap = min(policy.maxBatch, cap + policy.increase)
        }
    }
}
