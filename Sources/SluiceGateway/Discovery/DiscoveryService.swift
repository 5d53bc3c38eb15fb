import Logging
import NIOCore
import ServiceLifecycle
import SluiceConfig
import SluiceCore

/// Keeps discovered pools' members (`discovery`) in step with their sources: every interval it
/// asks the source and, when the list changed, swaps it in (`PoolRuntime.setMembers`: a new
/// replica waits for its first passing check when the pool runs checks; a removed one takes no
/// new request and finishes what it has). A source that fails keeps the last list, and says so
/// in the log at most every 10 s.
///
/// A `Service`: its rounds run until the group shuts down.
final class DiscoveryService: Service, Sendable {
    private let pools: [(PoolRuntime, any ReplicaSource)]
    private let logger: Logger

    init(pools: [PoolRuntime], group: any EventLoopGroup, logger: Logger) {
        self.pools = pools.compactMap { pool in
            guard let discovery = pool.configuration.discovery else { return nil }
            return (pool, Self.source(discovery, group: group))
        }
        self.logger = logger
    }

    static func source(_ discovery: DiscoveryConfiguration, group: any EventLoopGroup) -> any ReplicaSource {
        switch discovery.source {
        case .file(let path): FileReplicaSource(path: path)
        case .dns(let name, let port): DNSReplicaSource(resolver: DNSReplicaSource.resolver(discovery, group), name: name, port: port)
        case .srv(let name): DNSReplicaSource(resolver: DNSReplicaSource.resolver(discovery, group), name: name, port: nil)
        }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for (pool, source) in self.pools {
                    group.addTask { await self.follow(pool, source) }
                }
            }
        }
        try? await gracefulShutdown()
    }

    private func follow(_ pool: PoolRuntime, _ source: any ReplicaSource) async {
        let failures = RateLimitedLog(logger: logger)
        while !Task.isCancelled {
            do {
                let found = try await source.replicas()
                let current = pool.snapshot.replicas.map(\.id)
                if found != current.sorted() {
                    pool.setMembers(found)
                    let added = found.filter { !current.contains($0) }
                    let removed = current.filter { !found.contains($0) }
                    logger.notice(
                        "pool members changed", metadata: ["pool": "\(pool.name)", "added": "\(added)", "removed": "\(removed)", "members": "\(found.count)"])
                }
            } catch {
                failures.warning("replica discovery failed: the pool keeps its last members", metadata: ["pool": "\(pool.name)", "error": "\(error)"])
            }
            try? await Task.sleep(for: pool.configuration.discovery?.interval ?? .seconds(5))
        }
    }
}
