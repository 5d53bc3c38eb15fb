import NIOCore
import SluiceCore

/// Everything one event loop keeps for its downstream connections: its connection pools (one
/// per pool and replica) and its random source. Only ever touched on that loop.
final class EventLoopUpstreams {
    private struct Key: Hashable {
        var pool: Int
        var replica: ReplicaID
    }

    let eventLoop: any EventLoop
    private let statsRegistry: UpstreamStatsRegistry
    private var pools: [Key: UpstreamConnectionPool] = [:]
    var random = FastRandom()

    init(eventLoop: any EventLoop, statsRegistry: UpstreamStatsRegistry) {
        self.eventLoop = eventLoop
        self.statsRegistry = statsRegistry
    }

    func connectionPool(for replica: ReplicaID, in pool: PoolRuntime) -> UpstreamConnectionPool {
        let key = Key(pool: pool.index, replica: replica)
        if let existing = pools[key] { return existing }
        let stats = UpstreamStats(pool: pool.name, replica: replica)
        statsRegistry.register(stats)
        let created = UpstreamConnectionPool(replica: replica, eventLoop: eventLoop, settings: pool.upstreamSettings, stats: stats)
        pools[key] = created
        return created
    }

    func closeIdleConnections() {
        for pool in pools.values { pool.closeIdle() }
    }
}
