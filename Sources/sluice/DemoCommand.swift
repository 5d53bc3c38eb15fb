import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SluiceConfig
import SluiceCore
import SluiceGateway
import SluiceReplica

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start the gateway in front of three simulated replicas, in one process, on built-in defaults.")

    @Option(name: .long, help: "Data listener (host:port; port 0 picks a free one).")
    var listen = "127.0.0.1:8080"

    @Option(name: .long, help: "Admin listener (host:port).")
    var admin = "127.0.0.1:9090"

    @Option(name: .long, help: "Stop after this many seconds (default: run until Ctrl-C).")
    var duration: Double?

    @Option(name: .long, help: "Requests per second of built-in demo traffic (0: none, only what you send).")
    var rate: Double = 4

    func run() async throws {
        guard let listenAddress = ConfigValues.hostPort(listen, allowZeroPort: true),
              let adminAddress = ConfigValues.hostPort(admin, allowZeroPort: true)
        else { throw ValidationError("--listen and --admin take host:port") }
        bootstrapLogging(level: "notice")
        let logger = Logger(label: "sluice-demo")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)

        var replicas: [ReplicaServer] = []
        var addresses: [ReplicaID] = []
        for index in 1...3 {
            var replicaConfiguration = ReplicaConfiguration(id: "replica-\(index)")
            replicaConfiguration.timeToFirstToken = .milliseconds(40)
            replicaConfiguration.interTokenDelay = .milliseconds(25)
            let replica = ReplicaServer(configuration: replicaConfiguration, group: group)
            let address = try await replica.start()
            replicas.append(replica)
            addresses.append(ReplicaID(host: "127.0.0.1", port: address.port!))
        }

        let paths = { (list: [String]) in list.compactMap(PathPattern.init) }
        var chat = PoolConfiguration(name: "chat", paths: paths(["/v1/chat/completions", "/v1/completions", "/v1/models"]), replicas: addresses)
        chat.timeouts.responseHeader = .seconds(30)
        let embeddings = PoolConfiguration(name: "embeddings", paths: paths(["/v1/embeddings"]), replicas: addresses)
        let configuration = GatewayConfiguration(
            listen: listenAddress, admin: AdminConfiguration(listen: adminAddress), pools: [chat, embeddings])
        let gateway = Gateway(configuration: configuration, group: group, adminToken: nil, logger: logger)
        let bound = try await gateway.start()
        let base = "http://\(listenAddress.host):\(bound.data.port!)"
        let adminBase = "http://\(adminAddress.host):\(bound.admin.port!)"
        say("""
        Sluice demo: gateway \(base) -> replicas \(addresses.map(\.description).joined(separator: ", "))
          admin:   \(adminBase)/admin/pools   \(adminBase)/metrics   \(adminBase)/readyz
          try a streamed chat completion (tokens arrive one by one; x-replica-id shows the replica):
            curl -N -i \(base)/v1/chat/completions -H 'content-type: application/json' \\
              -d '{"model":"sim-7b","stream":true,"max_tokens":12,"messages":[{"role":"user","content":"hello sluice"}]}'
          or embeddings:
            curl \(base)/v1/embeddings -H 'content-type: application/json' -d '{"model":"sim-embed","input":["a","b"]}'
          built-in traffic: \(rate) requests/s (streamed chat, chat, embeddings; --rate 0 turns it off)
          Ctrl-C stops it.
        """)

        let stats = DemoStats()
        let traffic = DemoTraffic(target: bound.data, group: group, rate: rate, stats: stats)
        let ticker = DemoTicker(replicas: replicas, stats: stats, duration: duration)
        let services = ServiceGroup(configuration: .init(
            services: [
                .init(service: GatewayService(gateway: gateway, grace: .seconds(5))),
                .init(service: traffic),
                .init(service: ticker, successTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await services.run()
        for replica in replicas { await replica.stop() }
        try await group.shutdownGracefully()
        say("Sluice demo stopped.")
    }
}

/// Prints what the replicas have served every few seconds; ends the demo after `duration`.
struct DemoTicker: Service {
    let replicas: [ReplicaServer]
    let stats: DemoStats
    let duration: Double?

    func run() async throws {
        let start = ContinuousClock.now
        var last = replicas.map(\.requestsServed)
        while true {
            let remaining = duration.map { Duration.milliseconds(Int64($0 * 1000)) - (ContinuousClock.now - start) }
            if let remaining, remaining <= .zero { return }
            let step = min(remaining ?? .seconds(5), .seconds(5))
            do {
                try await Task.sleep(for: step)
            } catch {
                return
            }
            if Task.isCancelled { return }
            if let line = stats.drainLine() { say(line) }
            let now = replicas.map(\.requestsServed)
            if now != last {
                let parts = zip(replicas, zip(now, last)).map { replica, counts in
                    "\(replica.configuration.id): +\(counts.0 - counts.1) (running \(replica.requestsRunning))"
                }
                say("served  " + parts.joined(separator: "   "))
                last = now
            }
        }
    }
}

/// Writes a line to standard output at once (print is block-buffered when piped to a file).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
