import Synchronization

/// Tenant limits as a policy, for one gateway instance: a request's head is let in by
/// `max_concurrent` then `requests_per_minute` (GCRA), its body by token and per-model limits,
/// all or none; the rate may be shared with other instances through a `SharedLimitStore`.
///
/// - A concurrency refusal spends nothing from the rate, in shadow mode too.
/// - Shadow mode lets every request in, and reports (`LimitOutcome.Decision.shadowRefused`)
///   what enforcing would refuse; a refused limit charges nothing.
/// - A shared refusal is remembered until its retry time, so a tenant over its limit costs no
///   round trip; after a failed shared decision the store is not asked for `backendRetry`, and
///   `onBackendFailure` decides meanwhile.
///
/// Pure: time comes in as monotonic nanoseconds (`now`), the store as an argument; each
/// tenant's counters are under their own lock, so instances of the data path on several threads
/// share one policy. Outcomes are values (`LimitOutcome`); the gateway renders and counts them.
public final class TenantPolicy: Sendable {
    /// A class, so the lock is shared by every reference to the tenant.
    public final class Tenant: Sendable {
        public let quota: TenantQuota
        let state: Mutex<TenantLimitState>

        init(_ quota: TenantQuota, instances: Int) {
            self.quota = quota
            self.state = Mutex(TenantLimitState(quota, instances: instances))
        }
    }

    public let tenants: [Tenant]
    public let shadow: Bool
    /// How many instances share the limits: a fallback limit is this one's share.
    public let instances: Int
    public let onBackendFailure: BackendFailureMode
    /// Until when the shared store is not asked (monotonic ns): during an outage requests do not
    /// each wait for the store to fail.
    let backendDownUntil = Atomic<UInt64>(0)
    /// How long the store is left alone after a failed decision.
    public static let backendRetry: UInt64 = 250_000_000
    /// The retry time given with a concurrency or backend refusal.
    static let second: UInt64 = 1_000_000_000

    public init(_ quotas: [TenantQuota], instances: Int = 1, shadow: Bool = false, onBackendFailure: BackendFailureMode = .local) {
        let instances = max(1, instances)
        self.tenants = quotas.map { Tenant($0, instances: instances) }
        self.instances = instances
        self.shadow = shadow
        self.onBackendFailure = onBackendFailure
    }

    /// A copy of `tenant`'s counters.
    public func state(of tenant: Int) -> TenantLimitState {
        tenants[tenant].state.withLock { $0 }
    }

    /// Decides a request's head in this process: concurrency, then the request rate. Let in, it
    /// holds a concurrency slot until `release`.
    public func admit(tenant index: Int, now: UInt64) -> LimitOutcome {
        let quota = tenants[index].quota
        return tenants[index].state.withLock { state in
            var windows: [RateLimitHeaders.Window] = []
            var refusal: (limit: LimitOutcome.Limit, retryAfter: UInt64)?
            if let limit = quota.maxConcurrent, state.inFlight >= limit {
                refusal = (.concurrency, Self.second)
            }
            if let rate = quota.requestsPerMinute, let requests = state.requests {
                if refusal != nil {
                    // Not charged, and the window says where the rate stands without it.
                    windows.append(Self.requestsWindow(rate, remaining: requests.remaining(at: now), resetAfter: requests.tat > now ? requests.tat - now : 0))
                } else {
                    let decision = state.requests!.admit(now: now)
                    windows.append(Self.requestsWindow(rate, decision))
                    if !decision.allowed { refusal = (.requests, decision.retryAfter) }
                }
            }
            guard let refusal else {
                state.inFlight += 1
                return LimitOutcome(.admitted, windows: windows)
            }
            if shadow {
                state.inFlight += 1
                return LimitOutcome(.shadowRefused, refusedBy: refusal.limit, windows: windows)
            }
            let decision: LimitOutcome.Decision = refusal.limit == .concurrency ? .refusedConcurrency : .refusedRate
            return LimitOutcome(decision, refusedBy: refusal.limit, windows: windows, retryAfter: refusal.retryAfter)
        }
    }

    /// Gives back the concurrency slot of a request let in.
    public func release(tenant index: Int) {
        tenants[index].state.withLock { $0.inFlight = max(0, $0.inFlight - 1) }
    }

    static func requestsWindow(_ rate: Int, _ decision: GCRA.Decision) -> RateLimitHeaders.Window {
        requestsWindow(rate, remaining: decision.remaining, resetAfter: decision.resetAfter)
    }

    static func requestsWindow(_ rate: Int, remaining: Int, resetAfter: UInt64) -> RateLimitHeaders.Window {
        RateLimitHeaders.Window(name: "requests", limit: rate, remaining: remaining, resetAfter: resetAfter)
    }
}
