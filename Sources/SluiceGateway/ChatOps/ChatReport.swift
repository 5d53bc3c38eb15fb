import NIOCore
import SluiceCore

/// The read-only commands' answers, as chat text: short lines, one per pool or version, with the
/// figures an operator acts on (Slack and Mattermost render the backticks as code).
enum ChatReport {
    static func status(_ gateway: Gateway) -> String {
        let now = NIODeadline.now().uptimeNanoseconds
        var lines = ["*\(gateway.isReady ? "Ready" : "Not ready")* (\(gateway.currentPhase))"]
        for pool in gateway.runtime.pools {
            let replicas = pool.snapshot.replicas
            let draining = replicas.filter(\.isDraining)
            let ejected = replicas.filter { $0.isEjected(at: now) }
            let available = replicas.filter { $0.isAvailable(at: now) }.count
            var line = "`\(pool.name)`: \(available)/\(replicas.count) in rotation, \(replicas.reduce(0) { $0 + $1.inFlight }) in flight"
            if let gate = pool.gate { line += ", \(gate.waiting) waiting" }
            if !draining.isEmpty { line += "; draining \(draining.map(\.id.description).joined(separator: ", "))" }
            if !ejected.isEmpty {
                line += "; ejected " + ejected.map { "\($0.id) (\($0.lastEjectionReason?.name ?? "?"))" }.joined(separator: ", ")
            }
            lines.append(line)
        }
        for (index, model) in gateway.runtime.versions.models.enumerated() {
            let weights = gateway.runtime.versions.weights(of: index)
            let total = weights.reduce(0, +)
            let shares = zip(model.configuration.versions, weights).map { "\($0.pool) \(percent($1 / total))" }
            lines.append("model `\(model.configuration.name)`: " + shares.joined(separator: ", "))
        }
        return lines.joined(separator: "\n")
    }

    static func scale(_ gateway: Gateway) -> String {
        let lines = gateway.runtime.pools.compactMap { pool -> String? in
            guard let scaling = pool.scaling else { return nil }
            guard let latest = scaling.latest else { return "`\(pool.name)`: no decision yet" }
            let decision = latest.decision
            let p95 = decision.stableP95.map { milliseconds($0) } ?? "no samples"
            return "`\(pool.name)`: \(decision.current) → \(decision.desired) replicas (\(decision.mode.rawValue)): p95 \(p95) against \(milliseconds(decision.target)); \(decision.reason)"
        }
        return lines.isEmpty ? "No pool has scaling configured." : lines.joined(separator: "\n")
    }

    static func limits(_ gateway: Gateway, tenant name: String) -> String {
        let limits = gateway.runtime.configuration.limits
        let tenant = name == "default" ? limits.defaultTenant : limits.tenants.first { $0.name == name }?.limits
        guard let tenant else {
            let known = (limits.tenants.map(\.name) + (limits.defaultTenant == nil ? [] : ["default"])).joined(separator: ", ")
            return "No tenant named \(name)." + (known.isEmpty ? " No tenant limits are configured." : " Tenants: \(known).")
        }
        var parts: [String] = []
        if let rate = tenant.requestsPerMinute { parts.append("\(rate) requests/min (burst \(tenant.burst ?? rate))") }
        if let rate = tenant.tokensPerMinute { parts.append("\(rate) tokens/min (burst \(tenant.tokenBurst ?? rate))") }
        if let cap = tenant.maxConcurrent { parts.append("\(cap) at once") }
        parts.append("priority \(tenant.priority)")
        for model in tenant.models {
            let rates = [model.requestsPerMinute.map { "\($0) requests/min" }, model.tokensPerMinute.map { "\($0) tokens/min" }].compactMap { $0 }
            parts.append("\(model.model): \(rates.joined(separator: ", "))")
        }
        let mode = limits.shadow ? " (shadow mode: reported, not enforced)" : ""
        return "`\(name)`\(mode): " + parts.joined(separator: "; ")
    }

    private static func milliseconds(_ nanoseconds: UInt64) -> String {
        "\(Double(nanoseconds / 100_000) / 10) ms"
    }

    private static func percent(_ share: Double) -> String {
        "\((share * 1_000).rounded() / 10)%"
    }
}
