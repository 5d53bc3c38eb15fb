import Foundation
import Logging
import NIOCore
import SluiceConfig
import SluiceCore
import Synchronization

/// What every connection handler shares: the routing table, the pools, limits and metrics.
/// Built once from a configuration; immutable but for the atomics inside pools and replicas.
final class GatewayRuntime: Sendable {
    let configuration: GatewayConfiguration
    let routeTable: RouteTable
    let pools: [PoolRuntime]
    /// Per pool: its hosted provider's credentials (`provider:`); nil for self-hosted pools.
    let providers: [ProviderCredentials?]
    /// Per pool: where its allowed tenants' requests go when it is saturated (`overflow:`).
    let overflows: [OverflowRoute?]
    /// A provider key that could not be read; `start()` throws it.
    let providerError: (any Error)?
    /// Versioned models (`models:`) and their weights.
    let versions: ModelVersions
    /// The chat room's incoming webhook (`admin.chatops.webhook_url`), for notices.
    let chatNotifier: ChatNotifier?
    let metrics: GatewayMetrics
    let tracker = ConnectionTracker()
    let upstreamStats = UpstreamStatsRegistry()
    /// The HTTP client of the work off the data path (scrapes, webhooks, batches).
    let httpClient: BackgroundHTTPClient
    let logger: Logger
    /// Tenant limits, when the config sets any.
    let admission: Admission?
    /// Why admission could not be built (a keys file that cannot be read); `start()` throws it.
    let admissionError: (any Error)?
    /// Spans per request (`tracing:`), and why tracing could not start.
    let tracer: GatewayTracer?
    let tracerError: (any Error)?
    private let draining = Atomic<Bool>(false)

    /// Set when a graceful shutdown starts; connections accepted after it close once idle.
    var isDraining: Bool { draining.load(ordering: .relaxed) }

    func beginDraining() {
        draining.store(true, ordering: .relaxed)
    }

    /// - Parameter clock: the data path's clock for what is decided off a connection's loop
    ///   (handlers read their loop's `now`).
    init(
        configuration: GatewayConfiguration, group: any EventLoopGroup, metrics: GatewayMetrics, logger: Logger,
        clock: @escaping @Sendable () -> NIODeadline = { .now() }, environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.configuration = configuration
        let httpClient = BackgroundHTTPClient(group: group)
        self.httpClient = httpClient
        self.metrics = metrics
        self.logger = logger
        if configuration.limits.admissionEnabled {
            do {
                admission = try Admission(configuration.limits, registry: metrics.registry, warn: { logger.warning("\($0)") }, logger: logger)
                admissionError = nil
            } catch {
                admission = nil
                admissionError = error
            }
        } else {
            admission = nil
            admissionError = nil
        }
        do {
            tracer = try configuration.tracing.map { try GatewayTracer($0, logger: logger) }
            tracerError = nil
        } catch {
            tracer = nil
            tracerError = error
        }
        let notifier = configuration.admin.chatops?.webhookURL.map { ChatNotifier(url: $0, client: httpClient, logger: logger) }
        self.chatNotifier = notifier
        let notify: (@Sendable (String) -> Void)? = notifier?.notify
        var providerError: (any Error)?
        let providers = configuration.pools.map { pool -> ProviderCredentials? in
            guard let provider = pool.provider else { return nil }
            do {
                return try ProviderCredentials(pool, provider: provider, environment: environment)
            } catch {
                providerError = providerError ?? error
                return nil
            }
        }
        self.providers = providers
        self.providerError = providerError
        let pools = configuration.pools.enumerated().map { index, pool in
            PoolRuntime(index: index, configuration: pool, client: httpClient, metrics: metrics, clock: clock, notify: notify, provider: providers[index])
        }
        self.pools = pools
        let admission = self.admission
        overflows = configuration.pools.map { pool in
            pool.overflow.flatMap { OverflowRoute($0, pools: configuration.pools, admission: admission, metrics: metrics) }
        }
        let versions = ModelVersions(configuration.models, pools: pools, metrics: metrics, logger: logger, notify: notify)
        self.versions = versions
        self.routeTable = RouteTable(
            entries: configuration.pools.map { pool in RouteTable.Entry(paths: pool.paths, models: pool.models.map(Set.init)) },
            versioned: versions.routeEntries)
    }

    var limits: LimitsConfiguration { configuration.limits }
}
