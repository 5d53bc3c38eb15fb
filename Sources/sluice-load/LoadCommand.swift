import ArgumentParser
import Foundation
import SluiceConfig
import SluiceCore
import SluiceLoad
import SluiceReplica
import SluiceSimulation
import NIOPosix
import Synchronization

@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-load",
        abstract: "An open-loop load generator for inference gateways and model servers.",
        subcommands: [RunCommand.self, CheckScenarioCommand.self, CeilingCommand.self])
}

struct CheckScenarioCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate scenario files without sending anything.")

    @Argument(help: "Scenario files.")
    var scenarios: [String]

    func run() throws {
        for path in scenarios {
            let scenario = try loadScenario(path)
            print("\(path): OK (\(scenario.name): \(scenario.plan.phases.count) phase(s), \(Int(scenario.plan.duration.seconds)) s, \(scenario.mix.count) workload(s), \(scenario.tenants.count) tenant(s))")
        }
    }
}

/// The best prefix-cache hit rate any router could reach on a scenario (`IdealPrefixCache`): its
/// requests, generated exactly as `run` generates them, served by one unbounded cache with
/// `sluice-replica`'s answers. The column to read `loadtest/compare.sh`'s hit rates against.
struct CeilingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ceiling", abstract: "Print the prefix-cache hit rate no router can beat on a scenario's chat requests.")

    @Argument(help: "The scenario file.")
    var scenario: String

    @Option(name: .long, help: "Multiply every phase's duration, as for run.")
    var durationScale = 1.0

    @Option(name: .long, help: "Multiply every rate, as for run.")
    var rateScale = 1.0

    @Option(name: .long, help: "The replicas' KV block size in tokens (vLLM's default is 16).")
    var blockSize = 16

    func run() throws {
        let loaded = try loadScenario(scenario)
        guard durationScale > 0, rateScale > 0, blockSize > 0 else { throw ValidationError("--duration-scale, --rate-scale and --block-size must be above 0") }
        var schedule = ArrivalSchedule(plan: loaded.plan.scaled(duration: durationScale, rate: rateScale), generator: SplitMix64(seed: loaded.seed))
        var generator = RequestGenerator(mix: loaded.mix, tenants: loaded.tenants, generator: SplitMix64(seed: loaded.seed &+ 1))
        var cache = IdealPrefixCache(blockSize: blockSize)
        var chats = 0
        while schedule.next() != nil {
            let request = generator.next()
            guard request.workload == "chat",
                  let object = (try? JSONSerialization.jsonObject(with: Data(request.body.utf8))) as? [String: Any],
                  let messages = object["messages"] as? [[String: Any]]
            else { continue }
            // The prompt as sluice-replica reads it: the messages' contents, one per line.
            let prompt = messages.compactMap { $0["content"] as? String }.joined(separator: "\n")
            cache.serve(prompt: prompt, answer: SimReply.text(prompt: prompt, count: object["max_tokens"] as? Int ?? 16))
            chats += 1
        }
        print("\(loaded.name): \(chats) chat requests; prefix-cache hit rate no router can beat: \(String(format: "%.1f", 100 * cache.hitRate))% (one unbounded cache, \(blockSize)-token blocks)")
    }
}

/// Reads and validates a scenario, printing every issue with its key path and line.
func loadScenario(_ path: String) throws -> LoadScenario {
    let text: String
    do {
        text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw ValidationError("cannot read \(path): \(error.localizedDescription)")
    }
    do {
        return try LoadScenario.decode(yaml: text)
    } catch {
        FileHandle.standardError.write(Data(error.report(file: path).utf8))
        throw ExitCode(1)
    }
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a scenario (loadtest/scenarios/*.yaml) against a target; write report.json and report.svg.")

    @Argument(help: "The scenario file.")
    var scenario: String

    @Option(name: .long, help: "Where to send requests: http://host:port, or several comma-separated (gateway instances: each request goes to one at random).")
    var target: String

    @Option(name: .long, help: "Directory for report.json and report.svg (created if needed).")
    var out: String = "loadtest/out"

    @Option(name: .long, help: "Multiply every phase's duration (0.1 makes a 60 s scenario a 6 s one).")
    var durationScale = 1.0

    @Option(name: .long, help: "Multiply every rate.")
    var rateScale = 1.0

    @Option(name: [.long, .customLong("gateway-admin")], help: "The gateway's admin listener (http://host:port): its pools' replicas in rotation (and scale decisions) are sampled each second into the report and chart.")
    var admin: String?

    @Option(name: .long, help: "Follow the gateway's scale decision for this pool: start simulated replicas (registered after --startup-delay) and drain and stop them again. Needs --admin.")
    var autoscale: String?

    @Option(name: .long, help: "The replica profile of replicas started by --autoscale.")
    var replicaProfile = "configs/replicas/fast.yaml"

    @Option(name: .long, help: "Seconds from a replica's start to its joining the pool (a pod's start-up and readiness).")
    var startupDelay = 5.0

    @Option(name: .long, help: "Environment variable holding the gateway's admin token, for --autoscale.")
    var adminTokenEnv: String?

    @Option(name: .long, help: "Generator threads (overrides the scenario).")
    var threads: Int?

    @Flag(name: .long, help: "No progress line.")
    var quiet = false

    func run() async throws {
        let loaded = try loadScenario(scenario)
        guard durationScale > 0, rateScale > 0 else { throw ValidationError("--duration-scale and --rate-scale must be above 0") }
        var settings = LoadRunSettings(scenario: loaded.name, plan: loaded.plan.scaled(duration: durationScale, rate: rateScale), mix: loaded.mix)
        settings.tenants = loaded.tenants
        settings.seed = loaded.seed
        settings.timeout = loaded.timeout
        settings.maxConnections = loaded.maxConnections
        settings.threads = threads ?? loaded.threads
        settings.adminURL = admin
        let quiet = self.quiet
        let interactive = isatty(STDERR_FILENO) != 0
        var actuator: ReplicaActuator?
        if let pool = autoscale {
            guard let admin else { throw ValidationError("--autoscale needs --admin (the gateway's admin listener)") }
            let profile = try loadReplicaProfile(replicaProfile)
            let token = adminTokenEnv.flatMap { ProcessInfo.processInfo.environment[$0] }
            guard let client = AdminClient(url: admin, token: token) else {
                throw ValidationError("--admin takes http://host:port")
            }
            var actuatorSettings = ReplicaActuator.Settings(pool: pool, replica: ReplicaConfiguration(id: "scaled", profile: profile))
            actuatorSettings.startupDelay = .milliseconds(Int64(startupDelay * 1000))
            actuator = ReplicaActuator(actuatorSettings, client: client, group: MultiThreadedEventLoopGroup.singleton) { event in
                FileHandle.standardError.write(Data("\n[autoscale] \(Int(event.second))s \(event.action) \(event.replica) (desired \(event.desired), healthy \(event.current))\n".utf8))
            }
        }
        let stop = LoadStop()
        let acting = actuator.map { actuator in Task { await actuator.run(shouldStop: { stop.isSet }) } }
        var report = try await LoadRunner.run(settings, target: target) { progress in
            guard !quiet else { return }
            let width = 20
            let filled = progress.plannedSeconds > 0 ? min(width, width * progress.second / progress.plannedSeconds) : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            let line = "[\(bar)] \(progress.second)/\(progress.plannedSeconds)s  sent \(progress.sent)  done \(progress.completed)  "
                + "rate \(progress.lastSecondCompleted)/s  p95 \(String(format: "%.1f", progress.lastSecondP95Ms)) ms  errors \(progress.errors)"
            FileHandle.standardError.write(Data((interactive ? "\r\u{1B}[K" + line : line + "\n").utf8))
        }
        if interactive, !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
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
        print("""
            \(report.scenario) → \(report.target): sent \(report.requests.sent), completed \(report.requests.completed), \
            failed \(report.requests.failed), error responses \(report.requests.errorResponses)
            throughput \(report.throughputRps) req/s; latency p50 \(report.latencyMs.p50) p95 \(report.latencyMs.p95) p99 \(report.latencyMs.p99) ms\
            \(report.ttftMs.map { "; TTFT p95 \($0.p95) ms" } ?? "")
            connections opened \(report.connections.opened), requests that waited for one \(report.connections.requestsThatWaited); \
            generator CPU \(report.generator.cpuMsPerThousandRequests) ms per 1k requests, send lateness p99 \(report.generator.sendLatenessP99Ms) ms
            report: \(json.path)
            chart:  \(svg.path)
            """)
    }
}

/// Set once, when the load ends; read by the actuator.
final class LoadStop: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

func loadReplicaProfile(_ path: String) throws -> ReplicaProfile {
    let text: String
    do {
        text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw ValidationError("cannot read the replica profile \(path): \(error.localizedDescription)")
    }
    do {
        return try ReplicaProfile.decode(yaml: text)
    } catch {
        FileHandle.standardError.write(Data(error.report(file: path).utf8))
        throw ExitCode(1)
    }
}
