/// `GET /admin/versions`: each versioned model's versions with their weights and share, and
/// what each served since start, side by side so a canary can be judged against the rest.
struct VersionsView: Encodable {
    struct Version: Encodable {
        var pool: String
        var weight: Double
        /// The share of sessions (and of keyless requests) it takes now.
        var share: Double
        var requests: Int
        var succeeded: Int
        var clientErrors: Int
        var failed: Int
        /// Seconds, from the version's latency histogram (null before its first request).
        var p50: Double?
        var p95: Double?
        var p99: Double?
        var tokens: Int

        enum CodingKeys: String, CodingKey {
            case pool, weight, share, requests, succeeded, failed, p50, p95, p99, tokens
            case clientErrors = "client_errors"
        }
    }

    struct Model: Encodable {
        var name: String
        var aliases: [String]
        var sticky: [String]
        var versions: [Version]
    }

    var models: [Model]

    init(_ versions: ModelVersions) {
        models = versions.models.enumerated().map { index, model in
            let weights = versions.weights(of: index)
            let total = weights.reduce(0, +)
            return Model(
                name: model.configuration.name, aliases: model.configuration.aliases,
                sticky: model.configuration.sticky.map(\.configText),
                versions: model.configuration.versions.indices.map { at in
                    let stats = model.stats[at]
                    return Version(
                        pool: model.configuration.versions[at].pool, weight: weights[at], share: weights[at] / total,
                        requests: stats.duration.count, succeeded: stats.succeeded, clientErrors: stats.clientErrors, failed: stats.failed,
                        p50: stats.duration.quantile(0.5), p95: stats.duration.quantile(0.95), p99: stats.duration.quantile(0.99),
                        tokens: stats.tokens.value)
                })
        }
    }
}
