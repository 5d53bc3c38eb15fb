import AsyncHTTPClient
import Logging
import NIOCore
import ServiceLifecycle
import SluiceConfig
import SluiceCore

/// Each pool's health beside the data path's passive ejection (`Replica.recordFailure`):
/// active checks for pools with `health.check` (a round every interval plus jitter, each
/// replica asked at once; `ActiveHealth` decides, a passing check ends a passive ejection), and
/// for every pool the outlier interval (`health.outlier_interval`), which ejects by failure
/// rate where configured and lets ejection lengths cool down.
///
/// A `Service`: its rounds run until the group shuts down.
final class HealthMonitor: Service, Sendable {
    private let pools: [PoolRuntime]
    private let client: BackgroundHTTPClient
    private let logger: Logger

    init(pools: [PoolRuntime], client: BackgroundHTTPClient, logger: Logger) {
        self.pools = pools
        self.client = client
        self.logger = logger
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for pool in self.pools {
                    if let policy = pool.configuration.healthCheck {
                        group.addTask { await self.checkEvery(pool, policy) }
                    }
                    group.addTask { await self.judgeEvery(pool) }
                }
            }
        }
        try? await gracefulShutdown()
    }

    /// A round at once (replicas start pending), then one per interval plus jitter, counted from
    /// each round's start (a round waits for its slowest check, at most the timeout, which is
    /// shorter than the interval): a hung replica fails its second check within two intervals
    /// and a timeout of hanging.
    private func checkEvery(_ pool: PoolRuntime, _ policy: HealthCheckPolicy) async {
        var standings: [ReplicaID: ActiveHealth] = [:]
        var random = SystemRandomNumberGenerator()
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let started = clock.now
            let results = await round(pool.snapshot.replicas, policy)
            var kept: [ReplicaID: ActiveHealth] = [:]
            let now = pool.clock().uptimeNanoseconds
            for (replica, passed) in results {
                pool.metrics.recordCheck(passed: passed)
                var standing = standings[replica.id] ?? ActiveHealth(state: replica.checkHealth)
                let changed = standing.record(passed: passed, policy: policy)
                kept[replica.id] = standing
                if let changed {
                    replica.setCheckHealth(changed)
                    logger.notice(
                        "replica \(changed == .healthy ? "in rotation: its check passes" : "out of rotation: its checks fail")",
                        metadata: ["pool": "\(pool.name)", "replica": "\(replica.id)", "health": "\(changed.rawValue)"])
                }
                let restored = passed && replica.restore(at: now)
                if restored {
                    logger.notice("replica back in rotation before its ejection ended: its check passes",
                                  metadata: ["pool": "\(pool.name)", "replica": "\(replica.id)"])
                }
                // A replica back in rotation has free slots for requests waiting in the queue.
                if changed == .healthy || restored { pool.gate?.dispatch(pool.snapshot) }
            }
            standings = kept
            let wait = Duration.nanoseconds(Int64(policy.delay(random: random.next()))) - (clock.now - started)
            if wait > .zero { try? await Task.sleep(for: wait) }
        }
    }

    /// Every replica checked at once; returns when each passed, failed or timed out.
    private func round(_ replicas: [Replica], _ policy: HealthCheckPolicy) async -> [(Replica, Bool)] {
        guard let client = try? client.client() else { return [] }
        return await withTaskGroup(of: (Replica, Bool).self) { group in
            for replica in replicas {
                group.addTask { (replica, await Self.check(replica.id, policy, client: client)) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
    }

    /// `GET path` answered 2xx within the timeout.
    static func check(_ replica: ReplicaID, _ policy: HealthCheckPolicy, client: HTTPClient) async -> Bool {
        guard let request = try? HTTPClient.Request(url: "http://\(replica)\(policy.path)", method: .GET),
              let response = try? await client.wholeResponse(request, deadline: .now() + .nanoseconds(Int64(policy.timeout)), maxBody: 1 << 16)
        else { return false }
        return (200..<300).contains(response.status.code)
    }

    /// Each outlier interval: a replica whose failure rate is over the pool's is ejected (as far
    /// as `max_ejected_percent` allows); one in rotation has its next ejection shortened a step.
    private func judgeEvery(_ pool: PoolRuntime) async {
        let policy = pool.configuration.ejection
        while !Task.isCancelled {
            try? await Task.sleep(for: pool.configuration.outlierInterval)
            let now = pool.clock().uptimeNanoseconds
            for replica in pool.snapshot.replicas {
                let (successes, failures) = replica.takeOutcomes()
                if policy.failureRateTooHigh(successes: successes, failures: failures), !replica.isEjected(at: now), pool.mayEject(at: now) {
                    replica.eject(at: now, policy: policy, reason: .failureRate)
                    pool.ejected(replica, reason: .failureRate)
                    logger.warning(
                        "replica ejected: too many of its requests failed",
                        metadata: ["pool": "\(pool.name)", "replica": "\(replica.id)", "failed": "\(failures)", "answered": "\(successes)"])
                } else {
                    replica.intervalPassed(at: now)
                }
            }
        }
    }
}
