/// What a policy may know about a request: the few facts the gateway extracts, never headers.
public struct RoutingFacts: Sendable {
    /// An affinity key (session, tenant, prompt prefix) for hashing policies; nil when absent.
    public var key: String?

    public init(key: String? = nil) {
        self.key = key
    }
}

/// Chooses a replica for one request from an immutable snapshot.
///
/// A pick must not change in-flight counts: the caller commits with `Replica.requestStarted()`
/// once it has decided to send, so a pick that is abandoned costs nothing. `now` is monotonic
/// nanoseconds, passed in so tests are exact.
public protocol BalancingPolicy: Sendable {
    func pick(_ facts: RoutingFacts, in snapshot: PoolSnapshot, now: UInt64) -> Replica?
}
