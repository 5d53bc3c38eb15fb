import Foundation
import Histogram
import NIOCore
import NIOPosix
import SluiceConfig
import SluiceCore
import SluiceSimulation

/// Everything a run needs besides the target.
public struct LoadRunSettings: Sendable {
    public var scenario: String
    public var plan: ArrivalPlan
    public var mix: [WeightedWorkload]
    public var tenants: [LoadTenant] = []
    public var seed: UInt64 = 1
    /// Upper bound on open connections (spread over the threads); a request that finds none free
    /// waits, and the wait counts as its latency.
    public var maxConnections = 1024
    public var timeout: Duration = .seconds(30)
    public var threads = 2
    /// The gateway's admin listener (`http://host:port`): its pools are sampled each second.
    public var adminURL: String?

    public init(scenario: String, plan: ArrivalPlan, mix: [WeightedWorkload]) {
        self.scenario = scenario
        self.plan = plan
        self.mix = mix
    }
}

/// Once a second during a run.
public struct LoadProgress: Sendable {
    public var second: Int
    public var plannedSeconds: Int
    public var sent: Int
    public var completed: Int
    public var errors: Int
    /// Completed in the last full second, and their p95 latency.
    public var lastSecondCompleted: Int
    public var lastSecondP95Ms: Double
    /// Answers so far by `x-replica-id`.
    public var replicas: [String: Int]
}

/// An open-loop load run against an HTTP/1.1 target: a dispatcher sends each request at its
/// planned time (whatever came back before), workers on other event loops carry them.
public enum LoadRunner {
    public enum Failure: Error, CustomStringConvertible {
        case badTarget(String)

        public var description: String {
            switch self {
            case .badTarget(let text): "target must be http://host:port (got \(text))"
            }
        }
    }

    /// Runs the plan against `target` (`http://host:port`), reporting progress each second.
    /// `shouldStop` is asked once a second: when it says yes, sending stops, requests in flight
    /// get two seconds, and the report covers what was sent (a demo stopped with Ctrl-C).
    public static func run(
        _ settings: LoadRunSettings, target: String, progress: @escaping @Sendable (LoadProgress) -> Void = { _ in },
        shouldStop: @escaping @Sendable () -> Bool = { false }
    ) async throws -> LoadReport {
        // Several targets (comma-separated: gateway instances behind one Service) take each
        // request at random, so consecutive turns of a session land on any of them.
        var endpoints: [Endpoint] = []
        for text in target.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let (host, port) = parseTarget(text) else { throw Failure.badTarget(text) }
            endpoints.append(Endpoint(host: "\(host):\(port)", address: try SocketAddress.makeAddressResolvingHost(host, port: port)))
        }
        guard !endpoints.isEmpty else { throw Failure.badTarget(target) }
        let threads = max(1, settings.threads)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            let report = try await run(
                settings, endpoints: endpoints, group: group, threads: threads, target: target,
                progress: progress, shouldStop: shouldStop)
            try? await group.shutdownGracefully()
            return report
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    struct Endpoint {
        var host: String
        var address: SocketAddress
    }

    private static func run(
        _ settings: LoadRunSettings, endpoints: [Endpoint], group: MultiThreadedEventLoopGroup,
        threads: Int, target: String, progress: @escaping @Sendable (LoadProgress) -> Void,
        shouldStop: @escaping @Sendable () -> Bool
    ) async throws -> LoadReport {
        let cpuBefore = cpuSeconds()
        let startedAt = Date()
        let origin = NIODeadline.now() + .milliseconds(20)
        let loops = Array(group.makeIterator())
        let timeout = TimeAmount.nanoseconds(settings.timeout.nanoseconds)
        // One worker per event loop and target: worker `loop × targets + target`.
        let workers = loops.flatMap { loop in
            endpoints.map { endpoint in
                LoadWorker(
                    loop: loop, target: endpoint.address, host: endpoint.host,
                    maxConnections: max(1, settings.maxConnections / threads / endpoints.count),
                    timeout: timeout, origin: origin)
            }
        }
        let dispatcher = Dispatcher(settings: settings, workers: workers, targets: endpoints.count, origin: origin, loop: loops[0])
        dispatcher.loop.execute { dispatcher.tick() }
        let planned = settings.plan.duration
        let plannedSeconds = Int(planned.seconds.rounded(.up))

        // Progress, once a second, until the plan has been sent and every request has ended (or
        // timed out).
        var second = 0
        var stopAt: Int?
        var gatewaySamples: [LoadReport.GatewaySample] = []
        let sampler = settings.adminURL.flatMap { GatewaySampler(adminURL: $0) }
        if let sampler, let pools = await sampler.sample() { gatewaySamples.append(.init(second: 0, pools: pools)) }
        let clockStart = ContinuousClock.now
        while true {
            try await Task.sleep(until: clockStart + .seconds(second + 1), clock: .continuous)
            second += 1
            // Read before the counts: a send made after this is then seen in them.
            let dispatched = try await dispatcher.loop.submit { dispatcher.finished }.get()
            if let sampler, let pools = await sampler.sample() { gatewaySamples.append(.init(second: second, pools: pools)) }
            let previous = second - 1
            let snapshots = try await collect(workers) { worker in
                let last = worker.recorder.timeline[previous]
                return (
                    worker.recorder.sent, worker.recorder.completed,
                    worker.recorder.errors.values.reduce(0, +) + worker.recorder.statuses.filter { $0.key >= 400 }.values.reduce(0, +),
                    worker.outstanding, last, worker.recorder.replicas)
            }
            var replicas: [String: Int] = [:]
            for snapshot in snapshots { replicas.merge(snapshot.5, uniquingKeysWith: +) }
            var lastSecond = LoadRecorder.Second()
            for snapshot in snapshots { if let bucket = snapshot.4 { lastSecond.merge(bucket) } }
            progress(LoadProgress(
                second: second, plannedSeconds: plannedSeconds, sent: snapshots.map(\.0).reduce(0, +),
                completed: snapshots.map(\.1).reduce(0, +), errors: snapshots.map(\.2).reduce(0, +),
                lastSecondCompleted: lastSecond.completed,
                lastSecondP95Ms: Double(lastSecond.latency.valueAtPercentile(95)) / 1000, replicas: replicas))
            let outstanding = snapshots.map(\.3).reduce(0, +)
            if dispatched, outstanding == 0 { break }
            if stopAt == nil, shouldStop() {
                try await dispatcher.loop.submit { dispatcher.stop() }.get()
                stopAt = second + 2
            }
            if let stopAt, second >= stopAt { break }
            // Bounded: the plan, then every request's timeout, then a second.
            if Double(second) > planned.seconds + settings.timeout.seconds + 2 { break }
        }
        let elapsed = Date().timeIntervalSince(startedAt)
        var total = LoadRecorder()
        for recorder in try await collect(workers, { worker in
            worker.closeAll()
            return worker.recorder
        }) { total.merge(recorder) }
        let cpu = cpuSeconds() - cpuBefore
        var report = makeReport(settings, target: target, startedAt: startedAt, elapsed: elapsed, cpu: cpu, threads: threads, total: total)
        if settings.adminURL != nil { report.gateway = gatewaySamples }
        return report
    }

    static func makeReport(
        _ settings: LoadRunSettings, target: String, startedAt: Date, elapsed: Double, cpu: Double, threads: Int, total: LoadRecorder
    ) -> LoadReport {
        let failed = total.errors.values.reduce(0, +)
        let errorResponses = total.statuses.filter { $0.key >= 400 }.values.reduce(0, +)
        let timeline = total.timeline.keys.sorted().map { second -> LoadReport.Point in
            let bucket = total.timeline[second]!
            return LoadReport.Point(
                second: second, sent: bucket.sent, completed: bucket.completed, errors: bucket.errors,
                p50Ms: Double(bucket.latency.valueAtPercentile(50)) / 1000,
                p95Ms: Double(bucket.latency.valueAtPercentile(95)) / 1000,
                p99Ms: Double(bucket.latency.valueAtPercentile(99)) / 1000,
                ttftP95Ms: bucket.ttft.totalCount > 0 ? Double(bucket.ttft.valueAtPercentile(95)) / 1000 : nil,
                itlP95Ms: bucket.itl.totalCount > 0 ? Double(bucket.itl.valueAtPercentile(95)) / 1000 : nil)
        }
        let formatter = ISO8601DateFormatter()
        let empty = LoadReport.Summary(count: 0, mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0)
        return LoadReport(
            scenario: settings.scenario, target: target, startedAt: formatter.string(from: startedAt),
            plannedSeconds: settings.plan.duration.seconds, elapsedSeconds: (elapsed * 1000).rounded() / 1000,
            requests: .init(
                sent: total.sent, completed: total.completed, failed: failed, errorResponses: errorResponses,
                byStatus: Dictionary(uniqueKeysWithValues: total.statuses.map { (String($0.key), $0.value) }),
                failures: total.errors, byWorkload: total.workloads),
            throughputRps: elapsed > 0 ? (Double(total.completed) / min(elapsed, max(settings.plan.duration.seconds, 0.001)) * 100).rounded() / 100 : 0,
            latencyMs: LoadReport.summary(total.latency) ?? empty,
            ttftMs: LoadReport.summary(total.ttft), itlMs: LoadReport.summary(total.itl),
            errorLatencyMs: LoadReport.summary(total.errorLatency),
            replicas: total.replicas,
            connections: .init(opened: total.connectionsOpened, limit: settings.maxConnections, requestsThatWaited: total.waitedForConnection),
            generator: .init(
                threads: threads, cpuSeconds: (cpu * 1000).rounded() / 1000,
                cpuMsPerThousandRequests: total.sent > 0 ? (cpu * 1000 / Double(total.sent) * 1000 * 100).rounded() / 100 : 0,
                sendLatenessP99Ms: Double(total.lateness.valueAtPercentile(99)) / 1000,
                sendLatenessMaxMs: Double(total.lateness.maxRecorded) / 1000),
            timeline: timeline)
    }

    private static func collect<T: Sendable>(_ workers: [LoadWorker], _ read: @escaping @Sendable (LoadWorker) -> T) async throws -> [T] {
        var values: [T] = []
        for worker in workers {
            values.append(try await worker.loop.submit { read(worker) }.get())
        }
        return values
    }

    static func parseTarget(_ text: String) -> (String, Int)? {
        guard text.hasPrefix("http://") else { return nil }
        var rest = text.dropFirst("http://".count)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        let host = String(rest[..<colon])
        return host.isEmpty ? nil : (host, port)
    }

    /// User and system CPU time of this process so far.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}

/// Sends each planned request at its time, round-robin over the event loops, to a target drawn
/// at random (from its own seeded stream, so the requests themselves do not change with the
/// number of targets). Lives on one loop.
final class Dispatcher: @unchecked Sendable {
    let loop: any EventLoop
    private var schedule: ArrivalSchedule<SplitMix64>
    private var generator: RequestGenerator<SplitMix64>
    private var targetDraws: SplitMix64
    private let workers: [LoadWorker]
    private let targets: Int
    private let origin: NIODeadline
    private var next: Duration?
    private var index = 0
    private(set) var finished = false
    private var stopped = false

    init(settings: LoadRunSettings, workers: [LoadWorker], targets: Int, origin: NIODeadline, loop: any EventLoop) {
        self.loop = loop
        self.workers = workers
        self.targets = max(1, targets)
        self.targetDraws = SplitMix64(seed: settings.seed &+ 2)
        self.origin = origin
        var schedule = ArrivalSchedule(plan: settings.plan, generator: SplitMix64(seed: settings.seed))
        self.next = schedule.next()
        self.schedule = schedule
        self.generator = RequestGenerator(mix: settings.mix, tenants: settings.tenants, generator: SplitMix64(seed: settings.seed &+ 1))
    }

    /// Sends nothing more.
    func stop() {
        stopped = true
        next = nil
        finished = true
    }

    func tick() {
        guard !stopped else { return }
        let now = NIODeadline.now()
        while let offset = next {
            let intended = origin + .nanoseconds(offset.nanoseconds)
            if intended > now + .microseconds(100) {
                loop.scheduleTask(deadline: intended) { self.tick() }
                return
            }
            let request = generator.next()
            let loopIndex = index % (workers.count / targets)
            let targetIndex = targets == 1 ? 0 : Int(targetDraws.next() % UInt64(targets))
            let worker = workers[loopIndex * targets + targetIndex]
            index += 1
            worker.loop.execute { worker.send(request, intended: intended) }
            next = schedule.next()
        }
        finished = true
    }
}
