import Logging
import ServiceLifecycle
import SluiceGateway
import UnixSignals

/// The one ServiceGroup that `sluice serve` and `sluice demo` run a started gateway in: its
/// services, then the command's own (`extra`, shut down before the gateway drains), then
/// reloads on SIGHUP, all ended gracefully by SIGTERM or SIGINT.
enum GatewayProcess {
    /// Traps SIGHUP from now on: call it before the gateway reports ready, so a SIGHUP that
    /// follows readiness is never the default action (which ends the process).
    static func trapHangups() async -> UnixSignalsSequence {
        await UnixSignalsSequence(trapping: .sighup)
    }

    static func run(
        _ gateway: Gateway, grace: Duration, hangups: UnixSignalsSequence,
        extra: [ServiceGroupConfiguration.ServiceConfiguration] = [], logger: Logger
    ) async throws {
        let services = gateway.services(grace: grace).map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
            + extra
            + [.init(service: ReloadService(gateway: gateway, triggers: hangups, logger: logger))]
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
