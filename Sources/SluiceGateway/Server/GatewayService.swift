import ServiceLifecycle

/// Runs a started `Gateway` under ServiceLifecycle: on graceful shutdown (SIGTERM/SIGINT through
/// the ServiceGroup) it stops accepting and drains for up to the configured grace period.
public struct GatewayService: Service {
    public let gateway: Gateway
    public let grace: Duration

    public init(gateway: Gateway, grace: Duration) {
        self.gateway = gateway
        self.grace = grace
    }

    public func run() async throws {
        // Returns when graceful shutdown is triggered; throws if the task is cancelled instead.
        do {
            try await gracefulShutdown()
        } catch {
            await gateway.shutdown(grace: .zero)
            throw error
        }
        await gateway.shutdown(grace: grace)
    }
}
