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
    let metrics: GatewayMetrics
    let tracker = ConnectionTracker()
    let upstreamStats = UpstreamStatsRegistry()
    let logger: Logger
    private let draining = Atomic<Bool>(false)

    /// Set when a graceful shutdown starts; connections accepted after it close once idle.
    var isDraining: Bool { draining.load(ordering: .relaxed) }

    func beginDraining() {
        draining.store(true, ordering: .relaxed)
    }

    init(configuration: GatewayConfiguration, metrics: GatewayMetrics, logger: Logger) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        let pools = configuration.pools.enumerated().map { index, pool in
            PoolRuntime(index: index, configuration: pool, metrics: metrics)
        }
        self.pools = pools
        self.routeTable = RouteTable(entries: configuration.pools.map { pool in
            RouteTable.Entry(paths: pool.paths, models: pool.models.map(Set.init))
        })
    }

    var limits: LimitsConfiguration { configuration.limits }
}
