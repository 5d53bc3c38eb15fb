/// The generic cell rate algorithm (ATM Forum; Brandur Leach's "throttled" and Redis-cell use it
/// for API limits): one timestamp per limit, the *theoretical arrival time* (TAT) at which the
/// limit would be fully spent if every admitted unit were spaced exactly `interval` apart.
///
/// A request of `cost` units at `now` is admitted when it would not push the TAT more than
/// `burst × interval` past `now`. So over any window of length W the admitted units never exceed
/// `W / interval + burst` (`rate × window + burst`), exactly, with no buckets to align and no
/// background refill: a decision is a compare and an add, and the state is one integer, which
/// is also what makes the same rule cheap to run as one Redis script for many gateways.
///
/// Pure: time comes in as monotonic nanoseconds.
public struct GCRA: Sendable, Equatable {
    /// Nanoseconds one unit of the limit takes to come back (60 s / per-minute rate).
    public let interval: UInt64
    /// Units that may be spent at once from a full limit (at least 1).
    public let burst: Int
    /// The theoretical arrival time; a value in the past means the limit is full.
    public private(set) var tat: UInt64 = 0

    public init(perMinute rate: Int, burst: Int? = nil) {
        precondition(rate > 0)
        // Rounded up: a shorter interval would admit more than the rate.
        self.interval = max(1, (60_000_000_000 + UInt64(rate) - 1) / UInt64(rate))
        self.burst = max(1, burst ?? rate)
    }

    public struct Decision: Sendable, Equatable {
        public var allowed: Bool
        /// Units that could still be spent at once after this decision.
        public var remaining: Int
        /// Nanoseconds until a request of the same cost would be admitted (0 when allowed).
        public var retryAfter: UInt64
        /// Nanoseconds until the limit is full again.
        public var resetAfter: UInt64

        public init(allowed: Bool, remaining: Int, retryAfter: UInt64, resetAfter: UInt64) {
            self.allowed = allowed
            self.remaining = remaining
            self.retryAfter = retryAfter
            self.resetAfter = resetAfter
        }
    }

    var tolerance: UInt64 { interval &* UInt64(burst) }

    /// Decides a request of `cost` units (a cost above `burst` can never pass; it is refused
    /// with the time a full limit would need, so the caller can say so).
    public mutating func admit(cost: Int = 1, now: UInt64) -> Decision {
        let cost = UInt64(max(0, cost))
        let base = max(tat, now)
        let newTAT = base &+ cost &* interval
        let ahead = newTAT - now
        if ahead > tolerance {
            let retry = ahead - tolerance
            return Decision(allowed: false, remaining: remaining(at: now), retryAfter: retry, resetAfter: base - now)
        }
        tat = newTAT
        return Decision(allowed: true, remaining: Int((tolerance - ahead) / interval), retryAfter: 0, resetAfter: ahead)
    }

    /// Units that could be spent at once at `now`.
    public func remaining(at now: UInt64) -> Int {
        let ahead = tat > now ? tat - now : 0
        return ahead >= tolerance ? 0 : Int((tolerance - ahead) / interval)
    }

    /// Settles an earlier charge: `units` more (positive) or back (negative). A refund never
    /// moves the TAT before `now` (unused time does not bank beyond a full limit).
    public mutating func adjust(by units: Int, now: UInt64) {
        if units >= 0 {
            tat = max(tat, now) &+ UInt64(units) &* interval
        } else {
            let back = UInt64(-units) &* interval
            tat = tat > now &+ back ? tat - back : now
        }
    }
}
