import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
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
        let gateway = Gateway(
            configuration: configuration, group: group, adminToken: token, logger: logger, configurationPath: config)
        let bound = try await gateway.start()
        let hangup = Self.reloadOnHangup(gateway, logger: logger)
        defer { hangup.cancel() }
        logger.notice("sluice serving", metadata: [
            "listen": "\(bound.data)", "admin": "\(bound.admin)",
            "pools": "\(configuration.pools.map(\.name).joined(separator: ","))",
        ])
        let group2 = ServiceGroup(configuration: .init(
            services: [.init(service: GatewayService(gateway: gateway, grace: configuration.shutdownGrace))],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group2.run()
        try await group.shutdownGracefully()
        logger.notice("sluice stopped")
    }
}

extension ServeCommand {
    /// SIGHUP reloads the config file like `POST /admin/reload`; a refused reload is logged and
    /// changes nothing.
    static func reloadOnHangup(_ gateway: Gateway, logger: Logger) -> any DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler {
            do {
                try gateway.reload()
            } catch {
                logger.error("reload refused; the running configuration is unchanged", metadata: ["reason": "\(error)"])
            }
        }
        source.resume()
        return source
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
