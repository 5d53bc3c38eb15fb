import ServiceLifecycle

/// The data listener under ServiceLifecycle: on graceful shutdown (SIGTERM/SIGINT through the
/// ServiceGroup) it stops accepting and drains for up to the configured grace period; if the
/// group is cancelled instead, it closes what is open at once.
public struct GatewayService: Service {
    public let gateway: Gateway
    public let grace: Duration

    public init(gateway: Gateway, grace: Duration) {
        self.gateway = gateway
        self.grace = grace
    }

    public func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            await gateway.drain(grace: .zero)
            throw error
        }
        await gateway.drain(grace: grace)
    }
}
