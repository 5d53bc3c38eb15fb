/// A server that handles one batch at a time, first come first served (an embedding model or a
/// small classifier on one device): a batch starts when the one before it ends, so queueing
/// appears as soon as batches arrive faster than they are served.
public struct SerialServerModel: Sendable {
    /// When the last admitted batch ends (in the caller's clock).
    public private(set) var busyUntil: Duration = .zero

    public init() {}

    /// Admits a batch arriving at `now` and costing `cost`; returns when it ends.
    public mutating func admit(cost: Duration, at now: Duration) -> Duration {
        let start = max(now, busyUntil)
        busyUntil = start + cost
        return busyUntil
    }

    /// Batches still queued or running at `now` would end by `busyUntil`; this is how long.
    public func backlog(at now: Duration) -> Duration {
        max(.zero, busyUntil - now)
    }
}
