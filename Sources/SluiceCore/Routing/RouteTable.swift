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

    public enum Decision: Equatable, Sendable {
        case pool(Int)
        /// The decision depends on the body's `model` field: read it, then call `route(path:model:)`.
        case needsModel
        case noRoute
    }

    public let entries: [Entry]

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// Decision from the path alone.
    public func route(path: Substring) -> Decision {
        for (index, entry) in entries.enumerated() where entry.paths.contains(where: { $0.matches(path) }) {
            if entry.models == nil { return .pool(index) }
            return .needsModel
        }
        return .noRoute
    }

    /// Decision once the body's model is known (nil when the body has none).
    public func route(path: Substring, model: String?) -> Decision {
        for (index, entry) in entries.enumerated() where entry.paths.contains(where: { $0.matches(path) }) {
            guard let models = entry.models else { return .pool(index) }
            if let model, models.contains(model) { return .pool(index) }
        }
        return .noRoute
    }
}
