/// The send times of a plan, one at a time (a run may hold millions; none is stored).
public struct ArrivalSchedule<Generator: RandomNumberGenerator>: Sendable where Generator: Sendable {
    private let plan: ArrivalPlan
    private var generator: Generator
    private var phaseIndex = 0
    private var phaseStart = 0.0
    /// Seconds into the current phase of the last arrival.
    private var t = 0.0
    /// Uniform process: the fraction of a request accumulated towards the next send.
    private var credit = 0.0
    private var started = false

    public init(plan: ArrivalPlan, generator: Generator) {
        self.plan = plan
        self.generator = generator
    }

    /// The next send time, as an offset from the run's start; nil once the plan has ended.
    public mutating func next() -> Duration? {
        while phaseIndex < plan.phases.count {
            let phase = plan.phases[phaseIndex]
            let length = phase.duration.seconds
            if let offset = nextInPhase(phase, length: length) {
                return .seconds(phaseStart + offset)
            }
            phaseStart += length
            phaseIndex += 1
            t = 0
            credit = 0
            started = false
        }
        return nil
    }

    /// A draw in [0, 1) from the injected generator (53 random bits).
    private mutating func unitDraw() -> Double {
        Double(generator.next() >> 11) / Double(1 << 53)
    }

    private mutating func nextInPhase(_ phase: ArrivalPlan.Phase, length: Double) -> Double? {
        switch phase.process {
        case .uniform:
            // Integrate the rate in small steps until one more request is due: the n-th send
            // is where the integral of the rate reaches n (the first at the phase's start).
            if !started {
                started = true
                if phase.rate(at: 0) > 0 { return 0 }
            }
            // Integrate in small steps; within a step the rate is taken as constant, so the
            // crossing of the next whole request is found exactly (any number per step).
            let step = min(0.000_5, length / 1000)
            while t < length {
                let next = min(t + step, length)
                let rate = phase.rate(at: (t + next) / 2)
                if rate > 0, credit + rate * (next - t) >= 1 {
                    t += (1 - credit) / rate
                    credit = 0
                    // (A crossing a rounding error before the end belongs to the next phase.)
                    return t < length - 1e-9 ? t : nil
                }
                credit += rate * (next - t)
                t = next
            }
            return nil
        case .poisson:
            let peak = phase.peakRate
            guard peak > 0 else { return nil }
            while true {
                // Both draws come from the caller's seeded generator: (0, 1] for the gap, [0, 1)
                // for thinning.
                t += -log(1 - unitDraw()) / peak
                guard t < length else { return nil }
                if unitDraw() * peak <= phase.rate(at: t) { return t }
            }
        }
    }
}
