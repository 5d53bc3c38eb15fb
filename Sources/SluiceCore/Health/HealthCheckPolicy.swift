/// Active health checks for a pool: every `interval` (plus up to `jitter` of it at random, so
/// gateways and replicas do not fall into step) each replica is asked `GET path`; an answer
/// 2xx within `timeout` passes. `unhealthyAfter` failures in a row take a replica out;
/// `healthyAfter` passes in a row bring it back, and end a passive ejection at once (it is
/// known to answer again).
public struct HealthCheckPolicy: Sendable, Equatable {
    public var path: String
    /// Nanoseconds.
    public var interval: UInt64
    /// Nanoseconds.
    public var timeout: UInt64
    public var healthyAfter: Int
    public var unhealthyAfter: Int
    /// A share of `interval`, 0...1.
    public var jitter: Double

    public init(
        path: String = "/health", interval: UInt64 = 5_000_000_000, timeout: UInt64 = 2_000_000_000, healthyAfter: Int = 1,
        unhealthyAfter: Int = 2, jitter: Double = 0.1
    ) {
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.healthyAfter = healthyAfter
        self.unhealthyAfter = unhealthyAfter
        self.jitter = jitter
    }

    /// The wait before the next round, for a random draw `random` (uniform over UInt64).
    public func delay(random: UInt64) -> UInt64 {
        let spread = UInt64(Double(interval) * min(max(jitter, 0), 1))
        guard spread > 0 else { return interval }
        return interval + random % (spread + 1)
    }
}
