import NIOCore
import SluiceCore
import SluiceHTTP1

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
    /// Pools of removed replicas, kept alive while connections (which point back at their pool)
    /// are still open.
    private var retired: [UpstreamConnectionPool] = []
    var random = FastRandom()
    /// This loop's connection to the shared limits backend, made on first use.
    private var limiter: RedisRateLimiter?

    func redisLimiter(_ shared: Admission.Shared) -> RedisRateLimiter {
        if let limiter { return limiter }
        let created = RedisRateLimiter(address: shared.address, eventLoop: eventLoop, timeout: shared.timeout)
        limiter = created
        return created
    }

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

    /// Forgets the connection pools of `pool`'s replicas that are no longer members: their idle
    /// connections close now, busy ones when their exchange ends (the pool is marked closed).
    func retire(pool: Int, keeping members: Set<ReplicaID>) {
        retired.removeAll { $0.openCount == 0 }
        for key in pools.keys where key.pool == pool && !members.contains(key.replica) {
            guard let removed = pools.removeValue(forKey: key) else { continue }
            removed.closeIdle()
            retired.append(removed)
        }
    }

    func closeIdleConnections() {
        limiter?.close()
        for pool in pools.values { pool.closeIdle() }
    }
}
