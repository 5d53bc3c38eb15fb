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
