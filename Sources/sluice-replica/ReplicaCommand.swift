import ArgumentParser
import Foundation
import NIOPosix
import SluiceConfig
import SluiceReplica

@main
struct ReplicaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-replica",
        abstract: "A simulated model server: OpenAI chat/completions (continuous batching, prefix cache), embeddings, Open Inference Protocol V2, vLLM metrics, faults.")

    @Option(name: .long, help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port to bind (0 picks a free one and prints it).")
    var port = 9001

    @Option(name: .long, help: "Name sent back in x-replica-id (default: replica-PORT).")
    var id: String?

    @Option(name: .long, help: "Profile file (configs/replicas/*.yaml). Without one: a fixed clock (--ttft-ms, --itl-ms).")
    var profile: String?

    @Option(name: .long, help: "Model name in /v1/models and responses (overrides the profile).")
    var model: String?

    @Option(name: .long, help: "Multiply every delay (overrides the profile's time_scale).")
    var timeScale: Double?

    @Option(name: .long, help: "Without a profile: milliseconds to the first token.")
    var ttftMs = 20

    @Option(name: .long, help: "Without a profile: milliseconds between tokens.")
    var itlMs = 10

    @Option(name: .long, help: "Output tokens when a request sets no max_tokens (overrides the profile).")
    var maxTokens: Int?

    @Option(name: .long, help: "Seed for every random choice (injected errors).")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Fault: fraction of inference requests answered 500.")
    var errorRate = 0.0

    @Option(name: .long, help: "Fault: milliseconds added before each inference request.")
    var extraLatencyMs = 0.0

    @Flag(name: .long, help: "Fault: accept inference requests and never answer.")
    var stall = false

    @Flag(name: .long, help: "Fault: close the connection of every inference request.")
    var closeConnections = false

    @Option(name: .long, help: "Fault: seconds after start during which health and inference answer 503.")
    var slowStartS = 0.0

    func run() async throws {
        let name = id ?? "replica-\(port)"
        var configuration: ReplicaConfiguration
        if let profile {
            let text: String
            do {
                text = try String(contentsOfFile: profile, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read \(profile): \(error.localizedDescription)")
            }
            do {
                configuration = ReplicaConfiguration(id: name, profile: try ReplicaProfile.decode(yaml: text))
            } catch {
                throw ValidationError(error.report(file: profile))
            }
        } else {
            configuration = ReplicaConfiguration(id: name)
            configuration.timeToFirstToken = .milliseconds(ttftMs)
            configuration.interTokenDelay = .milliseconds(itlMs)
        }
        if let model { configuration.model = model }
        if let timeScale { configuration.timeScale = timeScale }
        if let maxTokens { configuration.defaultMaxTokens = maxTokens }
        configuration.seed = seed
        configuration.faults.errorRate = min(1, max(0, errorRate))
        configuration.faults.extraLatency = .milliseconds(extraLatencyMs)
        configuration.faults.stall = stall
        configuration.faults.closeConnections = closeConnections
        configuration.faults.slowStart = .milliseconds(slowStartS * 1000)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = ReplicaServer(configuration: configuration, group: group, onExit: { Foundation.exit(0) })
        let address = try await server.start(host: host, port: port)
        print("sluice-replica \(configuration.id) listening on \(address)")
        // Runs until killed (or told to exit through /admin/faults); nothing worth draining.
        while true {
            try await Task.sleep(for: .seconds(3600))
        }
    }
}
