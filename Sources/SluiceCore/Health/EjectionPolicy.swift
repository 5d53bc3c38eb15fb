/// Passive health (Envoy's outlier detection): a replica that fails `consecutiveFailures`
/// requests in a row (no connection, closed before answering, no answer head in time), or more
/// than `failureRate` of at least `failureRateMinRequests` requests in an interval, is taken out
/// of rotation. The n-th ejection in a row lasts `duration × n`, at most `maxDuration` (a replica
/// that keeps failing stays out longer; the count goes down by one for each interval it spends
/// in rotation). At most `maxEjectedPercent` of a pool is out at once, and always one may be (a
/// pool of one or two replicas still sheds a dead one).
public struct EjectionPolicy: Sendable, Equatable {
    public var consecutiveFailures: Int
    /// Nanoseconds: the first ejection's length.
    public var duration: UInt64
    /// Nanoseconds: the longest an ejection grows to.
    public var maxDuration: UInt64
    public var maxEjectedPercent: Int
    /// The share of an interval's requests that failed, past which the replica is ejected; nil: off.
    public var failureRate: Double?
    public var failureRateMinRequests: Int

    public init(
        consecutiveFailures: Int = 3, duration: UInt64 = 10_000_000_000, maxDuration: UInt64 = 300_000_000_000,
        maxEjectedPercent: Int = 50, failureRate: Double? = nil, failureRateMinRequests: Int = 20
    ) {
        self.consecutiveFailures = consecutiveFailures
        self.duration = duration
        self.maxDuration = maxDuration
        self.maxEjectedPercent = maxEjectedPercent
        self.failureRate = failureRate
        self.failureRateMinRequests = failureRateMinRequests
    }

    /// How long the `ejections`-th ejection in a row lasts (from 1).
    public func duration(ejection ejections: Int) -> UInt64 {
        let multiplied = duration.multipliedReportingOverflow(by: UInt64(max(1, ejections)))
        return multiplied.overflow ? maxDuration : min(multiplied.partialValue, max(duration, maxDuration))
    }

    /// Whether one more replica may go out while `ejected` of `total` are.
    public func mayEject(ejected: Int, total: Int) -> Bool {
        ejected == 0 || (ejected + 1) * 100 <= maxEjectedPercent * total
    }

    /// Whether an interval with these counts ejects the replica by its failure rate.
    public func failureRateTooHigh(successes: Int, failures: Int) -> Bool {
        guard let failureRate, successes + failures >= max(1, failureRateMinRequests) else { return false }
        return Double(failures) > failureRate * Double(successes + failures)
    }
}
