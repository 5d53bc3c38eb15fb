import NIOCore
import SluiceCore

/// `GET /readyz`: ready once listening, not draining, and every pool has a replica in rotation.
struct ReadinessView: Encodable {
    struct Pool: Encodable {
        var replicas: Int
        var available: Int
        var in_flight: Int
        /// The wait queue, for pools with `max_concurrent_per_replica`: waiting now, and what
        /// became of those that waited (running totals).
        var queued: Int?
        var queue_dispatched: Int?
        var queue_full: Int?
        var queue_timeout: Int?
        var queue_cancelled: Int?
        /// For pools with `scaling`: the advisor's latest decision and its stable-window p95.
        var desired: Int?
        var p95_ms: Double?
        var target_ms: Double?
        var scale_mode: String?
    }

    var ready: Bool
    var phase: String
    var pools: [String: Pool]

    init(gateway: Gateway) {
        let now = NIODeadline.now().uptimeNanoseconds
        ready = gateway.isReady
        phase = "\(gateway.currentPhase)"
        var pools: [String: Pool] = [:]
        for pool in gateway.runtime.pools {
            let replicas = pool.snapshot.replicas
            let gate = pool.gate
            pools[pool.name] = Pool(
                replicas: replicas.count, available: replicas.filter { $0.isAvailable(at: now) }.count,
                in_flight: replicas.reduce(0) { $0 + $1.inFlight }, queued: gate?.waiting,
                queue_dispatched: gate?.total(.dispatched), queue_full: gate?.total(.full), queue_timeout: gate?.total(.timeout),
                queue_cancelled: gate?.total(.cancelled),
                desired: pool.scaling?.latest?.decision.desired,
                p95_ms: pool.scaling?.latest?.decision.stableP95.map { Double($0 / 1_000) / 1_000 },
                target_ms: pool.scaling.map { Double($0.configuration.targetP95.nanoseconds / 1_000) / 1_000 },
                scale_mode: pool.scaling?.latest?.decision.mode.rawValue)
        }
        self.pools = pools
    }
}

/// `GET /admin/pools`: each pool's routing and the live state of its replicas.
struct PoolsView: Encodable {
    struct Pool: Encodable {
        var name: String
        var policy: String
        var paths: [String]
        var models: [String]?
        var generation: UInt64
        var replicas: [ReplicaView]
    }

    struct ReplicaView: Encodable {
        var id: String
        var in_flight: Int
        var available: Bool
        var draining: Bool
        var ejected_for_ms: Int64
        /// Why it was last ejected (`consecutive_failures`, `failure_rate`), and how many
        /// ejections in a row its next one's length counts.
        var last_ejection: String?
        var ejections: Int
        var consecutive_failures: Int
        /// Its active checks: `healthy` (or no checks), `pending` (none passed yet), `unhealthy`.
        var health: String
        var upstream_connections_open: Int
        var upstream_connections_idle: Int
    }

    var pools: [Pool]

    init(gateway: Gateway) {
        let now = NIODeadline.now().uptimeNanoseconds
        let connections = gateway.runtime.upstreamStats.totals()
        pools = gateway.runtime.pools.map { pool in
            let snapshot = pool.snapshot
            return Pool(
                name: pool.name,
                policy: pool.configuration.policy.rawValue,
                paths: pool.configuration.paths.map(\.description),
                models: pool.configuration.models,
                generation: snapshot.generation,
                replicas: snapshot.replicas.map { replica in
                    let totals = connections[.init(pool: pool.name, replica: replica.id)] ?? .init()
                    let until = replica.ejectedUntil
                    return ReplicaView(
                        id: replica.id.description,
                        in_flight: replica.inFlight,
                        available: replica.isAvailable(at: now),
                        draining: replica.isDraining,
                        ejected_for_ms: until > now ? Int64((until - now) / 1_000_000) : 0,
                        last_ejection: replica.lastEjectionReason?.name,
                        ejections: replica.ejections,
                        consecutive_failures: replica.consecutiveFailures,
                        health: replica.checkHealth.rawValue,
                        upstream_connections_open: totals.open,
                        upstream_connections_idle: totals.idle)
                })
        }
    }
}

/// The answer to a membership change: the pool's replicas after it.
struct MembershipView: Encodable {
    struct Member: Encodable {
        var id: String
        var draining: Bool
    }

    var pool: String
    var generation: UInt64
    var replicas: [Member]

    init(pool: PoolRuntime) {
        let snapshot = pool.snapshot
        self.pool = pool.name
        generation = snapshot.generation
        replicas = snapshot.replicas.map { Member(id: $0.id.description, draining: $0.isDraining) }
    }
}

/// `POST /admin/reload`: what changed (pools whose replica lists the file changed).
struct ReloadView: Encodable {
    var reloaded = true
    var changed: [String: [String]]
    var weights: [String: [String: Double]]

    init(outcome: Gateway.ReloadOutcome) {
        changed = outcome.changed.mapValues { $0.map(\.description) }
        weights = outcome.weights
    }
}
