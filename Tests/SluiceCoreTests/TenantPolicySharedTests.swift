import Testing
@testable import SluiceCore

/// The tenant policy with its rate in a shared store (a fake one, answering at once, on the
/// test's clock): what is decided without asking, the store's refusals remembered, each
/// `on_backend_failure` mode, and the store left alone for `backendRetry` after a failure.
@Suite struct TenantPolicySharedTests {
    static let second: UInt64 = 1_000_000_000
    static let ms: UInt64 = 1_000_000
    static let t0: UInt64 = 5 * second

    /// 60 a minute, 9 at once across three instances; 600 tokens a minute, 999 at once.
    static func policy(_ mode: BackendFailureMode, burst: Int = 9, maxConcurrent: Int? = nil) -> TenantPolicy {
        let tokens = BodyLimit(tenant: "a", model: nil, countsTokens: true, perMinute: 600, burst: 999)
        let quota = TenantQuota(name: "a", requestsPerMinute: 60, burst: burst, maxConcurrent: maxConcurrent, bodyLimits: [tokens])
        return TenantPolicy([quota], instances: 3, onBackendFailure: mode)
    }

    static func requests(remaining: Int, resetAfter: UInt64) -> [RateLimitHeaders.Window] {
        [RateLimitHeaders.Window(name: "requests", limit: 60, remaining: remaining, resetAfter: resetAfter)]
    }

    @Test func theStoreDecidesTheRateAndItsRefusalIsRememberedUntilItsRetryTime() {
        let policy = Self.policy(.deny, burst: 1)
        let store = FakeLimitStore()
        #expect(policy.admitShared(now: Self.t0, store: store) == LimitOutcome(.admitted, windows: Self.requests(remaining: 0, resetAfter: Self.second)))
        #expect(store.asked.map(\.items) == [[LimitItem(key: "tenant:a:requests", perMinute: 60, burst: 1, cost: 1)]])
        // Refused by the store: the slot is given back.
        #expect(policy.admitShared(now: Self.t0, store: store) == LimitOutcome(
            .refusedRate, refusedBy: .requests, windows: Self.requests(remaining: 0, resetAfter: Self.second), retryAfter: Self.second))
        #expect(policy.state(of: 0).inFlight == 1)
        // Until its retry time the refusal is answered here, the wait counted down.
        let half = Self.t0 + 500 * Self.ms
        #expect(policy.admitShared(now: half, store: store) == LimitOutcome(
            .refusedRate, refusedBy: .requests, windows: Self.requests(remaining: 0, resetAfter: 500 * Self.ms), retryAfter: 500 * Self.ms))
        #expect(store.asked.count == 2)
        #expect(policy.state(of: 0).inFlight == 1)
        // Then the store is asked again.
        #expect(policy.admitShared(now: Self.t0 + Self.second, store: store)?.decision == .admitted)
        #expect(store.asked.count == 3)
    }

    @Test func theConcurrencySlotIsTakenWhileTheStoreDecides() {
        let policy = Self.policy(.deny, maxConcurrent: 1)
        let store = FakeLimitStore()
        store.holding = true
        store.now = Self.t0
        var first: LimitOutcome?
        policy.admitShared(tenant: 0, now: Self.t0, store: store) { first = $0 }
        #expect(first == nil && policy.state(of: 0).inFlight == 1)
        // A second request meanwhile is over max_concurrent, decided without the store.
        #expect(policy.admitShared(now: Self.t0, store: store) == LimitOutcome(.refusedConcurrency, refusedBy: .concurrency, retryAfter: Self.second))
        #expect(store.asked.count == 1)
        store.answerHeld()
        #expect(first == LimitOutcome(.admitted, windows: Self.requests(remaining: 8, resetAfter: Self.second)))
        #expect(policy.state(of: 0).inFlight == 1)
    }

    @Test func onBackendFailureAllowLetsEveryRequestInUncharged() {
        let policy = Self.policy(.allow)
        let store = FakeLimitStore()
        store.failing = true
        #expect(policy.admitShared(now: Self.t0, store: store) == LimitOutcome(.admitted, backendFailed: true))
        #expect(policy.admitBodyShared(model: nil, tokens: 5_000, now: Self.t0, store: store) == LimitOutcome(.admitted, backendFailed: true))
        #expect(policy.state(of: 0).inFlight == 1)
        #expect(policy.state(of: 0).bodyFallback[0].remaining(at: Self.t0) == 333)
    }

    @Test func onBackendFailureDenyRefusesAndGivesTheSlotBack() {
        let policy = Self.policy(.deny)
        let store = FakeLimitStore()
        store.failing = true
        let down = LimitOutcome(.backendUnavailable, retryAfter: Self.second, backendFailed: true)
        #expect(policy.admitShared(now: Self.t0, store: store) == down)
        #expect(policy.state(of: 0).inFlight == 0)
        #expect(policy.admitBodyShared(model: nil, tokens: 10, now: Self.t0, store: store) == down)
    }

    @Test func onBackendFailureLocalDecidesOnThisInstancesShare() {
        let policy = Self.policy(.local)
        let store = FakeLimitStore()
        store.failing = true
        // A third of 60 a minute (one every 3 s) and of the burst of 9: three at once.
        for (remaining, reset) in [(2, 3), (1, 6), (0, 9)] {
            #expect(policy.admitShared(now: Self.t0, store: store) == LimitOutcome(
                .admitted, windows: Self.requests(remaining: remaining, resetAfter: UInt64(reset) * Self.second), backendFailed: true))
        }
        #expect(policy.admitShared(now: Self.t0, store: store) == LimitOutcome(
            .refusedRate, refusedBy: .requests, windows: Self.requests(remaining: 0, resetAfter: 9 * Self.second), retryAfter: 3 * Self.second,
            backendFailed: true))
        #expect(policy.state(of: 0).inFlight == 3)
        // Tokens: 200 a minute (one every 300 ms), 333 at once; charged on the share, and a cost
        // over the share's burst gets no retry time.
        let tokens = RateLimitHeaders.Window(name: "tokens", limit: 600, remaining: 33, resetAfter: 90 * Self.second)
        #expect(policy.admitBodyShared(model: nil, tokens: 300, now: Self.t0, store: store) == LimitOutcome(
            .admitted, windows: [tokens], charged: .fallback, backendFailed: true))
        #expect(policy.admitBodyShared(model: nil, tokens: 334, now: Self.t0, store: store) == LimitOutcome(
            .refusedTokens, refusedBy: .body(0), windows: [tokens], retryAfter: nil, backendFailed: true))
        #expect(policy.state(of: 0).bodyFallback[0].remaining(at: Self.t0) == 33)
        #expect(policy.state(of: 0).body[0].remaining(at: Self.t0) == 999)
    }

    @Test func afterAFailureTheStoreIsAskedAgainOnlyAfter250msOfPassedTime() {
        let policy = Self.policy(.local)
        let store = FakeLimitStore()
        store.failing = true
        #expect(policy.admitShared(now: Self.t0, store: store)?.backendFailed == true)
        #expect(store.asked.count == 1)
        // Back, but not asked until 250 ms after the failed decision: heads, bodies and
        // settlements are decided without it.
        store.failing = false
        let almost = Self.t0 + TenantPolicy.backendRetry - 1
        #expect(policy.admitShared(now: almost, store: store)?.backendFailed == true)
        #expect(policy.admitBodyShared(model: nil, tokens: 10, now: almost, store: store)?.charged == .fallback)
        #expect(policy.settle(TokenCharge(tenant: 0, model: nil, tokens: 10, store: .shared), used: 5, succeeded: true, now: almost, store: store) == 0)
        #expect(store.asked.count == 1)
        let back = Self.t0 + TenantPolicy.backendRetry
        #expect(policy.admitShared(now: back, store: store) == LimitOutcome(.admitted, windows: Self.requests(remaining: 8, resetAfter: Self.second)))
        #expect(policy.admitBodyShared(model: nil, tokens: 10, now: back, store: store)?.charged == .shared)
        #expect(store.asked.count == 3)
    }
}
