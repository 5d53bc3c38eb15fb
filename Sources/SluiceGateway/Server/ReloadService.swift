import Logging
import ServiceLifecycle

/// Reloads the gateway's config file, as `POST /admin/reload` does, each time `triggers`
/// yields: in `sluice serve`, each SIGHUP (a `UnixSignalsSequence`). A refused reload is logged
/// and changes nothing.
public struct ReloadService<Triggers: AsyncSequence & Sendable>: Service {
    let gateway: Gateway
    let triggers: Triggers
    let logger: Logger

    public init(gateway: Gateway, triggers: Triggers, logger: Logger) {
        self.gateway = gateway
        self.triggers = triggers
        self.logger = logger
    }

    public func run() async throws {
        let gateway = self.gateway
        let triggers = self.triggers
        let logger = self.logger
        try? await cancelWhenGracefulShutdown {
            for try await _ in triggers {
                do {
                    try gateway.reload()
                } catch {
                    logger.error("reload refused; the running configuration is unchanged", metadata: ["reason": "\(error)"])
                }
            }
        }
        // Triggers that end leave it in the group until the group stops.
        try? await gracefulShutdown()
    }
}
