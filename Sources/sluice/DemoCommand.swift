import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SluiceConfig
import SluiceCore
import SluiceGateway
import SluiceLoad
import SluiceReplica
import SluiceSimulation
import Synchronization

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The gateway in front of four simulated replicas and a built-in load ramp, in one process, on built-in defaults.")

    @Option(name: .long, help: "Data listener (host:port; port 0 picks a free one).")
    var listen = "127.0.0.1:8080"

    @Option(name: .long, help: "Admin listener (host:port).")
    var admin = "127.0.0.1:9090"

    @Option(name: .long, help: "Seconds of built-in load (a ramp up, a plateau, a ramp down); the demo ends with it.")
    var duration: Double = 60

    @Option(name: .long, help: "Peak requests per second of the built-in load (0: none; the demo then runs until Ctrl-C or --duration).")
    var rate: Double = 40

    @Option(name: .long, help: "Where the load report (report.json, report.svg) is written.")
    var out = "loadtest/out/demo"

    @Flag(name: .long, help: "Start the chat pool with one replica of a slower engine, with a p95 objective of 600 ms (TTFT of streamed answers, latency of the others): the gateway's scale decisions start and stop replicas (each joins after --startup-delay).")
    var autoscale = false

    @Option(name: .long, help: "With --autoscale: seconds from a replica's start to its joining the pool.")
    var startupDelay = 3.0

    @Flag(name: .long, help: "With --autoscale: start the chat pool with no replica (scaling.min_replicas: 0). The first requests wait in its queue while the decision asks for one, and go once it has joined.")
    var fromZero = false

    func run() async throws {
        guard let listenAddress = ConfigValues.hostPort(listen, allowZeroPort: true),
              let adminAddress = ConfigValues.hostPort(admin, allowZeroPort: true)
        else { throw ValidationError("--listen and --admin take host:port") }
        guard duration > 0, rate >= 0 else { throw ValidationError("--duration must be above 0 and --rate at least 0") }
        guard autoscale || !fromZero else { throw ValidationError("--from-zero needs --autoscale") }
        bootstrapLogging(level: "notice")
        let logger = Logger(label: "sluice-demo")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)

        var replicas: [ReplicaServer] = []
        var addresses: [ReplicaID] = []
        // With --autoscale the chat pool starts with one replica of the fast engine run 20x
        // slower (about 10 streamed chats/s each), so the load ramp needs more.
        var slow = ReplicaProfile.fast
        slow.timeScale = 1
        for index in 1...(autoscale ? 1 : 4) {
            let replica = ReplicaServer(
                configuration: ReplicaConfiguration(id: "replica-\(index)", profile: autoscale && !fromZero ? slow : .fast), group: group)
            let address = try await replica.start()
            replicas.append(replica)
            addresses.append(ReplicaID(host: "127.0.0.1", port: address.port!))
        }

        let paths = { (list: [String]) in list.compactMap(PathPattern.init) }
        // (From zero, the replica started above serves only the embeddings pool.)
        var chat = PoolConfiguration(name: "chat", paths: paths(["/v1/chat/completions", "/v1/completions", "/v1/models"]), replicas: fromZero ? [] : addresses)
        chat.timeouts.responseHeader = .seconds(30)
        if fromZero { chat.queue.timeout = .seconds(30) }
        if autoscale {
            var scaling = ScalingConfiguration(targetP95: .milliseconds(600))
            scaling.minReplicas = fromZero ? 0 : 1
            scaling.maxReplicas = 8
            scaling.tick = .seconds(1)
            scaling.panicWindow = .seconds(4)
            scaling.stableWindow = .seconds(15)
            scaling.scaleDownDelay = .seconds(8)
            chat.scaling = scaling
        }
        var embeddings = PoolConfiguration(name: "embeddings", paths: paths(["/v1/embeddings", "/v2/*"]), replicas: addresses)
        // Concurrent embeddings and infer requests go upstream as batches (see docs/batching.md).
        embeddings.batching = BatchingConfiguration(maxBatch: 32, maxWait: .milliseconds(5), targetLatency: .milliseconds(50))
        let configuration = GatewayConfiguration(
            listen: listenAddress, admin: AdminConfiguration(listen: adminAddress), pools: [chat, embeddings])
        let hangups = await GatewayProcess.trapHangups()
        let gateway = Gateway(configuration: configuration, group: group, adminToken: nil, logger: logger)
        let bound = try await gateway.start()
        let base = "http://\(listenAddress.host):\(bound.data.port!)"
        let adminBase = "http://\(adminAddress.host):\(bound.admin.port!)"
        let load = rate > 0
            ? "a ramp to \(Int(rate)) requests/s and back over \(Int(duration)) s (chat, streamed chat, embeddings)"
            : "none (--rate 0)"
        say("""
        Sluice demo: gateway \(base) -> replicas \(addresses.map(\.description).joined(separator: ", "))
          (simulated: continuous batching with a prefix cache, the model of configs/replicas/fast.yaml)
          admin:   \(adminBase)/admin/pools   \(adminBase)/metrics   \(adminBase)/readyz\(autoscale ? "   \(adminBase)/admin/scale" : "")
          try a streamed chat completion (tokens arrive one by one; x-replica-id shows the replica):
            curl -N -i \(base)/v1/chat/completions -H 'content-type: application/json' \\
              -d '{"model":"sim-7b","stream":true,"max_tokens":12,"messages":[{"role":"user","content":"hello sluice"}]}'
          or embeddings:
            curl \(base)/v1/embeddings -H 'content-type: application/json' -d '{"model":"sim-7b","input":["a","b"]}'
          built-in load: \(load)\(autoscale ? "\n  autoscale: chat pool p95 objective 600 ms (TTFT of streams, latency of the rest); replicas start and stop as the gateway decides (each joins \(Int(startupDelay)) s after it starts)" : "")
          Ctrl-C stops it.
        """)

        let demoLoad = DemoLoad(
            target: base, admin: adminBase, rate: rate, duration: duration, out: out,
            actuator: autoscale ? Self.actuator(admin: adminBase, replica: ReplicaConfiguration(id: "scaled", profile: slow), startupDelay: startupDelay, group: group) : nil)
        try await GatewayProcess.run(
            gateway, grace: .seconds(5), hangups: hangups,
            extra: [.init(service: demoLoad, successTerminationBehavior: .gracefullyShutdownGroup)], logger: logger)
        for replica in replicas { await replica.stop() }
        try await group.shutdownGracefully()
        say("Sluice demo stopped.")
    }

    static func actuator(admin: String, replica: ReplicaConfiguration, startupDelay: Double, group: any EventLoopGroup) -> ReplicaActuator? {
        guard let client = AdminClient(url: admin) else { return nil }
        var settings = ReplicaActuator.Settings(pool: "chat", replica: replica)
        settings.startupDelay = .milliseconds(Int64(startupDelay * 1000))
        return ReplicaActuator(settings, client: client, group: group) { event in
            say("[autoscale] \(Int(event.second))s \(event.action) \(event.replica) (desired \(event.desired), in rotation \(event.current))")
        }
    }
}

/// The demo's built-in load: a ramp up, a plateau and a ramp down through the gateway, a live
/// summary every two seconds, then the report. Ends the demo when done; Ctrl-C ends it early
/// (the report then covers what was sent).
struct DemoLoad: Service {
    let target: String
    let admin: String
    let rate: Double
    let duration: Double
    let out: String
    let actuator: ReplicaActuator?

    func run() async throws {
        guard rate > 0 else {
            // No load: the demo runs until Ctrl-C or --duration.
            try? await Task.sleep(for: .milliseconds(Int64(duration * 1000)))
            return
        }
        let third = Duration.milliseconds(Int64(duration * 1000 / 3))
        var chat = Workload.Chat()
        chat.users = 40
        chat.systemPrompts = 3
        chat.systemPromptWords = 120
        chat.userWords = 20
        chat.turns = 4
        chat.streamFraction = 0.7
        chat.maxTokens = 24
        var embeddings = Workload.Embeddings()
        embeddings.inputs = 4
        var settings = LoadRunSettings(
            scenario: "demo",
            plan: ArrivalPlan(phases: [
                .init(shape: .ramp(from: rate * 0.2, to: rate), duration: third),
                .init(shape: .constant(rate: rate), duration: third),
                .init(shape: .ramp(from: rate, to: rate * 0.2), duration: third),
            ]),
            mix: [.init(weight: 3, workload: .chat(chat)), .init(weight: 1, workload: .embeddings(embeddings))])
        settings.adminURL = admin
        let stop = StopFlag()
        let acting = actuator.map { actuator in Task { await actuator.run(shouldStop: { stop.isSet }) } }
        var report = try await withGracefulShutdownHandler {
            try await LoadRunner.run(settings, target: target, progress: { progress in
                guard progress.second % 2 == 0 else { return }
                let total = max(1, progress.replicas.values.reduce(0, +))
                let shares = progress.replicas.keys.sorted().map { "\($0) \(100 * progress.replicas[$0]! / total)%" }
                say("[\(progress.second)/\(progress.plannedSeconds)s] rate \(progress.lastSecondCompleted)/s  "
                    + "p95 \(String(format: "%.1f", progress.lastSecondP95Ms)) ms  errors \(progress.errors)  "
                    + "sent \(progress.sent)  share \(shares.joined(separator: " "))")
            }, shouldStop: { stop.isSet })
        } onGracefulShutdown: {
            stop.set()
        }
        stop.set()
        await acting?.value
        if let actuator {
            report.scalingEvents = actuator.events.map {
                .init(second: ($0.second * 10).rounded() / 10, action: $0.action, replica: $0.replica, desired: $0.desired, current: $0.current)
            }
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let json = URL(fileURLWithPath: out).appendingPathComponent("report.json")
        let svg = URL(fileURLWithPath: out).appendingPathComponent("report.svg")
        try report.json().write(to: json)
        try Data(ReportChart.svg(report).utf8).write(to: svg)
        let errors = report.requests.failed + report.requests.errorResponses
        say("""
        load done: \(report.requests.sent) sent, \(report.requests.completed) completed, \(errors) errors; \
        p50 \(report.latencyMs.p50) ms, p95 \(report.latencyMs.p95) ms, p99 \(report.latencyMs.p99) ms\
        \(report.ttftMs.map { ", TTFT p95 \($0.p95) ms" } ?? "")
          report: \(json.path)
          chart:  \(svg.path) (open it in a browser)
        """)
    }
}

/// Set once, from a shutdown handler; read by the load runner.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

/// Writes a line to standard output at once (print is block-buffered when piped to a file).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
