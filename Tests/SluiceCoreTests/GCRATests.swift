import Testing
@testable import SluiceCore

@Suite struct GCRATests {
    static let second: UInt64 = 1_000_000_000

    @Test func aFullLimitSpendsItsBurstThenOnePerInterval() {
        var limit = GCRA(perMinute: 60, burst: 3)  // one per second, three at once
        let t0: UInt64 = 100 * Self.second
        #expect(limit.admit(now: t0) == .init(allowed: true, remaining: 2, retryAfter: 0, resetAfter: Self.second))
        #expect(limit.admit(now: t0).remaining == 1)
        #expect(limit.admit(now: t0) == .init(allowed: true, remaining: 0, retryAfter: 0, resetAfter: 3 * Self.second))
        let refused = limit.admit(now: t0)
        #expect(refused == .init(allowed: false, remaining: 0, retryAfter: Self.second, resetAfter: 3 * Self.second))
        // Exactly when it said.
        #expect(!limit.admit(now: t0 + Self.second - 1).allowed)
        #expect(limit.admit(now: t0 + Self.second).allowed)
        // A cost above the burst never passes; the wait quoted is what a full limit would need.
        var fresh = GCRA(perMinute: 60, burst: 3)
        #expect(fresh.admit(cost: 4, now: t0) == .init(allowed: false, remaining: 3, retryAfter: Self.second, resetAfter: 0))
    }

    /// The bound the issue asks for: over any window, admitted ≤ rate × window + burst, under
    /// random arrivals and costs, checked over every window that starts at an admission.
    @Test func admittedUnitsNeverExceedRateTimesWindowPlusBurst() {
        var random = SplitMix64(seed: 42)
        for (rate, burst) in [(600, 10), (60, 1), (1_000, 250), (7, 3), (70_000_000, 5)] {
            var limit = GCRA(perMinute: rate, burst: burst)
            var now: UInt64 = 5 * Self.second
            var admitted: [(at: UInt64, units: Int)] = []
            for _ in 0..<20_000 {
                now += random.next() % (200_000_000 * 60 / UInt64(rate))  // around the rate, bursty
                let cost = Int(random.next() % 3) + 1
                if limit.admit(cost: cost, now: now).allowed { admitted.append((now, cost)) }
            }
            #expect(admitted.count > 1_000)
            for window in [Self.second / 10, Self.second, 10 * Self.second, 60 * Self.second] {
                // Exact: rate per minute × window, rounded down, never the rounded interval.
                let allowance = Int(UInt64(rate) * window / (60 * Self.second)) + burst
                #expect(mostUnits(admitted, within: window) <= allowance, "rate \(rate) burst \(burst) window \(window)")
            }
        }
    }

    @Test func settlingRefundsAndCharges() {
        var tokens = GCRA(perMinute: 6_000, burst: 1_000)  // 100 tokens per second
        let t0: UInt64 = 10 * Self.second
        #expect(tokens.admit(cost: 800, now: t0).remaining == 200)
        tokens.adjust(by: -500, now: t0)  // the answer used 300 of the 800 charged
        #expect(tokens.remaining(at: t0) == 700)
        tokens.adjust(by: 100, now: t0)  // or 100 more than charged
        #expect(tokens.remaining(at: t0) == 600)
        // A refund larger than what is spent fills the limit, no further.
        tokens.adjust(by: -5_000, now: t0)
        #expect(tokens.remaining(at: t0) == 1_000)
        // Time refills it.
        _ = tokens.admit(cost: 1_000, now: t0)
        #expect(tokens.remaining(at: t0 + Self.second) == 100)
    }
}

@Suite struct SipHashTests {
    /// The reference vectors of the SipHash paper (appendix A) and its test suite.
    @Test func matchesTheReferenceVectors() {
        let key = SipHash(k0: 0x0706_0504_0302_0100, k1: 0x0f0e_0d0c_0b0a_0908)
        #expect(key.hash(Array(0..<15) as [UInt8]) == 0xa129_ca61_49be_45e5)
        #expect(key.hash([] as [UInt8]) == 0x726f_db47_dd0e_0e31)
        #expect(key.hash(Array(0..<8) as [UInt8]) == 0x93f5_f579_9a93_2462)
        #expect(SipHash(k0: 1, k1: 2).hash(Array("sk-team-a".utf8)) != key.hash(Array("sk-team-a".utf8)))
    }
}

@Suite struct RateLimitHeadersTests {
    @Test func durationsReadLikeOpenAIs() {
        #expect(RateLimitHeaders.duration(0) == "0ms")
        #expect(RateLimitHeaders.duration(20_000_001) == "21ms")
        #expect(RateLimitHeaders.duration(1_200_000_000) == "1.2s")
        #expect(RateLimitHeaders.duration(1_000_000_000) == "1s")
        #expect(RateLimitHeaders.duration(1_150_000_000) == "1.2s")
        #expect(RateLimitHeaders.duration(360_000_000_000) == "6m0s")
        #expect(RateLimitHeaders.duration(61_500_000_000) == "1m2s")
    }

    @Test func fieldsCarryBothVocabulariesAndRetryAfter() {
        let window = RateLimitHeaders.Window(name: "requests", limit: 600, remaining: 0, resetAfter: 1_500_000_000)
        let fields = RateLimitHeaders.fields([window], retryAfter: 100_000_000)
        #expect(fields.map(\.0) == [
            "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
            "ratelimit-policy", "ratelimit", "retry-after",
        ])
        #expect(fields.map(\.1) == ["600", "0", "1.5s", "\"requests\";q=600;w=60", "\"requests\";r=0;t=2", "1"])
        #expect(RateLimitHeaders.fields([]).isEmpty)
    }
}
