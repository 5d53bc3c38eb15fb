import Logging
import SluiceConfig
import SluiceCore
import Synchronization

/// The running gateway's versioned models (`models:`): each one's split of traffic among its
/// versions, which the admin API and a reload change while requests flow, and what each version
/// served. Choosing is a lock read and a hash; the split is a small immutable value swapped whole.
final class ModelVersions: Sendable {
    final class Model: Sendable {
        let configuration: ModelConfiguration
        /// The versions' pool indices, in version order.
        let pools: [Int]
        let split: Mutex<VersionSplit>
        let stats: [VersionStats]
        let shadow: ShadowMirror?

        init(configuration: ModelConfiguration, pools: [Int], split: VersionSplit, stats: [VersionStats], shadow: ShadowMirror?) {
            self.configuration = configuration
            self.pools = pools
            self.split = Mutex(split)
            self.stats = stats
            self.shadow = shadow
        }
    }

    enum ChangeError: Error, Equatable, CustomStringConvertible {
        case unknownModel(String)
        case unknownVersion(model: String, pool: String)
        case badWeights(String)

        var description: String {
            switch self {
            case .unknownModel(let name): "no versioned model is named \"\(name)\""
            case .unknownVersion(let model, let pool): "\(model) has no version served by pool \"\(pool)\""
            case .badWeights(let why): why
            }
        }
    }

    let models: [Model]
    private let logger: Logger
    /// Announces weight changes in the chat room (`ChatNotifier`).
    private let notify: (@Sendable (String) -> Void)?

    /// `configuration` was validated: its pools exist and its weights make a split.
    init(
        _ configuration: [ModelConfiguration], pools: [PoolRuntime], metrics: GatewayMetrics, logger: Logger,
        notify: (@Sendable (String) -> Void)? = nil
    ) {
        self.logger = logger
        self.notify = notify
        let poolNames = pools.map(\.name)
        models = configuration.map { model in
            Model(
                configuration: model,
                pools: model.versions.map { version in poolNames.firstIndex(of: version.pool)! },
                split: VersionSplit(weights: model.versions.map(\.weight))!,
                stats: model.versions.map { VersionStats(model: model.name, pool: $0.pool, metrics: metrics) },
                shadow: model.shadow.map { shadow in
                    ShadowMirror(shadow, model: model.name, pool: pools[poolNames.firstIndex(of: shadow.pool)!], metrics: metrics)
                })
        }
    }

    var routeEntries: [RouteTable.VersionedModel] {
        models.map { RouteTable.VersionedModel(names: Set($0.configuration.names), pools: $0.pools) }
    }

    /// The version for a request of model `index`: by its sticky key, else at random; and the
    /// shadow to copy it to, when it is one of the shadow's share.
    func choose(model index: Int, key: String?, random: inout some RandomNumberGenerator) -> (pool: Int, stats: VersionStats, shadow: ShadowMirror?) {
        let model = models[index]
        let split = model.split.withLock { $0 }
        let version = key.map { split.version(forKey: $0, model: model.configuration.name) } ?? split.version(using: &random)
        let shadow = model.shadow.flatMap { $0.draws(using: &random) ? $0 : nil }
        return (model.pools[version], model.stats[version], shadow)
    }

    func weights(of index: Int) -> [Double] {
        models[index].split.withLock { $0.weights }
    }

    /// Sets the weights of the named versions of `model` (the others keep theirs), all or nothing,
    /// and logs the change with who made it.
    @discardableResult
    func setWeights(model name: String, _ changes: [String: Double], by who: String) throws(ChangeError) -> [Double] {
        guard let model = models.first(where: { $0.configuration.name == name || $0.configuration.aliases.contains(name) }) else {
            throw .unknownModel(name)
        }
        let versions = model.configuration.versions
        for pool in changes.keys where !versions.contains(where: { $0.pool == pool }) {
            throw .unknownVersion(model: model.configuration.name, pool: pool)
        }
        for (pool, weight) in changes where !(weight >= 0 && weight <= 1_000_000) {
            throw .badWeights("the weight of \(pool) must be between 0 and 1000000, not \(weight)")
        }
        let result: Result<(old: [Double], new: [Double]), ChangeError> = model.split.withLock { split in
            let new = versions.indices.map { changes[versions[$0].pool] ?? split.weights[$0] }
            guard let replacement = VersionSplit(weights: new) else {
                return .failure(.badWeights("the weights of \(model.configuration.name)'s versions would add up to zero"))
            }
            let old = split.weights
            split = replacement
            return .success((old, new))
        }
        let (old, new) = try result.get()
        if old != new {
            let describe = { (weights: [Double]) in zip(versions, weights).map { "\($0.pool)=\(Self.format($1))" }.joined(separator: " ") }
            logger.notice("version weights changed", metadata: [
                "model": "\(model.configuration.name)", "from": "\(describe(old))", "to": "\(describe(new))", "by": "\(who)",
            ])
            notify?("Model \(model.configuration.name): weights \(describe(old)) → \(describe(new)) (by \(who))")
        }
        return new
    }

    static func format(_ weight: Double) -> String {
        weight == weight.rounded() ? String(Int(weight)) : String(weight)
    }
}
