import SluiceCore
import Synchronization

/// Connection counts of one replica's pool on one event loop. Written only by that loop, read by
/// the metrics scrape; atomics make the read safe without a lock on the request path.
final class UpstreamStats: Sendable {
    let pool: String
    let replica: ReplicaID
    let open = Atomic<Int>(0)
    let idle = Atomic<Int>(0)
    let connectsSucceeded = Atomic<Int>(0)
    let connectsFailed = Atomic<Int>(0)

    init(pool: String, replica: ReplicaID) {
        self.pool = pool
        self.replica = replica
    }
}

/// Every `UpstreamStats` ever created, so a scrape can sum them per replica. Appended to only
/// when a loop first talks to a replica, so the lock is off the request path.
final class UpstreamStatsRegistry: Sendable {
    private let all = Mutex<[UpstreamStats]>([])

    func register(_ stats: UpstreamStats) {
        all.withLock { $0.append(stats) }
    }

    struct PoolReplica: Hashable, Sendable {
        var pool: String
        var replica: ReplicaID
    }

    struct Totals: Sendable {
        var open = 0
        var idle = 0
        var connectsSucceeded = 0
        var connectsFailed = 0
    }

    func totals() -> [PoolReplica: Totals] {
        let snapshot = all.withLock { $0 }
        var result: [PoolReplica: Totals] = [:]
        for stats in snapshot {
            let key = PoolReplica(pool: stats.pool, replica: stats.replica)
            var totals = result[key, default: Totals()]
            totals.open += stats.open.load(ordering: .relaxed)
            totals.idle += stats.idle.load(ordering: .relaxed)
            totals.connectsSucceeded += stats.connectsSucceeded.load(ordering: .relaxed)
            totals.connectsFailed += stats.connectsFailed.load(ordering: .relaxed)
            result[key] = totals
        }
        return result
    }
}
