import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import SluiceConfig
import SluiceGateway

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the gateway with a config file until SIGTERM or SIGINT; SIGHUP reloads replica lists.")

    @Option(name: .long, help: "The YAML config file.")
    var config: String

    func run() async throws {
        let configuration = try loadConfiguration(path: config)
        bootstrapLogging(level: configuration.logLevel)
        let logger = Logger(label: "sluice")
        let token = configuration.admin.tokenEnv.flatMap { ProcessInfo.processInfo.environment[$0] }
        if let name = configuration.admin.tokenEnv, token?.isEmpty ?? true {
            logger.warning("admin.token_env names \(name), but it is unset or empty")
        }
        let (group, pinned) = WorkerAffinity.makeGroup(
            workers: configuration.workers ?? System.coreCount, pinned: configuration.pinWorkers)
        if let pinned {
            logger.info("event loops pinned", metadata: ["cpus": "\(pinned.map(String.init).joined(separator: ","))"])
        } else if configuration.pinWorkers {
            logger.warning("pin_workers: the CPUs this process may use are unknown here; event loops are not pinned")
        }
        let hangups = await GatewayProcess.trapHangups()
        let gateway = Gateway(
            configuration: configuration, group: group, adminToken: token, logger: logger, configurationPath: config)
        let bound = try await gateway.start()
        logger.notice("sluice serving", metadata: [
            "listen": "\(bound.data)", "admin": "\(bound.admin)",
            "pools": "\(configuration.pools.map(\.name).joined(separator: ","))",
        ])
        try await GatewayProcess.run(gateway, grace: configuration.shutdownGrace, hangups: hangups, logger: logger)
        try await group.shutdownGracefully()
        logger.notice("sluice stopped")
    }
}

func bootstrapLogging(level: String) {
    let parsed = Logger.Level(rawValue: level) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = parsed
        return handler
    }
}
