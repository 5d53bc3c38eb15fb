/// Maps a request to a pool by path and, where a pool lists models, by the body's `model` field.
///
/// Pools are tried in configuration order; the first whose path patterns match and whose model
/// list admits the request wins. Reading the body costs a buffer, so the table first answers from
/// the path alone and asks for the model only when a pool that restricts models could be chosen.
public struct RouteTable: Sendable {
    public struct Entry: Sendable {
        public var paths: [PathPattern]
        /// Nil or containing "*" means any model (and requests without one).
        public var models: Set<String>?

        public init(paths: [PathPattern], models: Set<String>?) {
            self.paths = paths
            self.models = (models?.contains("*") ?? false) ? nil : models
        }
    }

    /// A model served by versions (`ModelConfiguration`): requests naming it or an alias go to
    /// one of `pools`, chosen by the caller's `VersionSplit`.
    public struct VersionedModel: Sendable {
        public var names: Set<String>
        /// The versions' pool indices, in version order.
        public var pools: [Int]

        public init(names: Set<String>, pools: [Int]) {
            self.names = names
            self.pools = pools
        }
    }

    public enum Decision: Equatable, Sendable {
        case pool(Int)
        /// A versioned model (its index in `versioned`): the caller picks the version, and the
        /// request goes to that pool if the pool's paths admit the request's path.
        case versioned(Int)
        /// The decision depends on the body's `model` field: read it, then call `route(path:model:)`.
        case needsModel
        case noRoute
    }

    public let entries: [Entry]
    public let versioned: [VersionedModel]
    /// Pools that serve a versioned model: their paths need the model read.
    private let servesVersions: Set<Int>
    private let versionedByName: [String: Int]

    public init(entries: [Entry], versioned: [VersionedModel] = []) {
        self.entries = entries
        self.versioned = versioned
        servesVersions = Set(versioned.flatMap(\.pools))
        versionedByName = Dictionary(versioned.enumerated().flatMap { index, model in model.names.map { ($0, index) } }) { first, _ in first }
    }

    /// Whether `path` is one the pool at `index` serves.
    public func admits(path: Substring, pool index: Int) -> Bool {
        entries[index].paths.contains { $0.matches(path) }
    }

    /// Decision from the path alone.
    public func route(path: Substring) -> Decision {
        for (index, entry) in entries.enumerated() where entry.paths.contains(where: { $0.matches(path) }) {
            if entry.models == nil, !servesVersions.contains(index) { return .pool(index) }
            return .needsModel
        }
        return .noRoute
    }

    /// Decision once the body's model is known (nil when the body has none).
    public func route(path: Substring, model: String?) -> Decision {
        if let model, let index = versionedByName[model] {
            // (Whether the chosen version's pool admits the path is known once it is chosen.)
            if versioned[index].pools.contains(where: { admits(path: path, pool: $0) }) { return .versioned(index) }
        }
        for (index, entry) in entries.enumerated() where entry.paths.contains(where: { $0.matches(path) }) {
            guard let models = entry.models else { return .pool(index) }
            if let model, models.contains(model) { return .pool(index) }
        }
        return .noRoute
    }
}
