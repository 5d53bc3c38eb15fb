/// When a failed request goes to a replica again, and how soon. A request that never reached a
/// replica (no connection) may always go again; one a replica had may only when repeating it
/// changes nothing there: an idempotent method, or a pool marked `idempotent` (inference that
/// has no side effects), as nginx's and HAProxy's defaults keep POSTs from being sent twice.
/// Retries are bounded by a budget (Envoy's `retry_budget`, Finagle's `RetryBudget`): at any time
/// at most `budgetPercent` of the pool's requests in flight may be retries, or `minRetries`,
/// whichever is more, so a failing fleet is not sent twice its load. Each retry waits a random
/// time up to `backoff` doubled per retry, at most `maxBackoff` (full jitter).
public struct RetryPolicy: Sendable, Equatable {
    /// Tries in all, the first included.
    public var attempts: Int
    public var idempotent: Bool
    public var budgetPercent: Int
    public var minRetries: Int
    /// Nanoseconds.
    public var backoff: UInt64
    /// Nanoseconds.
    public var maxBackoff: UInt64

    public init(
        attempts: Int = 2, idempotent: Bool = false, budgetPercent: Int = 20, minRetries: Int = 3, backoff: UInt64 = 25_000_000,
        maxBackoff: UInt64 = 250_000_000
    ) {
        self.attempts = attempts
        self.idempotent = idempotent
        self.budgetPercent = budgetPercent
        self.minRetries = minRetries
        self.backoff = backoff
        self.maxBackoff = maxBackoff
    }

    /// Whether a request that failed after `tries` tries may go again: `sent` says a replica
    /// may have read it (its bytes were written); `idempotentMethod` is the request's method's
    /// (GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
    public func mayRetry(tries: Int, sent: Bool, idempotentMethod: Bool) -> Bool {
        tries < attempts && (!sent || idempotentMethod || idempotent)
    }

    /// Whether the budget has room for one more retry while `retrying` retries and `active`
    /// requests are in flight in the pool.
    public func withinBudget(retrying: Int, active: Int) -> Bool {
        retrying < max(minRetries, active * budgetPercent / 100)
    }

    /// The wait before the `retry`-th retry (from 1), for a random draw `random` (uniform).
    public func delay(retry: Int, random: UInt64) -> UInt64 {
        let doubled = backoff << UInt64(min(max(0, retry - 1), 20))
        let cap = min(maxBackoff, doubled)
        return cap == 0 ? 0 : random % (cap + 1)
    }
}
