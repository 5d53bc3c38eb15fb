/// When requests are sent, decided before the run and never by responses (an open loop), so a
/// slow server cannot slow the load down and hide its own latency (coordinated omission).
///
/// A plan is a list of phases; each phase has a rate shape over its duration and a process:
/// `uniform` (evenly spaced at the current rate) or `poisson` (exponential gaps at the current
/// rate, by thinning). Times are offsets from the run's start.
public struct ArrivalPlan: Sendable, Equatable {
    public enum Shape: Sendable, Equatable {
        case constant(rate: Double)
        /// Linear from `from` to `to` requests/s over the phase.
        case ramp(from: Double, to: Double)
        /// `from` requests/s until `at` into the phase, then `to`.
        case step(from: Double, to: Double, at: Duration)
        /// `mean + amplitude × sin(2π t / period)` (a diurnal cycle, compressed).
        case sine(mean: Double, amplitude: Double, period: Duration)
    }

    public enum Process: String, Sendable, Equatable {
        case uniform
        case poisson
    }

    public struct Phase: Sendable, Equatable {
        public var shape: Shape
        public var duration: Duration
        public var process: Process

        public init(shape: Shape, duration: Duration, process: Process = .poisson) {
            self.shape = shape
            self.duration = duration
            self.process = process
        }

        /// Requests per second `t` seconds into the phase (never negative).
        public func rate(at t: Double) -> Double {
            let seconds = duration.seconds
            switch shape {
            case .constant(let rate):
                return max(0, rate)
            case .ramp(let from, let to):
                return max(0, from + (to - from) * (seconds > 0 ? t / seconds : 0))
            case .step(let from, let to, let at):
                return max(0, t < at.seconds ? from : to)
            case .sine(let mean, let amplitude, let period):
                return max(0, mean + amplitude * sin2pi(t / period.seconds))
            }
        }

        /// The highest rate in the phase (the thinning envelope).
        public var peakRate: Double {
            switch shape {
            case .constant(let rate): max(0, rate)
            case .ramp(let from, let to): max(0, from, to)
            case .step(let from, let to, _): max(0, from, to)
            case .sine(let mean, let amplitude, _): max(0, mean + abs(amplitude))
            }
        }

        /// Requests this phase sends on average (the integral of its rate).
        public var expectedCount: Double {
            let seconds = duration.seconds
            let steps = 10_000
            let width = seconds / Double(steps)
            return (0..<steps).reduce(0) { $0 + rate(at: (Double($1) + 0.5) * width) * width }
        }
    }

    public var phases: [Phase]

    public init(phases: [Phase]) {
        self.phases = phases
    }

    public var duration: Duration { phases.reduce(.zero) { $0 + $1.duration } }
}

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

extension Duration {
    /// Seconds as a floating-point number.
    public var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}

/// sin(2πx) and log without Foundation (SluiceCore imports nothing): series good to ~1e-12.
@inline(__always) func sin2pi(_ x: Double) -> Double {
    var r = x - (x).rounded(.down)  // [0, 1)
    var sign = 1.0
    if r >= 0.5 { r -= 0.5; sign = -1 }  // sin(π + a) = -sin(a)
    let a = r * 2 * Double.pi  // [0, π)
    let y = a > Double.pi / 2 ? Double.pi - a : a  // [0, π/2]
    let y2 = y * y
    var term = y
    var sum = y
    for n in stride(from: 2, through: 26, by: 2) {
        term *= -y2 / Double(n * (n + 1))
        sum += term
    }
    return sign * sum
}

@inline(__always) func log(_ x: Double) -> Double {
    // log(x) = 2·atanh((x-1)/(x+1)) after scaling x into [0.5, 1) by powers of two.
    precondition(x > 0)
    let exponent = x.exponent
    let m = x.significand / 2  // [0.5, 1)
    let e = Double(exponent + 1)
    let z = (m - 1) / (m + 1)
    let z2 = z * z
    var term = z
    var sum = z
    var n = 3.0
    while abs(term) > 1e-17 {
        term *= z2
        sum += term / n
        n += 2
    }
    return 2 * sum + e * 0.693_147_180_559_945_3
}

extension ArrivalPlan {
    /// The same plan with every duration times `duration` and every rate times `rate`.
    public func scaled(duration: Double, rate: Double) -> ArrivalPlan {
        ArrivalPlan(phases: phases.map { phase in
            let shape: Shape
            switch phase.shape {
            case .constant(let value): shape = .constant(rate: value * rate)
            case .ramp(let from, let to): shape = .ramp(from: from * rate, to: to * rate)
            case .step(let from, let to, let at): shape = .step(from: from * rate, to: to * rate, at: at * duration)
            case .sine(let mean, let amplitude, let period): shape = .sine(mean: mean * rate, amplitude: amplitude * rate, period: period * duration)
            }
            return Phase(shape: shape, duration: phase.duration * duration, process: phase.process)
        })
    }
}
