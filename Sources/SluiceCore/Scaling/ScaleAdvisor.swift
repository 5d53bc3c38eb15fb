/// How many replicas a pool needs to hold its p95 latency objective, decided each tick from
/// the pool's latency windows and load, with the reason in words. Pure: the clock comes in with
/// the inputs, so traces replay exactly.
///
/// **Modes** (Knative's KPA): `stable` decides on the stable window's p95; `panic` starts when
/// the short panic window's p95 passes `panic_threshold × target`, acts at once, never scales
/// in, and ends only after a whole stable window without that condition.
///
/// **How many to add** comes from Little's law: the pool's concurrency (requests in flight at
/// the gateway plus those queued, here and at the replicas) divided by the per-replica
/// concurrency at which p95 met the target. That capacity is learnt: the highest per-replica
/// concurrency seen while the stable p95 was within target (and lowered, in proportion, when
/// p95 missed the target at or below it). Until it is known, the replica count grows in
/// proportion to p95 / target (the HPA's rule, on latency). The step is bounded by
/// `max_step_up` and `max_replicas`. The same inputs give the same desired count, so holding
/// it while new replicas start does not add more.
///
/// **Scale in** one replica at a time, only after the stable p95 stayed below
/// `target × scale_in_ratio` for `scale_down_delay`, and only when the load per replica after
/// the removal stays within the learnt capacity; never below `min_replicas`. Missing data (no
/// samples) never scales in: it restarts the delay.
///
/// **No flapping**: between the scale-out threshold and the scale-in band the decision holds.
public struct ScaleAdvisor: Sendable {
    public struct Policy: Sendable, Equatable {
        /// The p95 objective, nanoseconds.
        public var target: UInt64
        public var minReplicas: Int
        public var maxReplicas: Int
        public var stableWindow: UInt64
        public var panicWindow: UInt64
        public var panicThreshold: Double
        public var tolerance: Double
        public var scaleInRatio: Double
        public var scaleDownDelay: UInt64
        public var maxStepUp: Int
        /// Fewer samples than this in a window is no evidence (one slow request is not a p95).
        public var minSamples: UInt64

        public init(
            target: UInt64, minReplicas: Int = 1, maxReplicas: Int = 16, stableWindow: UInt64 = 60_000_000_000,
            panicWindow: UInt64 = 6_000_000_000, panicThreshold: Double = 2.0, tolerance: Double = 0.1,
            scaleInRatio: Double = 0.6, scaleDownDelay: UInt64 = 300_000_000_000, maxStepUp: Int = 4, minSamples: UInt64 = 10
        ) {
            self.target = target
            self.minReplicas = minReplicas
            self.maxReplicas = maxReplicas
            self.stableWindow = stableWindow
            self.panicWindow = panicWindow
            self.panicThreshold = panicThreshold
            self.tolerance = tolerance
            self.scaleInRatio = scaleInRatio
            self.scaleDownDelay = scaleDownDelay
            self.maxStepUp = maxStepUp
            self.minSamples = minSamples
        }
    }

    /// What the advisor sees at one tick.
    public struct Inputs: Sendable, Equatable {
        /// Healthy replicas in the pool now.
        public var replicas: Int
        /// p95 of the stable and panic windows (nanoseconds) and their sample counts.
        public var stableP95: UInt64?
        public var stableCount: UInt64
        public var panicP95: UInt64?
        public var panicCount: UInt64
        /// Requests in flight to the pool's replicas, and waiting (gateway queue plus the
        /// replicas' reported queues).
        public var inFlight: Int
        public var queued: Int
        /// Requests per second arriving at the pool (reported with the decision).
        public var arrivalRate: Double

        public init(
            replicas: Int, stableP95: UInt64?, stableCount: UInt64, panicP95: UInt64?, panicCount: UInt64,
            inFlight: Int, queued: Int, arrivalRate: Double = 0
        ) {
            self.replicas = replicas
            self.stableP95 = stableP95
            self.stableCount = stableCount
            self.panicP95 = panicP95
            self.panicCount = panicCount
            self.inFlight = inFlight
            self.queued = queued
            self.arrivalRate = arrivalRate
        }
    }

    public enum Mode: String, Sendable, Equatable {
        case stable, panic
    }

    public struct Decision: Sendable, Equatable {
        public var current: Int
        public var desired: Int
        public var stableP95: UInt64?
        public var panicP95: UInt64?
        public var target: UInt64
        public var mode: Mode
        public var reason: String
        /// Monotonic nanoseconds of the tick.
        public var at: UInt64
        /// The learnt per-replica concurrency at which p95 met the target, if known.
        public var capacityPerReplica: Double?

        public init(
            current: Int, desired: Int, stableP95: UInt64?, panicP95: UInt64?, target: UInt64, mode: Mode, reason: String, at: UInt64,
            capacityPerReplica: Double?
        ) {
            self.current = current
            self.desired = desired
            self.stableP95 = stableP95
            self.panicP95 = panicP95
            self.target = target
            self.mode = mode
            self.reason = reason
            self.at = at
            self.capacityPerReplica = capacityPerReplica
        }
    }

    public let policy: Policy
    public private(set) var mode = Mode.stable
    /// The last tick at which the panic condition held.
    private var lastPanicAt: UInt64?
    /// Since when the stable p95 has been below the scale-in band.
    private var belowSince: UInt64?
    public private(set) var capacityPerReplica: Double?
    public private(set) var desired: Int?

    public init(policy: Policy) {
        self.policy = policy
    }

    public mutating func tick(_ inputs: Inputs, now: UInt64) -> Decision {
        let current = max(0, inputs.replicas)
        let target = Double(policy.target)
        let load = Double(max(0, inputs.inFlight) + max(0, inputs.queued))
        let stable = inputs.stableCount >= policy.minSamples ? inputs.stableP95 : nil
        let panic = inputs.panicCount >= policy.minSamples ? inputs.panicP95 : nil
        var desired = clamp(self.desired ?? current)
        var reason: String

        // What the replicas can take: learnt while p95 is within target.
        if let stable, current > 0 {
            let perReplica = load / Double(current)
            if Double(stable) <= target {
                capacityPerReplica = max(capacityPerReplica ?? 0, perReplica)
            } else if let known = capacityPerReplica, perReplica <= known, perReplica > 0 {
                capacityPerReplica = perReplica * target / Double(stable)
            }
        }

        if let panic, Double(panic) > policy.panicThreshold * target {
            if mode == .stable { mode = .panic }
            lastPanicAt = now
        } else if mode == .panic, let last = lastPanicAt, now >= last, now - last >= policy.stableWindow {
            mode = .stable
        }

        let overStable = stable.map { Double($0) > target * (1 + policy.tolerance) } ?? false
        if current == 0, load > 0 {
            // No replica, and requests waiting: no latency can be measured, but one is needed.
            belowSince = nil
            desired = max(desired, 1)
            reason = "no replica in rotation and \(Self.one(load)) requests in flight or waiting; 0 → \(clamp(desired)) replicas"
        } else if mode == .panic || overStable {
            belowSince = nil
            let observed = mode == .panic ? (panic ?? stable ?? policy.target) : stable!
            // Sized on the freshest view: the panic window's p95 when it has data (the stable
            // window still remembers a surge the new replicas already absorb).
            let needed = scaleOutTarget(current: current, load: load, p95: panic ?? observed)
            let bounded = min(min(needed, current + policy.maxStepUp), policy.maxReplicas)
            // The count only rises here (scaling in has its own rule).
            let next = max(desired, bounded, current)
            let window = mode == .panic ? "panic window \(Self.seconds(policy.panicWindow))" : "stable window \(Self.seconds(policy.stableWindow))"
            reason = "p95 \(Self.seconds(observed)) > target \(Self.seconds(policy.target)) (\(window)); "
            if next > current {
                reason += "\(current) → \(next) replicas"
                if let capacity = capacityPerReplica, capacity > 0 {
                    reason += " to bring per-replica concurrency from \(Self.one(load / Double(max(1, current)))) to \(Self.one(load / Double(next))) (p95 met the target at \(Self.one(capacity)))"
                } else {
                    reason += " in proportion to p95 / target (capacity per replica not learnt yet)"
                }
                if next == policy.maxReplicas, needed > next { reason += ", capped at max_replicas \(policy.maxReplicas)" }
            } else if current >= policy.maxReplicas {
                reason += "already at max_replicas \(policy.maxReplicas)"
            } else {
                reason += "holding \(next) replicas (\(current) healthy now)"
            }
            desired = next
        } else if let stable, Double(stable) < target * policy.scaleInRatio {
            let since = belowSince ?? now
            belowSince = since
            let held = now >= since ? now - since : 0
            if held >= policy.scaleDownDelay, desired > policy.minReplicas, current > policy.minReplicas {
                let after = current > 1 ? load / Double(current - 1) : (load > 0 ? Double.infinity : 0)
                if after.isInfinite {
                    reason = "p95 \(Self.seconds(stable)) is low, but removing the last replica would leave \(Self.one(load)) requests without one; holding \(desired)"
                } else if let capacity = capacityPerReplica, after > capacity {
                    reason = "p95 \(Self.seconds(stable)) is low, but \(current - 1) replicas would each carry \(Self.one(after)) requests, above the \(Self.one(capacity)) at which p95 met the target; holding \(desired)"
                } else {
                    desired = min(desired, current) - 1
                    belowSince = now
                    reason = "p95 \(Self.seconds(stable)) < \(Self.seconds(UInt64(target * policy.scaleInRatio))) (target × \(policy.scaleInRatio)) for \(Self.seconds(held)); \(current) → \(desired) replicas (one step)"
                }
            } else if desired <= policy.minReplicas {
                reason = "p95 \(Self.seconds(stable)) within target; at min_replicas \(policy.minReplicas)"
            } else {
                reason = "p95 \(Self.seconds(stable)) below the scale-in band for \(Self.seconds(held)) of \(Self.seconds(policy.scaleDownDelay)); holding \(desired)"
            }
        } else {
            belowSince = nil
            if let stable {
                reason = "p95 \(Self.seconds(stable)) within target \(Self.seconds(policy.target)); holding \(desired)"
            } else {
                reason = "too few samples in the stable window (\(inputs.stableCount) < \(policy.minSamples)); holding \(desired)"
            }
        }
        desired = clamp(desired)
        self.desired = desired
        return Decision(
            current: current, desired: desired, stableP95: inputs.stableP95, panicP95: inputs.panicP95, target: policy.target,
            mode: mode, reason: reason, at: now, capacityPerReplica: capacityPerReplica)
    }

    /// Takes another instance's decision as its own (the shared view: the first instance to
    /// decide a tick decides it for all), so the next tick starts from the same count.
    public mutating func adopt(desired: Int) {
        self.desired = clamp(desired)
    }

    /// Replicas that would hold the target for `load`: by the learnt capacity, else in
    /// proportion to p95 / target (so a p95 back within target asks for no more).
    private func scaleOutTarget(current: Int, load: Double, p95: UInt64) -> Int {
        if let capacity = capacityPerReplica, capacity > 0, load > 0 {
            return Int((load / capacity).rounded(.up))
        }
        return Int((Double(max(1, current)) * Double(p95) / Double(policy.target)).rounded(.up))
    }

    private func clamp(_ value: Int) -> Int {
        min(max(value, policy.minReplicas), policy.maxReplicas)
    }

    /// `1.42 s`, `800 ms`.
    static func seconds(_ nanoseconds: UInt64) -> String {
        if nanoseconds < 1_000_000_000 { return "\((nanoseconds + 500_000) / 1_000_000) ms" }
        let hundredths = (nanoseconds + 5_000_000) / 10_000_000
        if hundredths % 100 == 0 { return "\(hundredths / 100) s" }
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100) s"
    }

    static func one(_ value: Double) -> String {
        guard value.isFinite, abs(value) < 1e12 else { return value > 0 ? "many" : "0" }
        let tenths = Int((value * 10).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(tenths % 10)"
    }
}
