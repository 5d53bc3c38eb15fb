import Foundation
import NIOCore
import SluiceCore

/// `GET /admin/status`: everything the status page shows, in one document, so the page needs
/// one poll: each pool's replicas and why any is out of rotation, its routing decisions by
/// reason, its wait queue and what it shed, its scale decisions over the last minutes, and the
/// tenants close to a limit. Counts are this instance's.
struct StatusView: Encodable {
    struct Replica: Encodable {
        var id: String
        /// `in rotation`, `draining`, `ejected`, `unhealthy` or `pending` (no check passed yet).
        var state: String
        /// Why it is out of rotation, when it is.
        var reason: String?
        var ejected_for_ms: Int64
        var in_flight: Int
        /// The queue the replica itself last reported (scraped or from its answers), if fresh.
        var reported_waiting: Int?
        var health: String
        /// Requests sent to it, and that count's share of the pool's.
        var requests: Int
        var share: Double
    }

    /// Requests that waited for a slot: waiting now, and what became of the others.
    struct Queue: Encodable {
        var waiting: Int
        var dispatched: Int
        /// Shed: refused because the queue was full, or given up after `queue.timeout`.
        var full: Int
        var timeout: Int
        var cancelled: Int
    }

    struct Decision: Encodable {
        /// Unix seconds of the tick.
        var at: Double
        var current: Int
        var desired: Int
        var p95_ms: Double?
    }

    struct Scale: Encodable {
        var current: Int
        var desired: Int
        var mode: String
        var reason: String
        var p95_ms: Double?
        var target_ms: Double
        var at: Double
        /// The recent decisions, oldest first (`PoolScaling.historyLength`).
        var history: [Decision]
    }

    struct Routing: Encodable {
        var reason: String
        var count: Int
    }

    struct Pool: Encodable {
        var name: String
        var policy: String
        var replicas: [Replica]
        var routing: [Routing]
        var queue: Queue?
        var scale: Scale?
    }

    struct Limit: Encodable {
        var name: String
        var remaining: Int
        var burst: Int
    }

    struct Tenant: Encodable {
        var name: String
        /// A limit with a fifth or less of its burst left, all concurrency slots taken, or the
        /// shared store's refusal still holding.
        var near: Bool
        var in_flight: Int
        var max_concurrent: Int?
        var limits: [Limit]
        var refused_by_shared_store: Bool
    }

    var generated_at: Double
    var phase: String
    var ready: Bool
    var pools: [Pool]
    var tenants: [Tenant]

    init(gateway: Gateway, wall: Date = Date()) {
        let now = NIODeadline.now().uptimeNanoseconds
        generated_at = wall.timeIntervalSince1970
        phase = "\(gateway.currentPhase)"
        ready = gateway.isReady
        pools = gateway.runtime.pools.map { Self.pool($0, now: now) }
        tenants = gateway.runtime.admission.map { Self.tenants($0, now: now) } ?? []
    }

    private static func pool(_ pool: PoolRuntime, now: UInt64) -> Pool {
        let replicas = pool.snapshot.replicas
        let total = replicas.reduce(0) { $0 + $1.sent }
        let staleAfter = UInt64(max(1, pool.configuration.routing.scrapeInterval.nanoseconds * 3))
        let gate = pool.gate
        return Pool(
            name: pool.name,
            policy: pool.configuration.policy.rawValue,
            replicas: replicas.map { replica in
                let until = replica.ejectedUntil
                let (state, reason) = Self.state(of: replica, now: now)
                let waiting = replica.reportedWaiting(at: now, staleAfter: staleAfter)
                return Replica(
                    id: replica.id.description, state: state, reason: reason,
                    ejected_for_ms: until > now ? Int64((until - now) / 1_000_000) : 0,
                    in_flight: replica.inFlight, reported_waiting: waiting > 0 ? waiting : nil,
                    health: replica.checkHealth.rawValue,
                    requests: replica.sent, share: total > 0 ? Double(replica.sent) / Double(total) : 0)
            },
            routing: pool.metrics.routingCounts.map { Routing(reason: $0.reason.rawValue, count: $0.count) },
            queue: gate.map {
                Queue(
                    waiting: $0.waiting, dispatched: $0.total(.dispatched), full: $0.total(.full), timeout: $0.total(.timeout),
                    cancelled: $0.total(.cancelled))
            },
            scale: pool.scaling.flatMap { scaling in
                scaling.latest.map { latest in
                    Scale(
                        current: latest.decision.current, desired: latest.decision.desired, mode: latest.decision.mode.rawValue,
                        reason: latest.decision.reason, p95_ms: latest.decision.stableP95.map(milliseconds),
                        target_ms: milliseconds(UInt64(max(0, scaling.configuration.targetP95.nanoseconds))),
                        at: latest.at.timeIntervalSince1970,
                        history: scaling.history.map {
                            Decision(
                                at: $0.at.timeIntervalSince1970, current: $0.decision.current, desired: $0.decision.desired,
                                p95_ms: $0.decision.stableP95.map(milliseconds))
                        })
                }
            })
    }

    /// Out of rotation first by the strongest cause: ejected, then drained, then failing checks.
    private static func state(of replica: SluiceCore.Replica, now: UInt64) -> (String, String?) {
        if replica.isEjected(at: now) {
            return ("ejected", replica.lastEjectionReason?.name ?? "ejected")
        }
        if replica.isDraining { return ("draining", "drained by an operator") }
        switch replica.checkHealth {
        case .unhealthy: return ("unhealthy", "failing its health checks")
        case .pending: return ("pending", "no health check passed yet")
        case .healthy: return ("in rotation", nil)
        }
    }

    private static func tenants(_ admission: Admission, now: UInt64) -> [Tenant] {
        admission.tenants.indices.map { index in
            let tenant = admission.tenants[index]
            let quota = admission.policy.tenants[index].quota
            let state = admission.policy.state(of: index)
            var limits: [Limit] = []
            if let requests = state.requests {
                limits.append(Limit(name: "requests/min", remaining: requests.remaining(at: now), burst: requests.burst))
            }
            for (limit, gcra) in zip(quota.bodyLimits, state.body) {
                let unit = limit.countsTokens ? "tokens/min" : "requests/min"
                limits.append(Limit(name: limit.model.map { "\($0) \(unit)" } ?? unit, remaining: gcra.remaining(at: now), burst: gcra.burst))
            }
            let refused = state.refusedUntil > now
            let full = quota.maxConcurrent.map { state.inFlight >= $0 } ?? false
            let low = limits.contains { $0.burst > 0 && $0.remaining * 5 <= $0.burst }
            return Tenant(
                name: tenant.name, near: refused || full || low, in_flight: state.inFlight, max_concurrent: quota.maxConcurrent,
                limits: limits, refused_by_shared_store: refused)
        }
    }
}

private func milliseconds(_ nanoseconds: UInt64) -> Double {
    Double(nanoseconds / 1_000) / 1_000
}
