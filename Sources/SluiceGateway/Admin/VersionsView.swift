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

    /// The shadow's figures: `share` is the share of requests copied; copies skipped (over
    /// `max_in_flight`, or no available replica) are counted apart.
    struct Shadow: Encodable {
        var figures: Version
        var skipped: Int
        var maxInFlight: Int

        enum CodingKeys: String, CodingKey {
            case skipped
            case maxInFlight = "max_in_flight"
        }

        func encode(to encoder: any Encoder) throws {
            try figures.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(skipped, forKey: .skipped)
            try container.encode(maxInFlight, forKey: .maxInFlight)
        }
    }

    struct Model: Encodable {
        var name: String
        var aliases: [String]
        var sticky: [String]
        var versions: [Version]
        var shadow: Shadow?
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
                    Self.figures(pool: model.configuration.versions[at].pool, weight: weights[at], share: weights[at] / total, model.stats[at])
                },
                shadow: model.shadow.map { shadow in
                    Shadow(
                        figures: Self.figures(pool: shadow.pool.name, weight: 0, share: shadow.configuration.share, shadow.stats),
                        skipped: shadow.skipped, maxInFlight: shadow.configuration.maxInFlight)
                })
        }
    }

    private static func figures(pool: String, weight: Double, share: Double, _ stats: VersionStats) -> Version {
        Version(
            pool: pool, weight: weight, share: share,
            requests: stats.duration.count, succeeded: stats.succeeded, clientErrors: stats.clientErrors, failed: stats.failed,
            p50: stats.duration.quantile(0.5), p95: stats.duration.quantile(0.95), p99: stats.duration.quantile(0.99),
            tokens: stats.tokens.value)
    }
}
