import Foundation
import Testing
import SluiceCore
@testable import SluiceSimulation

@Suite struct ArrivalPlanTests {
    static func times(_ phases: [ArrivalPlan.Phase], seed: UInt64 = 1) -> [Double] {
        var schedule = ArrivalSchedule(plan: ArrivalPlan(phases: phases), generator: SplitMix64(seed: seed))
        var times: [Double] = []
        while let next = schedule.next(), times.count < 1_000_000 { times.append(next.seconds) }
        return times
    }

    @Test func uniformConstantSendsAtExactIntervals() {
        let times = Self.times([.init(shape: .constant(rate: 10), duration: .seconds(2), process: .uniform)])
        #expect(times.count == 20)
        for (index, time) in times.enumerated() {
            #expect(abs(time - Double(index) * 0.1) < 0.001, "send \(index) at \(time)")
        }
    }

    @Test func everyShapeSendsWhatItsRateIntegratesTo() {
        let cases: [(ArrivalPlan.Shape, Double)] = [
            (.ramp(from: 0, to: 10), 10),  // 2 s, mean 5/s
            (.step(from: 5, to: 15, at: .seconds(1)), 20),
            (.sine(mean: 10, amplitude: 5, period: .seconds(2)), 20),
        ]
        for (shape, expected) in cases {
            let phase = ArrivalPlan.Phase(shape: shape, duration: .seconds(2), process: .uniform)
            #expect(abs(phase.expectedCount - expected) < 0.01)
            let times = Self.times([phase])
            #expect(abs(Double(times.count) - expected) <= 1, "\(shape): \(times.count)")
            #expect(times == times.sorted() && times.allSatisfy { $0 >= 0 && $0 < 2 })
        }
        // A step: 5/s in the first second, 15/s in the second.
        let step = Self.times([.init(shape: .step(from: 5, to: 15, at: .seconds(1)), duration: .seconds(2), process: .uniform)])
        #expect(abs(step.filter { $0 < 1 }.count - 5) <= 1 && abs(step.filter { $0 >= 1 }.count - 15) <= 1)
        // A sine peaks in its first half-period.
        let sine = Self.times([.init(shape: .sine(mean: 100, amplitude: 80, period: .seconds(2)), duration: .seconds(2), process: .uniform)])
        #expect(sine.filter { $0 < 1 }.count > 3 * sine.filter { $0 >= 1 }.count)
    }

    @Test func poissonIsRandomButSeededAndAverageRight() {
        let phase = ArrivalPlan.Phase(shape: .constant(rate: 100), duration: .seconds(10), process: .poisson)
        let first = Self.times([phase], seed: 7)
        #expect(first == Self.times([phase], seed: 7))
        #expect(first != Self.times([phase], seed: 8))
        #expect(abs(first.count - 1000) < 100)  // σ ≈ 32
        // Gaps are exponential: their coefficient of variation is about 1 (uniform gives 0).
        let gaps = zip(first.dropFirst(), first).map { $0 - $1 }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        let sd = (gaps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gaps.count)).squareRoot()
        #expect(abs(sd / mean - 1) < 0.15)
        // A Poisson ramp (thinning) still follows the rate.
        let ramp = Self.times([.init(shape: .ramp(from: 0, to: 200), duration: .seconds(10))], seed: 3)
        #expect(abs(ramp.count - 1000) < 100)
        #expect(ramp.filter { $0 >= 5 }.count > 2 * ramp.filter { $0 < 5 }.count)
    }

    @Test func phasesFollowEachOther() {
        let times = Self.times([
            .init(shape: .constant(rate: 10), duration: .seconds(1), process: .uniform),
            .init(shape: .constant(rate: 0), duration: .seconds(1), process: .uniform),
            .init(shape: .constant(rate: 20), duration: .seconds(1), process: .uniform),
        ])
        #expect(times.count == 30)
        #expect(times.filter { $0 >= 1 && $0 < 2 }.isEmpty)
        #expect(abs(times[10] - 2.0) < 0.001)
        #expect(ArrivalPlan(phases: [.init(shape: .constant(rate: 1), duration: .seconds(3))]).duration == .seconds(3))
    }

    @Test func mathWithoutFoundation() {
        for x in stride(from: 0.0, through: 3, by: 0.05) {
            #expect(abs(sin2pi(x) - Foundation.sin(2 * Double.pi * x)) < 1e-9)
        }
        for x in [1e-12, 1e-3, 0.5, 1, 2, 10, 12345.678] {
            #expect(abs(SluiceSimulation.log(x) - Foundation.log(x)) < 1e-9)
        }
    }
}
