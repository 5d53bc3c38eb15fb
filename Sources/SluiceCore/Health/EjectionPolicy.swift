/// Passive health: a replica that fails to connect `consecutiveFailures` times in a row is taken out
/// of rotation for `duration`, then tried again (like Envoy's outlier detection on
/// `consecutive_gateway_failure`, without the percentage guard: a small fleet has no spare
/// replicas to keep a panic threshold meaningful).
public struct EjectionPolicy: Sendable, Equatable {
    public var consecutiveFailures: Int
    /// Nanoseconds.
    public var duration: UInt64

    public init(consecutiveFailures: Int = 3, duration: UInt64 = 10_000_000_000) {
        self.consecutiveFailures = consecutiveFailures
        self.duration = duration
    }
}
