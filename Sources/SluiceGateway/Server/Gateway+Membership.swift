import Foundation
import NIOCore
import SluiceConfig
import SluiceCore

/// Changing who is in a pool while the gateway serves: admin add/remove and config reloads.
///
/// Each change swaps the pool's immutable snapshot (`PoolRuntime`), so a pick sees the old
/// membership or the new one, never a mix; a request already sent keeps its replica and
/// finishes; only the connection pools of removed replicas are retired, on each loop.
extension Gateway {
    enum MembershipError: Error, Equatable {
        case noSuchPool(String)
        case alreadyMember(ReplicaID)
        case notMember(ReplicaID)
    }

    /// What a successful reload changed: the new replica list of each pool that changed, and
    /// the new weights of each versioned model whose weights changed.
    public struct ReloadOutcome: Sendable, Equatable {
        public var changed: [String: [ReplicaID]]
        public var weights: [String: [String: Double]] = [:]
    }

    public enum ReloadError: Error, CustomStringConvertible {
        /// The gateway was started without a config file to read again.
        case noSource
        /// The file did not read or did not validate, or changes more than membership. Nothing
        /// was changed.
        case rejected(String)

        public var description: String {
            switch self {
            case .noSource: "this gateway was started without a config file, so there is nothing to reload"
            case .rejected(let reason): reason
            }
        }
    }

    func pool(named name: String) -> PoolRuntime? {
        runtime.pools.first { $0.name == name }
    }

    func addReplica(_ id: ReplicaID, toPool name: String) throws(MembershipError) {
        guard let pool = pool(named: name) else { throw .noSuchPool(name) }
        guard pool.add(id) else { throw .alreadyMember(id) }
        runtime.logger.notice("replica added", metadata: ["pool": "\(name)", "replica": "\(id)"])
    }

    func removeReplica(_ id: ReplicaID, fromPool name: String) throws(MembershipError) {
        guard let pool = pool(named: name) else { throw .noSuchPool(name) }
        guard pool.remove(id) else { throw .notMember(id) }
        retireConnections(of: pool)
        runtime.logger.notice("replica removed", metadata: ["pool": "\(name)", "replica": "\(id)"])
    }

    /// Reads the config file again and applies it if it differs from the running config only in
    /// pools' replica lists (`ReloadPlan`); otherwise changes nothing and says why.
    @discardableResult
    public func reload() throws(ReloadError) -> ReloadOutcome {
        guard let path = configurationPath else { throw .noSource }
        return try reloadLock.withLock { _ throws(ReloadError) -> ReloadOutcome in try reload(from: path) }
    }

    /// `reload()` under `reloadLock`: two at once would each compare the file with the running
    /// membership and could interleave their swaps.
    private func reload(from path: String) throws(ReloadError) -> ReloadOutcome {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .rejected("cannot read \(path): \(error.localizedDescription)")
        }
        let new: GatewayConfiguration
        do throws(ConfigError) {
            new = try GatewayConfiguration.decode(yaml: text)
        } catch {
            throw .rejected(error.report(file: path))
        }
        // The listener's certificate files are read again; if they do not load, nothing changes.
        if case .success(let certificates) = certificates, new.tls == runtime.configuration.tls {
            do {
                if try certificates.reload() { runtime.logger.notice("listener certificate reloaded", metadata: ["cert_file": "\(certificates.configuration.certFile)"]) }
            } catch {
                throw .rejected("tls: \(error); the last good certificate stays")
            }
        }
        var running = runtime.configuration
        for index in running.pools.indices {
            running.pools[index].replicas = runtime.pools[index].snapshot.replicas.map(\.id)
        }
        for (index, model) in runtime.versions.models.enumerated() {
            running.models[index].versions = zip(model.configuration.versions, runtime.versions.weights(of: index)).map { .init(pool: $0.pool, weight: $1) }
        }
        switch ReloadPlan.make(running: running, new: new) {
        case .failure(let error):
            throw .rejected(error.report(file: path))
        case .success(let plan):
            for (name, replicas) in plan.membership {
                guard let pool = pool(named: name) else { continue }
                pool.setMembers(replicas)
                retireConnections(of: pool)
            }
            for (model, weights) in plan.weights {
                // (The plan checked the models' shape: these names and pools exist.)
                try? runtime.versions.setWeights(model: model, weights, by: "reload of \(path)")
            }
            runtime.logger.notice("config reloaded", metadata: [
                "changed": "\((plan.membership.keys.sorted() + plan.weights.keys.sorted().map { "models.\($0)" }).joined(separator: ","))",
            ])
            return ReloadOutcome(changed: plan.membership, weights: plan.weights)
        }
    }

    /// On every loop, closes the idle connections of replicas no longer in `pool`.
    private func retireConnections(of pool: PoolRuntime) {
        let members = Set(pool.snapshot.replicas.map(\.id))
        for loop in loops {
            let upstreams = upstreamsByLoop[ObjectIdentifier(loop)]!
            loop.execute { upstreams.value.retire(pool: pool.index, keeping: members) }
        }
    }
}
