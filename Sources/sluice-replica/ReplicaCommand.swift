import ArgumentParser
import NIOPosix
import SluiceReplica

@main
struct ReplicaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-replica",
        abstract: "A simulated OpenAI-compatible model server (chat, completions, embeddings, models, metrics).")

    @Option(name: .long, help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port to bind (0 picks a free one and prints it).")
    var port = 9001

    @Option(name: .long, help: "Name sent back in x-replica-id (default: replica-PORT).")
    var id: String?

    @Option(name: .long, help: "Model name in /v1/models and responses.")
    var model = "sim-7b"

    @Option(name: .long, help: "Milliseconds to the first token.")
    var ttftMs = 20

    @Option(name: .long, help: "Milliseconds between tokens.")
    var itlMs = 10

    @Option(name: .long, help: "Output tokens when a request sets no max_tokens.")
    var maxTokens = 16

    @Flag(name: .long, help: "Accept requests and never answer (to test gateway timeouts).")
    var stall = false

    func run() async throws {
        var configuration = ReplicaConfiguration(id: id ?? "replica-\(port)")
        configuration.model = model
        configuration.timeToFirstToken = .milliseconds(ttftMs)
        configuration.interTokenDelay = .milliseconds(itlMs)
        configuration.defaultMaxTokens = maxTokens
        configuration.stall = stall
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = ReplicaServer(configuration: configuration, group: group)
        let address = try await server.start(host: host, port: port)
        print("sluice-replica \(configuration.id) listening on \(address)")
        // Runs until killed; the simulator has no state worth draining.
        while true {
            try await Task.sleep(for: .seconds(3600))
        }
    }
}
