import Testing
@testable import SluiceCore

/// The tenant policy on a request's body: token and per-model limits charged all or none, shadow
/// mode, and the settlement of a charge where it was made. Exact, on a manual clock.
@Suite struct TenantPolicyBodyTests {
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 10 * second

    /// 600 tokens a minute (one every 100 ms), 1,000 at once; model `big`: one request a second,
    /// one at once; model `m`: 300 tokens at once (one every 10 ms).
    static func policy(shadow: Bool = false, instances: Int = 1) -> TenantPolicy {
        TenantPolicy([TenantQuota(name: "a", bodyLimits: [
            BodyLimit(tenant: "a", model: nil, countsTokens: true, perMinute: 600, burst: 1_000),
            BodyLimit(tenant: "a", model: "big", countsTokens: false, perMinute: 60, burst: 1),
            BodyLimit(tenant: "a", model: "m", countsTokens: true, perMinute: 6_000, burst: 300),
        ])], instances: instances, shadow: shadow)
    }

    static func tokens(remaining: Int, resetAfter: UInt64) -> [RateLimitHeaders.Window] {
        [RateLimitHeaders.Window(name: "tokens", limit: 600, remaining: remaining, resetAfter: resetAfter)]
    }

    @Test func bodyLimitsChargeAllOrNone() {
        let policy = Self.policy()
        #expect(policy.admitBody(tenant: 0, model: "big", tokens: 100, now: Self.t0) == LimitOutcome(
            .admitted, windows: Self.tokens(remaining: 900, resetAfter: 10 * Self.second), charged: .local))
        // The model's one request is spent: refused, and the tokens (which would pass) are not
        // charged either; the window says where they would have stood.
        #expect(policy.admitBody(tenant: 0, model: "big", tokens: 100, now: Self.t0) == LimitOutcome(
            .refusedRate, refusedBy: .body(1), windows: Self.tokens(remaining: 800, resetAfter: 20 * Self.second), retryAfter: Self.second))
        #expect(policy.state(of: 0).body[0].remaining(at: Self.t0) == 900)
        // Another model meets only the tenant's token limit.
        #expect(policy.admitBody(tenant: 0, model: "small", tokens: 100, now: Self.t0).charged == .local)
        #expect(policy.state(of: 0).body[0].remaining(at: Self.t0) == 800)
        // The same in a shared store: one decision for every applying limit.
        let store = FakeLimitStore()
        #expect(policy.admitBodyShared(model: "big", tokens: 100, now: Self.t0, store: store)?.charged == .shared)
        #expect(policy.admitBodyShared(model: "big", tokens: 100, now: Self.t0, store: store)?.refusedBy == .body(1))
        #expect(store.asked.last?.items == [
            LimitItem(key: "tenant:a:tokens", perMinute: 600, burst: 1_000, cost: 100),
            LimitItem(key: "tenant:a:model:big:requests", perMinute: 60, burst: 1, cost: 1),
        ])
        #expect(store.remaining("tenant:a:tokens") == 900)
    }

    @Test func ofSeveralRefusalsTheLongestWaitSpeaksAndACostOverTheBurstHasNone() {
        let policy = Self.policy()
        _ = policy.admitBody(tenant: 0, model: "m", tokens: 300, now: Self.t0)
        _ = policy.admitBody(tenant: 0, model: nil, tokens: 500, now: Self.t0)
        // 250 more: the tenant's tokens pass in 5 s (200 left), model m's in 2.5 s (full).
        let refused = policy.admitBody(tenant: 0, model: "m", tokens: 250, now: Self.t0)
        #expect(refused.decision == .refusedTokens && refused.refusedBy == .body(0) && refused.retryAfter == 5 * Self.second)
        #expect(policy.admitBody(tenant: 0, model: nil, tokens: 1_001, now: Self.t0) == LimitOutcome(
            .refusedTokens, refusedBy: .body(0), windows: Self.tokens(remaining: 200, resetAfter: 80 * Self.second), retryAfter: nil))
    }

    @Test func shadowModeLetsABodyOverItsLimitInAndChargesItNowhere() {
        let policy = Self.policy(shadow: true)
        #expect(policy.admitBody(tenant: 0, model: nil, tokens: 400, now: Self.t0).charged == .local)
        #expect(policy.admitBody(tenant: 0, model: nil, tokens: 700, now: Self.t0) == LimitOutcome(
            .shadowRefused, refusedBy: .body(0), windows: Self.tokens(remaining: 600, resetAfter: 40 * Self.second)))
        #expect(policy.state(of: 0).body[0].remaining(at: Self.t0) == 600)
        let store = FakeLimitStore()
        #expect(policy.admitBodyShared(model: nil, tokens: 400, now: Self.t0, store: store)?.charged == .shared)
        #expect(policy.admitBodyShared(model: nil, tokens: 700, now: Self.t0, store: store)?.charged == TokenCharge.Store.none)
        #expect(store.remaining("tenant:a:tokens") == 600)
        // Nothing charged, nothing settled.
        #expect(policy.settle(TokenCharge(tenant: 0, model: nil, tokens: 700, store: .none), used: 100, succeeded: true, now: Self.t0) == 0)
        #expect(policy.state(of: 0).body[0].remaining(at: Self.t0) == 600)
    }

    @Test func settlingRefundsUnderTheEstimateAndChargesOverItOnTheTokenLimitsOnly() {
        let policy = Self.policy()
        func left() -> [Int] { policy.state(of: 0).body.map { $0.remaining(at: Self.t0) } }
        func settle(_ tokens: Int, used: Int?, succeeded: Bool = true) -> Int {
            policy.settle(TokenCharge(tenant: 0, model: "m", tokens: tokens, store: .local), used: used, succeeded: succeeded, now: Self.t0)
        }
        _ = policy.admitBody(tenant: 0, model: "m", tokens: 200, now: Self.t0)
        #expect(left() == [800, 1, 100])
        #expect(settle(200, used: 50) == -150)
        #expect(left() == [950, 1, 250])
        _ = policy.admitBody(tenant: 0, model: "m", tokens: 100, now: Self.t0)
        #expect(settle(100, used: 150) == 50)
        #expect(left() == [800, 1, 100])
        // A failure used nothing; an unknown usage of a success keeps the estimate.
        _ = policy.admitBody(tenant: 0, model: "m", tokens: 100, now: Self.t0)
        #expect(settle(100, used: nil, succeeded: false) == -100)
        #expect(settle(100, used: nil) == 0)
        #expect(left() == [800, 1, 100])
        // A limit that counts requests is not settled: the request was made.
        _ = policy.admitBody(tenant: 0, model: "big", tokens: 100, now: Self.t0)
        #expect(policy.settle(TokenCharge(tenant: 0, model: "big", tokens: 100, store: .local), used: 10, succeeded: true, now: Self.t0) == -90)
        #expect(left() == [790, 0, 100])
    }

    @Test func aChargeIsSettledWhereItWasMade() {
        // This instance's share (half: 500 at once) is settled on its own.
        let policy = Self.policy(instances: 2)
        #expect(policy.admitBody(tenant: 0, model: nil, tokens: 400, now: Self.t0, fallback: true).charged == .fallback)
        #expect(policy.settle(TokenCharge(tenant: 0, model: nil, tokens: 400, store: .fallback), used: 100, succeeded: true, now: Self.t0) == -300)
        #expect(policy.state(of: 0).bodyFallback[0].remaining(at: Self.t0) == 400)
        #expect(policy.state(of: 0).body[0].remaining(at: Self.t0) == 1_000)
        // A shared charge: the difference on its token limits, in the store, not waited for.
        let store = FakeLimitStore()
        #expect(policy.admitBodyShared(model: "m", tokens: 200, now: Self.t0, store: store)?.charged == .shared)
        var failures = 0
        let shared = TokenCharge(tenant: 0, model: "m", tokens: 200, store: .shared)
        #expect(policy.settle(shared, used: 50, succeeded: true, now: Self.t0, store: store, failed: { failures += 1 }) == -150)
        #expect(store.asked.last?.adjust == true)
        #expect(store.asked.last?.items == [
            LimitItem(key: "tenant:a:tokens", perMinute: 600, burst: 1_000, cost: -150),
            LimitItem(key: "tenant:a:model:m:tokens", perMinute: 6_000, burst: 300, cost: -150),
        ])
        #expect(store.remaining("tenant:a:tokens") == 950)
        // Nothing to settle: not asked. A failed settlement is reported, and keeps the estimate.
        #expect(policy.settle(shared, used: 200, succeeded: true, now: Self.t0, store: store) == 0)
        #expect(store.asked.count == 2)
        store.failing = true
        #expect(policy.settle(shared, used: 0, succeeded: true, now: Self.t0, store: store, failed: { failures += 1 }) == -200)
        #expect(failures == 1)
        #expect(policy.state(of: 0).body[0].remaining(at: Self.t0) == 1_000)
    }
}
