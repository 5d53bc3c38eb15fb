import Logging
import ServiceLifecycle
@testable import SluiceGateway

/// A started gateway whose services run in one ServiceGroup, as `sluice serve` runs them (but
/// for the signals): `stop()` shuts the group down gracefully, as SIGTERM would.
final class RunningGateway: Sendable {
    let gateway: Gateway
    let bound: Gateway.BoundAddresses
    private let group: ServiceGroup
    private let running: Task<Void, any Error>

    private init(gateway: Gateway, bound: Gateway.BoundAddresses, group: ServiceGroup, running: Task<Void, any Error>) {
        self.gateway = gateway
        self.bound = bound
        self.group = group
        self.running = running
    }

    /// Starts `gateway` and runs its services, then `extra` (shut down first).
    static func start(_ gateway: Gateway, grace: Duration = .seconds(1), extra: [any Service] = []) async throws -> RunningGateway {
        let bound = try await gateway.start()
        var logger = Logger(label: "sluice-test-services")
        logger.logLevel = .critical
        let group = ServiceGroup(services: gateway.services(grace: grace) + extra, logger: logger)
        let running = Task { try await group.run() }
        return RunningGateway(gateway: gateway, bound: bound, group: group, running: running)
    }

    /// Shuts the group down gracefully and waits until every service has stopped; again, it
    /// only waits.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
    }
}
