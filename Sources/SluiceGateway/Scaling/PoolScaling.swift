import Foundation
import NIOCore
import Prometheus
import SluiceConfig
import SluiceCore
import Synchronization

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
        /// The last `historyLength` decisions, oldest first: the status page's chart.
        var history: [Published] = []

        mutating func publish(_ published: Published, replacingLatest: Bool = false) {
            latest = published
            if replacingLatest, !history.isEmpty { history.removeLast() }
            history.append(published)
            if history.count > PoolScaling.historyLength { history.removeFirst(history.count - PoolScaling.historyLength) }
        }
    }

    /// Decisions kept for the status page: twenty minutes at the default two-second tick.
    static let historyLength = 600

    let configuration: ScalingConfiguration
    let window: SignalWindow
    private let arrivals = Atomic<Int>(0)
    private let state: Mutex<State>
    /// The signal as a Prometheus histogram (cumulative), so Prometheus can aggregate it
    /// across gateway instances.
    private let series: LatencyHistogram

    init(_ configuration: ScalingConfiguration, pool: String, metrics: GatewayMetrics) {
        self.configuration = configuration
        // Shared: sub-windows cut at wall-clock instants, the same on every instance.
        let offset = configuration.shared == nil ? 0 : Self.wallNanoseconds() &- NIODeadline.now().uptimeNanoseconds
        window = SignalWindow(length: UInt64(configuration.stableWindow.nanoseconds), subWindow: UInt64(configuration.tick.nanoseconds), offset: offset)
        state = Mutex(State(advisor: ScaleAdvisor(policy: configuration.policy)))
        series = metrics.scalingSignal.makeSeries(labels: [("pool", pool), ("signal", configuration.signal.rawValue)])
    }

    func recordArrival() {
        arrivals.wrappingAdd(1, ordering: .relaxed)
    }

    /// Records one sample of the pool's signal.
    func record(nanoseconds: Int64, at now: NIODeadline = .now()) {
        let value = UInt64(max(0, nanoseconds))
        window.record(nanoseconds: value, at: now.uptimeNanoseconds)
        series.record(nanoseconds: Int64(value))
    }

    var latest: Published? { state.withLock { $0.latest } }

    /// The recent decisions, oldest first.
    var history: [Published] { state.withLock { $0.history } }

    /// The pool's load now: in flight, queued (here and as replicas report), healthy replicas.
    private func load(_ pool: PoolRuntime, now: UInt64) -> (inFlight: Int, queued: Int, healthy: Int) {
        let replicas = pool.snapshot.replicas
        let staleAfter = UInt64(max(1, pool.configuration.routing.scrapeInterval.nanoseconds * 3))
        let inFlight = replicas.reduce(0) { $0 + $1.inFlight }
        let queued = (pool.gate?.waiting ?? 0) + replicas.reduce(0) { $0 + $1.reportedWaiting(at: now, staleAfter: staleAfter) }
        return (inFlight, queued, replicas.filter { $0.isAvailable(at: now) }.count)
    }

    /// One advisor tick for `pool` at `now` on this instance's own windows; returns the decision
    /// and whether the desired count changed since the last tick. `advisorNow` is the advisor's
    /// clock (the shared view runs it on the wall clock).
    func tick(_ pool: PoolRuntime, now: UInt64, advisorNow: UInt64? = nil, wall: Date = Date()) -> (Published, changed: Bool) {
        window.advance(to: now)
        let stable = window.histogram(over: UInt64(configuration.stableWindow.nanoseconds), at: now)
        let panic = window.histogram(over: UInt64(configuration.panicWindow.nanoseconds), at: now)
        let (inFlight, queued, healthy) = load(pool, now: now)
        return decide(pool, stable: stable, panic: panic, inFlight: inFlight, queued: queued, healthy: healthy, at: advisorNow ?? now, wall: wall)
    }

    private func decide(
        _ pool: PoolRuntime, stable: LogHistogram, panic: LogHistogram, inFlight: Int, queued: Int, healthy: Int, at now: UInt64, wall: Date
    ) -> (Published, changed: Bool) {
        let total = arrivals.load(ordering: .relaxed)
        return state.withLock { state in
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
            state.publish(published)
            return (published, previous != nil && previous != decision.desired)
        }
    }

    /// One tick through the shared view: publish this instance's last sub-window, decide on the
    /// merge of every instance's, and publish the tick's decision as the first instance stored
    /// it. When Redis fails, decides on this instance's own windows (and counts the failure).
    /// `notify` is true when this instance should tell the webhook (it stored the decision, or
    /// decided alone because Redis failed).
    func sharedTick(_ pool: PoolRuntime, view: SharedScaleView, now: UInt64, failures: Counter) -> EventLoopFuture<(Published, notify: Bool)> {
        let tickNanos = UInt64(configuration.tick.nanoseconds)
        window.advance(to: now)
        let number = window.epoch(at: now)
        let advisorNow = number &* tickNanos
        let previous = window.previousSubWindow(at: now)?.histogram ?? LogHistogram()
        let (inFlight, queued, healthy) = load(pool, now: now)
        let stableSpan = Int((UInt64(configuration.stableWindow.nanoseconds) + tickNanos - 1) / tickNanos)
        let panicSpan = Int((UInt64(configuration.panicWindow.nanoseconds) + tickNanos - 1) / tickNanos)
        let ttl = Int(configuration.stableWindow.nanoseconds / 1_000_000_000) + 2 * Int(max(1, tickNanos / 1_000_000_000)) + 5
        let before = latest?.decision.desired
        return view.exchange(
            number: number &- 1, histogram: previous, inFlight: inFlight, queued: queued, stableSpan: stableSpan, panicSpan: panicSpan,
            ttlSeconds: ttl
        ).flatMap { merged in
            let (mine, _) = self.decide(
                pool, stable: merged.stable, panic: merged.panic, inFlight: merged.inFlight, queued: merged.queued, healthy: healthy,
                at: advisorNow, wall: Date())
            return view.settle(decision: ScaleView.json(mine), number: number, ttlSeconds: ttl).map { stored, ours in
                let published = ScaleView.published(fromJSON: stored, signal: self.configuration.signal) ?? mine
                self.state.withLock { state in
                    state.publish(published, replacingLatest: true)
                    state.advisor.adopt(desired: published.decision.desired)
                }
                return (published, ours && before != nil && before != published.decision.desired)
            }
        }.flatMapErrorThrowing { _ in
            failures.increment()
            let (published, _) = self.tick(pool, now: now, advisorNow: advisorNow)
            return (published, before != nil && before != published.decision.desired)
        }
    }

    static func wallNanoseconds() -> UInt64 {
        UInt64(max(0, Date().timeIntervalSince1970 * 1e9))
    }
}
