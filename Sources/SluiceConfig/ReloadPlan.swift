import SluiceCore

/// What a config reload may change in a running gateway, decided before anything is touched.
///
/// A reload swaps pools' replica lists (each pool's membership is an immutable snapshot, so the
/// swap is atomic and in-flight requests keep the replica they were sent to) and versioned
/// models' weights (a canary's share moves, sessions on unchanged slices stay). Everything else —
/// listeners, workers, pools added, removed or renamed, routing, timeouts, limits — is wired
/// into connections and handlers at start, so a reload that changes any of it is refused as a
/// whole, naming each key, and the running configuration stays exactly as it was. Envoy and
/// HAProxy draw the same line between hot-swappable membership and restart-only listeners.
public struct ReloadPlan: Sendable, Equatable {
    /// New replica lists, by pool name, for the pools whose membership changes.
    public var membership: [String: [ReplicaID]]
    /// New weights, by model name then version pool, for the versioned models whose weights change.
    public var weights: [String: [String: Double]]

    public init(membership: [String: [ReplicaID]], weights: [String: [String: Double]] = [:]) {
        self.membership = membership
        self.weights = weights
    }

    /// Compares `new` with `running` (the running config, its pools' `replicas` being their
    /// current members and its models' weights their current weights, which admin calls may
    /// have changed since the file was read).
    public static func make(running: GatewayConfiguration, new: GatewayConfiguration) -> Result<ReloadPlan, ConfigError> {
        var issues: [ConfigIssue] = []
        func refuse(_ path: String, _ what: String) {
            issues.append(ConfigIssue(path: path, line: nil, message: "\(what); only pools' replicas and models' weights change on reload, restart to apply this"))
        }
        if new.listen != running.listen { refuse("listen", "changed") }
        if new.workers != running.workers { refuse("workers", "changed") }
        if new.pinWorkers != running.pinWorkers { refuse("pin_workers", "changed") }
        if new.logLevel != running.logLevel { refuse("log_level", "changed") }
        if new.admin != running.admin { refuse("admin", "changed") }
        if new.limits != running.limits { refuse("limits", "changed") }
        if new.shutdownGrace != running.shutdownGrace { refuse("shutdown_grace", "changed") }
        // (The certificate files' contents are read again on every reload; their paths are not.)
        if new.tls != running.tls { refuse("tls", "changed") }
        if new.http2 != running.http2 { refuse("http2", "changed") }
        if new.tracing != running.tracing { refuse("tracing", "changed") }
        let oldNames = running.pools.map(\.name)
        let newNames = new.pools.map(\.name)
        if oldNames != newNames {
            refuse("pools", "pools added, removed or reordered (running: \(oldNames.joined(separator: ", ")); file: \(newNames.joined(separator: ", ")))")
        }
        var membership: [String: [ReplicaID]] = [:]
        for (index, pool) in new.pools.enumerated() where index < running.pools.count && running.pools[index].name == pool.name {
            let old = running.pools[index]
            var comparable = pool
            comparable.replicas = old.replicas
            if comparable != old {
                for (key, changed) in [
                    ("match", pool.paths != old.paths || pool.models != old.models),
                    ("routing", pool.routing != old.routing),
                    ("timeouts", pool.timeouts != old.timeouts),
                    ("upstream", pool.upstream != old.upstream),
                    ("retry", pool.retry != old.retry),
                    ("discovery", pool.discovery != old.discovery),
                    ("health", pool.ejection != old.ejection || pool.healthCheck != old.healthCheck || pool.outlierInterval != old.outlierInterval),
                ] where changed {
                    refuse("pools[\(index)].\(key)", "changed in pool \(pool.name)")
                }
            }
            // (A discovered pool's members are its source's, not the file's.)
            if pool.replicas != old.replicas, pool.discovery == nil { membership[pool.name] = pool.replicas }
        }
        var weights: [String: [String: Double]] = [:]
        let shape = { (models: [ModelConfiguration]) in
            models.map { model in
                var shape = model
                shape.versions = model.versions.map { .init(pool: $0.pool, weight: 0) }
                return shape
            }
        }
        if shape(new.models) != shape(running.models) {
            refuse("models", "models, aliases, versions or sticky keys changed")
        } else {
            for (old, model) in zip(running.models, new.models) where old.versions != model.versions {
                weights[model.name] = Dictionary(uniqueKeysWithValues: model.versions.map { ($0.pool, $0.weight) })
            }
        }
        if !issues.isEmpty { return .failure(ConfigError(issues: issues)) }
        return .success(ReloadPlan(membership: membership, weights: weights))
    }
}
