import Testing
@testable import SluiceCore

/// The bound enforcing promises, for the composition as a whole: whatever the interleaving of
/// heads, releases, bodies and settlements, in this process or through a shared store, what
/// passes each of a tenant's limits over any window stays within rate × window + burst.
@Suite struct TenantPolicyBoundTests {
    static let second: UInt64 = 1_000_000_000

    /// 20,000 random steps: arrivals every 0–30 ms (about seven times the request rate), each
    /// let in by its head and then its body (tokens estimated 1–400, for model `m` or not) or
    /// refused, settled at once with a usage up to its estimate, and released at random later.
    /// Usage is settled when the charge is made, so every refund is exact.
    @Test(arguments: [false, true])
    func enforcingNeverLetsMoreThanRateTimesWindowPlusBurstThrough(shared: Bool) {
        let limits = [
            BodyLimit(tenant: "a", model: nil, countsTokens: true, perMinute: 30_000, burst: 5_000),
            BodyLimit(tenant: "a", model: "m", countsTokens: true, perMinute: 12_000, burst: 1_500),
            BodyLimit(tenant: "a", model: "m", countsTokens: false, perMinute: 300, burst: 4),
        ]
        let policy = TenantPolicy([TenantQuota(name: "a", requestsPerMinute: 600, burst: 20, maxConcurrent: 4, bodyLimits: limits)])
        let store = FakeLimitStore()
        var random = SplitMix64(seed: 16)
        var now = Self.second
        // What passed: heads (the request rate), then what each body limit was finally charged.
        var passed: [[(at: UInt64, units: Int)]] = [[], [], [], []]
        var decisions: [LimitOutcome.Decision: Int] = [:]
        var inFlight = 0
        for _ in 0..<20_000 {
            now += random.next() % 30_000_000
            if inFlight > 0, random.next() % 4 == 0 {
                policy.release(tenant: 0)
                inFlight -= 1
            }
            let head = shared ? policy.admitShared(now: now, store: store)! : policy.admit(tenant: 0, now: now)
            decisions[head.decision, default: 0] += 1
            guard head.letIn else { continue }
            passed[0].append((now, 1))
            let model = random.next() % 2 == 0 ? "m" : "n"
            let estimate = Int(random.next() % 400) + 1
            let body = shared
                ? policy.admitBodyShared(model: model, tokens: estimate, now: now, store: store)!
                : policy.admitBody(tenant: 0, model: model, tokens: estimate, now: now)
            decisions[body.decision, default: 0] += 1
            guard body.letIn else {
                policy.release(tenant: 0)
                continue
            }
            inFlight += 1
            let used = Int(random.next() % UInt64(estimate + 1))
            policy.settle(
                TokenCharge(tenant: 0, model: model, tokens: estimate, store: body.charged), used: used, succeeded: true, now: now,
                store: store)
            for (index, limit) in limits.enumerated() where limit.applies(to: model) {
                passed[index + 1].append((now, limit.cost(tokens: used)))
            }
        }
        // Every limit refused some, and much passed.
        #expect(decisions[.refusedRate, default: 0] > 10_000 && decisions[.refusedTokens, default: 0] > 500, "\(decisions)")
        #expect(decisions[.refusedConcurrency, default: 0] > 50, "\(decisions)")
        #expect(passed.allSatisfy { $0.count > 500 }, "\(passed.map(\.count))")
        let rates = [(600, 20)] + limits.map { ($0.perMinute, $0.burst) }
        for (series, (rate, burst)) in zip(passed, rates) {
            for window in [Self.second / 10, Self.second, 10 * Self.second, 60 * Self.second] {
                let allowance = Int(UInt64(rate) * window / (60 * Self.second)) + burst
                #expect(mostUnits(series, within: window) <= allowance, "rate \(rate) burst \(burst) window \(window) shared \(shared)")
            }
        }
    }
}
