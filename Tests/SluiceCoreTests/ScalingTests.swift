import Testing
@testable import SluiceCore

@Suite struct LatencyWindowTests {
    @Test func p95IsWithinOnePercentOfTheExactP95() {
        var random = SplitMix64(seed: 42)
        for scale in [50.0, 2_000.0, 300_000.0, 20_000_000.0] {
            var histogram = LogHistogram()
            var samples: [UInt64] = []
            for _ in 0..<20_000 {
                // Long-tailed: a product of uniforms, scaled (µs).
                let u = Double(random.next() % 1_000_000 + 1) / 1_000_000
                let v = Double(random.next() % 1_000_000 + 1) / 1_000_000
                let micros = UInt64(scale * (0.2 + 3 * u * u * v))
                samples.append(micros)
                histogram.record(micros: micros)
            }
            samples.sort()
            for quantile in [0.5, 0.95, 0.99] {
                let exact = Double(samples[Int((quantile * Double(samples.count)).rounded(.up)) - 1])
                let estimate = Double(histogram.quantile(quantile)!)
                #expect(abs(estimate - exact) <= max(1, exact * 0.01), "scale \(scale) q\(quantile): \(estimate) vs \(exact)")
            }
        }
    }

    @Test func bucketsTileTheRangeAndBoundsArePinned() {
        var previousUpper: UInt64 = 0
        for index in 0..<LogHistogram.bucketCount {
            let (lower, upper) = LogHistogram.bounds(index)
            #expect(lower == previousUpper)
            #expect(LogHistogram.index(micros: lower) == index && LogHistogram.index(micros: upper - 1) == index)
            #expect(Double(upper - lower) <= max(1, Double(lower) / 64))
            previousUpper = upper
        }
        #expect(LogHistogram.bounds(127) == (127, 128))
        #expect(LogHistogram.bounds(128) == (128, 130))
        #expect(LogHistogram.bounds(192) == (256, 260))
        #expect(LogHistogram.index(micros: 1 << 40) == LogHistogram.bucketCount - 1)
        #expect(LogHistogram.bucketCount == 1_536)
    }

    @Test func theMergeOfTwoWindowsIsTheWindowOfBothSampleSets() {
        var random = SplitMix64(seed: 3)
        var a = LogHistogram()
        var b = LogHistogram()
        var both = LogHistogram()
        for index in 0..<5_000 {
            let micros = random.next() % 5_000_000
            if index % 3 == 0 { a.record(micros: micros) } else { b.record(micros: micros) }
            both.record(micros: micros)
        }
        var merged = a
        merged.merge(b)
        #expect(merged == both)
        #expect(merged.quantile(0.95) == both.quantile(0.95))
    }

    @Test func samplesLeaveTheWindowWhenTheirSubWindowIsOlderThanIt() {
        let second: UInt64 = 1_000_000_000
        var window = LatencyWindow(length: 60 * second, subWindow: 2 * second)
        #expect(window.capacity == 60 * second)
        // 10 slow samples at t=1 s, 10 fast ones at t=30 s.
        for _ in 0..<10 { window.record(nanoseconds: 900_000_000, at: 1 * second) }
        for _ in 0..<10 { window.record(nanoseconds: 100_000_000, at: 30 * second) }
        #expect(window.merged(over: 60 * second, at: 31 * second).count == 20)
        // The 6 s panic window holds only the recent ones.
        #expect(window.merged(over: 6 * second, at: 31 * second).count == 10)
        #expect(window.merged(over: 6 * second, at: 31 * second).quantile(0.95)! < 101_000)
        // At 61 s the first sub-window (0-2 s) is out of the 60 s window.
        #expect(window.merged(over: 60 * second, at: 61 * second).count == 10)
        // A ring slot reused by a later sub-window starts empty.
        window.record(nanoseconds: 1_000, at: 61 * second)
        #expect(window.merged(over: 2 * second, at: 61 * second).count == 1)
        #expect(window.merged(over: 60 * second, at: 200 * second).count == 0)
    }
}

@Suite struct ScaleAdvisorTests {
    static let second: UInt64 = 1_000_000_000
    static let ms: UInt64 = 1_000_000
    static let policy = ScaleAdvisor.Policy(target: 800 * ms, minReplicas: 1, maxReplicas: 16)

    /// Ticks every 2 s from `from` to `to` seconds; `inputs` gives each tick's view.
    static func run(
        _ advisor: inout ScaleAdvisor, from: UInt64 = 0, to: UInt64, _ inputs: (UInt64) -> ScaleAdvisor.Inputs
    ) -> [ScaleAdvisor.Decision] {
        stride(from: from, to: to, by: 2).map { t in advisor.tick(inputs(t), now: t * second) }
    }

    static func view(_ replicas: Int, stable: UInt64?, panic: UInt64?, load: Int, count: UInt64 = 500) -> ScaleAdvisor.Inputs {
        ScaleAdvisor.Inputs(
            replicas: replicas, stableP95: stable, stableCount: stable == nil ? 0 : count, panicP95: panic,
            panicCount: panic == nil ? 0 : count / 10, inFlight: load, queued: 0)
    }

    @Test func steadyLoadNeverChangesTheDecision() {
        var advisor = ScaleAdvisor(policy: Self.policy)
        // p95 700 ms: under the target, above the scale-in band (480 ms), for 20 minutes.
        let decisions = Self.run(&advisor, to: 1_200) { _ in Self.view(4, stable: 700 * Self.ms, panic: 700 * Self.ms, load: 40) }
        #expect(Set(decisions.map(\.desired)) == [4])
        #expect(decisions.allSatisfy { $0.mode == .stable })
        #expect(decisions.last!.reason == "p95 700 ms within target 800 ms; holding 4")
    }

    @Test func aSurgeScalesOutWithinOneTickOfThePanicWindowHavingData() {
        var advisor = ScaleAdvisor(policy: Self.policy)
        // Steady at 600 ms with 10 requests a replica: that is the learnt capacity.
        _ = Self.run(&advisor, to: 60) { _ in Self.view(4, stable: 600 * Self.ms, panic: 600 * Self.ms, load: 40) }
        // At 60 s the load doubles; the panic window sees p95 1.8 s at once, the stable window later.
        let surge = Self.run(&advisor, from: 60, to: 70) { _ in Self.view(4, stable: 900 * Self.ms, panic: 1_800 * Self.ms, load: 80) }
        #expect(surge[0].mode == .panic && surge[0].desired == 8)
        #expect(surge[0].reason == "p95 1.80 s > target 800 ms (panic window 6 s); 4 → 8 replicas to bring per-replica concurrency from 20 to 10 (p95 met the target at 10)")
        // While the new replicas start, the same view keeps the same decision (nothing added twice).
        #expect(surge.allSatisfy { $0.desired == 8 })
        // Replicas up, p95 back under the target: held, in panic for a whole stable window, then stable.
        let after = Self.run(&advisor, from: 70, to: 200) { _ in Self.view(8, stable: 700 * Self.ms, panic: 500 * Self.ms, load: 80) }
        #expect(after.allSatisfy { $0.desired == 8 })
        #expect(after.first!.mode == .panic && after.last!.mode == .stable)
        // (The last tick in panic was at 68 s: a whole stable window later.)
        #expect(after.first { $0.mode == .stable }!.at == 128 * Self.second)
    }

    @Test func withoutALearntCapacityTheCountGrowsWithP95OverTargetBoundedByTheStep() {
        var advisor = ScaleAdvisor(policy: Self.policy)
        let first = advisor.tick(Self.view(2, stable: 1_400 * Self.ms, panic: 1_200 * Self.ms, load: 30), now: 0)
        // 2 × 1.2 s / 0.8 s = 3 (sized on the fresher panic window).
        #expect(first.desired == 3 && first.mode == .stable)
        #expect(first.reason.hasSuffix("2 → 3 replicas in proportion to p95 / target (capacity per replica not learnt yet)"))
        var capped = ScaleAdvisor(policy: Self.policy)
        #expect(capped.tick(Self.view(2, stable: 30 * Self.second, panic: 30 * Self.second, load: 30), now: 0).desired == 6)
        var top = ScaleAdvisor(policy: ScaleAdvisor.Policy(target: 800 * Self.ms, maxReplicas: 5))
        let full = top.tick(Self.view(4, stable: 30 * Self.second, panic: 30 * Self.second, load: 30), now: 0)
        #expect(full.desired == 5 && full.reason.hasSuffix("capped at max_replicas 5"))
    }

    @Test func scaleInWaitsTheDelayGoesOneStepAtATimeAndNeverInPanic() {
        var advisor = ScaleAdvisor(policy: Self.policy)
        _ = Self.run(&advisor, to: 60) { _ in Self.view(8, stable: 600 * Self.ms, panic: 600 * Self.ms, load: 80) }
        // A panic at 60 s, then quiet: p95 300 ms with 16 in flight.
        _ = advisor.tick(Self.view(8, stable: 700 * Self.ms, panic: 1_700 * Self.ms, load: 80), now: 60 * Self.second)
        var replicas = 8
        var steps: [(UInt64, Int)] = []
        for t in stride(from: UInt64(62), to: 1_500, by: 2) {
            let decision = advisor.tick(Self.view(replicas, stable: 300 * Self.ms, panic: 300 * Self.ms, load: 16), now: t * Self.second)
            if decision.desired < replicas {
                #expect(decision.mode == .stable)
                #expect(decision.desired == replicas - 1)
                steps.append((t, decision.desired))
                replicas = decision.desired
            }
        }
        // Panic ended at 120 s; the delay counts from then, 300 s per step; down to 2 (16 in flight
        // over the 10 a replica that met the target).
        #expect(steps.map(\.0) == [420, 720, 1_020, 1_320])
        #expect(steps.map(\.1) == [7, 6, 5, 4])
        let held = advisor.tick(Self.view(4, stable: 300 * Self.ms, panic: 300 * Self.ms, load: 36), now: 1_700 * Self.second)
        #expect(held.desired == 4 && held.reason.contains("would each carry 12 requests, above the 10"))
    }

    @Test func oscillatingAndNoisyLatencyInsideTheBandHolds() {
        var advisor = ScaleAdvisor(policy: Self.policy)
        let oscillating = Self.run(&advisor, to: 900) { t in
            let high = (t / 2) % 2 == 0
            return Self.view(4, stable: (high ? 860 : 500) * Self.ms, panic: (high ? 1_500 : 400) * Self.ms, load: 40)
        }
        #expect(Set(oscillating.map(\.desired)) == [4])
        var noisy = ScaleAdvisor(policy: Self.policy)
        var random = SplitMix64(seed: 9)
        let decisions = Self.run(&noisy, to: 900) { _ in
            let p95 = 500 + random.next() % 370  // 500-869 ms
            return Self.view(4, stable: p95 * Self.ms, panic: (p95 + random.next() % 600) * Self.ms, load: 40)
        }
        #expect(Set(decisions.map(\.desired)) == [4])
    }

    @Test func missingDataNeverScalesIn() {
        var advisor = ScaleAdvisor(policy: Self.policy)
        _ = Self.run(&advisor, to: 200) { _ in Self.view(6, stable: 300 * Self.ms, panic: 300 * Self.ms, load: 6) }
        // Samples stop (too few, then none) for far longer than the delay.
        let gap = Self.run(&advisor, from: 200, to: 1_500) { t in
            t % 10 == 0 ? Self.view(6, stable: 300 * Self.ms, panic: nil, load: 0, count: 3) : Self.view(6, stable: nil, panic: nil, load: 0)
        }
        #expect(gap.allSatisfy { $0.desired == 6 })
        #expect(gap.last!.reason.hasPrefix("too few samples in the stable window"))
        // Data again (half the load): the delay starts over.
        let back = Self.run(&advisor, from: 1_500, to: 1_790) { _ in Self.view(6, stable: 300 * Self.ms, panic: 300 * Self.ms, load: 3) }
        #expect(back.allSatisfy { $0.desired == 6 })
        #expect(advisor.tick(Self.view(6, stable: 300 * Self.ms, panic: 300 * Self.ms, load: 3), now: 1_800 * Self.second).desired == 5)
    }

    @Test func scaleToZeroIsSafeBothWays() {
        var advisor = ScaleAdvisor(policy: ScaleAdvisor.Policy(target: 800 * Self.ms, minReplicas: 0, maxReplicas: 4, scaleDownDelay: 10 * Self.second))
        // One replica, p95 low but requests in flight: the last replica is not removed.
        _ = Self.run(&advisor, to: 20) { _ in Self.view(1, stable: 600 * Self.ms, panic: 600 * Self.ms, load: 3) }
        let held = Self.run(&advisor, from: 20, to: 60) { _ in Self.view(1, stable: 100 * Self.ms, panic: 100 * Self.ms, load: 2) }
        #expect(held.allSatisfy { $0.desired == 1 })
        #expect(held.last!.reason.contains("removing the last replica would leave 2 requests"))
        // No replica at all and requests waiting: one is asked for, without any latency sample.
        var empty = ScaleAdvisor(policy: ScaleAdvisor.Policy(target: 800 * Self.ms, minReplicas: 0, maxReplicas: 4))
        let woken = empty.tick(Self.view(0, stable: nil, panic: nil, load: 5), now: 0)
        #expect(woken.desired == 1 && woken.reason.hasPrefix("no replica in rotation and 5 requests"))
    }

    @Test func boundsHold() {
        var advisor = ScaleAdvisor(policy: ScaleAdvisor.Policy(target: 800 * Self.ms, minReplicas: 2, maxReplicas: 3, scaleDownDelay: 10 * Self.second))
        let low = Self.run(&advisor, to: 300) { _ in Self.view(2, stable: 100 * Self.ms, panic: 100 * Self.ms, load: 1) }
        #expect(low.allSatisfy { $0.desired == 2 })
        #expect(low.last!.reason == "p95 100 ms within target; at min_replicas 2")
        // Fewer healthy replicas than the minimum: the decision says the minimum.
        #expect(advisor.tick(Self.view(1, stable: nil, panic: nil, load: 0), now: 400 * Self.second).desired == 2)
    }
}
