import Testing
@testable import SluiceCore

/// The tenant policy on a request's head, in this process: concurrency, then the request rate;
/// shadow mode. Exact, on a manual clock.
@Suite struct TenantPolicyTests {
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 5 * second

    /// One a second, two at once, one in progress at a time.
    static func policy(shadow: Bool = false) -> TenantPolicy {
        TenantPolicy([TenantQuota(name: "a", requestsPerMinute: 60, burst: 2, maxConcurrent: 1)], shadow: shadow)
    }

    static func requests(remaining: Int, resetAfter: UInt64) -> [RateLimitHeaders.Window] {
        [RateLimitHeaders.Window(name: "requests", limit: 60, remaining: remaining, resetAfter: resetAfter)]
    }

    @Test func aConcurrencyRefusalSpendsNothingAndTheRateIsDecidedAfterIt() {
        let policy = Self.policy()
        #expect(policy.admit(tenant: 0, now: Self.t0) == LimitOutcome(.admitted, windows: Self.requests(remaining: 1, resetAfter: Self.second)))
        // At max_concurrent: refused, and the window says where the rate stands, unspent.
        #expect(policy.admit(tenant: 0, now: Self.t0) == LimitOutcome(
            .refusedConcurrency, refusedBy: .concurrency, windows: Self.requests(remaining: 1, resetAfter: Self.second), retryAfter: Self.second))
        policy.release(tenant: 0)
        #expect(policy.admit(tenant: 0, now: Self.t0) == LimitOutcome(.admitted, windows: Self.requests(remaining: 0, resetAfter: 2 * Self.second)))
        policy.release(tenant: 0)
        // Over the rate: refused, with the wait; a refusal holds no slot.
        #expect(policy.admit(tenant: 0, now: Self.t0) == LimitOutcome(
            .refusedRate, refusedBy: .requests, windows: Self.requests(remaining: 0, resetAfter: 2 * Self.second), retryAfter: Self.second))
        #expect(policy.state(of: 0).inFlight == 0)
        // Exactly when it said.
        #expect(policy.admit(tenant: 0, now: Self.t0 + Self.second).decision == .admitted)
        // Released more often than admitted: never below zero.
        policy.release(tenant: 0)
        policy.release(tenant: 0)
        #expect(policy.state(of: 0).inFlight == 0)
    }

    @Test func shadowModeLetsEveryHeadInAndSaysWhichLimitWouldHaveRefused() {
        let policy = Self.policy(shadow: true)
        #expect(policy.admit(tenant: 0, now: Self.t0) == LimitOutcome(.admitted, windows: Self.requests(remaining: 1, resetAfter: Self.second)))
        // Over max_concurrent: let in, counted as shadow-refused, the rate not spent.
        #expect(policy.admit(tenant: 0, now: Self.t0) == LimitOutcome(
            .shadowRefused, refusedBy: .concurrency, windows: Self.requests(remaining: 1, resetAfter: Self.second)))
        #expect(policy.state(of: 0).inFlight == 2)
        policy.release(tenant: 0)
        policy.release(tenant: 0)
        #expect(policy.admit(tenant: 0, now: Self.t0).windows == Self.requests(remaining: 0, resetAfter: 2 * Self.second))
        policy.release(tenant: 0)
        // Over the rate: let in, nothing charged (the TAT is where the two admitted left it).
        #expect(policy.admit(tenant: 0, now: Self.t0) == LimitOutcome(
            .shadowRefused, refusedBy: .requests, windows: Self.requests(remaining: 0, resetAfter: 2 * Self.second)))
        #expect(policy.state(of: 0).requests?.tat == Self.t0 + 2 * Self.second)
        #expect(policy.state(of: 0).inFlight == 1)
    }

    @Test func aTenantWithoutLimitsIsAlwaysLetInAndItsSlotsAreCounted() {
        let policy = TenantPolicy([TenantQuota(name: "default")])
        for _ in 0..<3 { #expect(policy.admit(tenant: 0, now: Self.t0) == LimitOutcome(.admitted)) }
        #expect(policy.state(of: 0).inFlight == 3)
        #expect(!policy.needsBody(0) && !policy.countsTokens(0, model: nil))
    }
}
