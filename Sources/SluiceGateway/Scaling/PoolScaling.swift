import Atomics
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SluiceConfig
import SluiceCore

/// One pool's scale advice at run time: the signal as requests record it, the advisor, and the
/// latest decision as the publishers show it.
final class PoolScaling: Sendable {
    /// A decision with what it was made from, as `/admin/scale`, `/metrics` and the webhook show it.
    struct Published: Sendable {
        var pool: String
        var signal: ScalingSignal
        var decision: ScaleAdvisor.Decision
        var arrivalRate: Double
        var inFlight: Int
        var queued: Int
        /// Wall-clock time of the tick.
        var at: Date
    }

    private struct State: Sendable {
        var advisor: ScaleAdvisor
        var lastArrivals = 0
        var lastTick: UInt64?
        var latest: Published?
    }

    let configuration: ScalingConfiguration
    let window: SignalWindow
    private let arrivals = ManagedAtomic<Int>(0)
    private let state: NIOLockedValueBox<State>
    /// The signal as a Prometheus histogram (cumulative), so Prometheus can aggregate it
    /// across gateway instances.
    private let series: LatencyHistogram

    init(_ configuration: ScalingConfiguration, pool: String, metrics: GatewayMetrics) {
        self.configuration = configuration
        window = SignalWindow(length: UInt64(configuration.stableWindow.nanoseconds), subWindow: UInt64(configuration.tick.nanoseconds))
        state = NIOLockedValueBox(State(advisor: ScaleAdvisor(policy: configuration.policy)))
        series = metrics.scalingSignal.makeSeries(labels: [("pool", pool), ("signal", configuration.signal.rawValue)])
    }

    func recordArrival() {
        arrivals.wrappingIncrement(ordering: .relaxed)
    }

    /// Records one sample of the pool's signal.
    func record(nanoseconds: Int64, at now: NIODeadline = .now()) {
        let value = UInt64(max(0, nanoseconds))
        window.record(nanoseconds: value, at: now.uptimeNanoseconds)
        series.record(nanoseconds: Int64(value))
    }

    var latest: Published? { state.withLockedValue { $0.latest } }

    /// One advisor tick for `pool` at `now`; returns the decision and whether the desired
    /// count changed since the last tick.
    func tick(_ pool: PoolRuntime, now: UInt64, wall: Date = Date()) -> (Published, changed: Bool) {
        window.advance(to: now)
        let stable = window.histogram(over: UInt64(configuration.stableWindow.nanoseconds), at: now)
        let panic = window.histogram(over: UInt64(configuration.panicWindow.nanoseconds), at: now)
        let replicas = pool.snapshot.replicas
        let staleAfter = UInt64(max(1, pool.configuration.routing.scrapeInterval.nanoseconds * 3))
        let inFlight = replicas.reduce(0) { $0 + $1.inFlight }
        let queued = (pool.gate?.waiting ?? 0) + replicas.reduce(0) { $0 + $1.reportedWaiting(at: now, staleAfter: staleAfter) }
        let healthy = replicas.filter { $0.isAvailable(at: now) }.count
        let total = arrivals.load(ordering: .relaxed)
        return state.withLockedValue { state in
            var rate = 0.0
            if let last = state.lastTick, now > last {
                rate = Double(total - state.lastArrivals) / (Double(now - last) / 1e9)
            }
            state.lastArrivals = total
            state.lastTick = now
            let inputs = ScaleAdvisor.Inputs(
                replicas: healthy, stableP95: stable.quantile(0.95).map { $0 * 1_000 }, stableCount: stable.count,
                panicP95: panic.quantile(0.95).map { $0 * 1_000 }, panicCount: panic.count,
                inFlight: inFlight, queued: queued, arrivalRate: rate)
            let previous = state.latest?.decision.desired
            let decision = state.advisor.tick(inputs, now: now)
            let published = Published(
                pool: pool.name, signal: configuration.signal, decision: decision, arrivalRate: rate,
                inFlight: inFlight, queued: queued, at: wall)
            state.latest = published
            return (published, previous != nil && previous != decision.desired)
        }
    }
}

/// Runs each scaled pool's advisor every `tick` and hands changed decisions to the publisher.
final class ScaleTicker: Sendable {
    private let pools: [PoolRuntime]
    private let group: any EventLoopGroup
    private let publisher: ScalePublisher
    private let tasks = NIOLockedValueBox<[RepeatedTask]>([])

    init(pools: [PoolRuntime], group: any EventLoopGroup, publisher: ScalePublisher) {
        self.pools = pools.filter { $0.scaling != nil }
        self.group = group
        self.publisher = publisher
    }

    func start() {
        var started: [RepeatedTask] = []
        for pool in pools {
            guard let scaling = pool.scaling else { continue }
            // A first decision at once (with no samples it holds the current count), so the
            // publishers have something to show from the start.
            _ = scaling.tick(pool, now: NIODeadline.now().uptimeNanoseconds)
            let interval = TimeAmount.nanoseconds(scaling.configuration.tick.nanoseconds)
            let publisher = self.publisher
            started.append(group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                let (decision, changed) = scaling.tick(pool, now: NIODeadline.now().uptimeNanoseconds)
                if changed { publisher.publish(decision) }
            })
        }
        tasks.withLockedValue { $0 = started }
    }

    func stop() {
        let running = tasks.withLockedValue { tasks in
            defer { tasks = [] }
            return tasks
        }
        for task in running { task.cancel() }
    }
}
