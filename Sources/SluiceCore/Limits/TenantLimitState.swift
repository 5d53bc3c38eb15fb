/// One tenant's counters on this instance (`TenantPolicy` keeps each under its own lock).
public struct TenantLimitState: Sendable, Equatable {
    /// The request rate, when the tenant has one.
    public internal(set) var requests: GCRA?
    /// This instance's share of it (`limit / instances`), used while the shared store fails.
    public internal(set) var fallback: GCRA?
    /// Requests let in and not yet released.
    public internal(set) var inFlight = 0
    /// Until when the shared store's last refusal holds (monotonic ns), and when it said the
    /// limit is full again: requests before then are refused here, without asking (other
    /// instances can only move the limit's TAT later, never earlier, so the store would refuse
    /// too).
    public internal(set) var refusedUntil: UInt64 = 0
    public internal(set) var refusedReset: UInt64 = 0
    /// `TenantQuota.bodyLimits`' state, and this instance's shares of them.
    public internal(set) var body: [GCRA]
    public internal(set) var bodyFallback: [GCRA]

    init(_ quota: TenantQuota, instances: Int) {
        requests = quota.requestsPerMinute.map { GCRA(perMinute: $0, burst: quota.burst) }
        fallback = quota.requestsPerMinute.map { rate in
            GCRA(perMinute: max(1, rate / instances), burst: max(1, (quota.burst ?? rate) / instances))
        }
        body = quota.bodyLimits.map { GCRA(perMinute: $0.perMinute, burst: $0.burst) }
        bodyFallback = quota.bodyLimits.map { $0.share(of: instances) }
    }

    /// The remembered refusal at `now`, if it still holds.
    func rememberedRefusal(at now: UInt64) -> GCRA.Decision? {
        guard refusedUntil > now else { return nil }
        return GCRA.Decision(
            allowed: false, remaining: 0, retryAfter: refusedUntil - now, resetAfter: refusedReset > now ? refusedReset - now : 0)
    }

    mutating func remember(_ refusal: GCRA.Decision, at now: UInt64) {
        refusedUntil = now &+ refusal.retryAfter
        refusedReset = now &+ refusal.resetAfter
    }

    /// Decides `costs` (one per index of `limits`) against the body limits or their shares: all
    /// are charged, or none is.
    mutating func admitBody(_ limits: [Int], costs: [Int], now: UInt64, fallback: Bool) -> [GCRA.Decision] {
        var trial = fallback ? bodyFallback : body
        let decisions = zip(limits, costs).map { limit, cost in trial[limit].admit(cost: cost, now: now) }
        if decisions.allSatisfy(\.allowed) {
            if fallback { bodyFallback = trial } else { body = trial }
        }
        return decisions
    }

    /// Settles `units` more (or back, negative) on `limits` (body limits or their shares).
    mutating func adjustBody(_ limits: [Int], by units: Int, now: UInt64, fallback: Bool) {
        for limit in limits {
            if fallback { bodyFallback[limit].adjust(by: units, now: now) } else { body[limit].adjust(by: units, now: now) }
        }
    }
}
