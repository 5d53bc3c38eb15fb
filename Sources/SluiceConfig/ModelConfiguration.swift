import SluiceCore

/// `models[]`: a model name that requests carry, served by one or more pools (its versions) with
/// weights, so a new version takes a share of the sessions (a canary); and other names for it.
public struct ModelConfiguration: Sendable, Equatable {
    public struct Version: Sendable, Equatable {
        /// A pool's `name`.
        public var pool: String
        public var weight: Double

        public init(pool: String, weight: Double) {
            self.pool = pool
            self.weight = weight
        }
    }

    /// A pool that gets copies of a share of the model's requests, to compare a candidate
    /// version on real traffic; its answers go nowhere.
    public struct Shadow: Sendable, Equatable {
        public var pool: String
        /// The share of requests copied, 0 to 1.
        public var share: Double
        /// Copies in flight past which more are skipped (counted), so a slow candidate costs
        /// the gateway a bounded number of connections and buffers.
        public var maxInFlight = 16
        public var timeout: Duration = .seconds(60)

        public init(pool: String, share: Double) {
            self.pool = pool
            self.share = share
        }
    }

    public var name: String
    /// Other names requests may use for it, e.g. `gpt-default`.
    public var aliases: [String] = []
    public var versions: [Version]
    /// What keeps a conversation on one version: the first source present (as `routing.key`);
    /// a request with none is placed at random.
    public var sticky: [RoutingKeySource] = [.header("x-session-id"), .tenant]
    public var shadow: Shadow?

    public init(name: String, versions: [Version]) {
        self.name = name
        self.versions = versions
    }

    /// Every name that routes here: the name, then the aliases.
    public var names: [String] { [name] + aliases }
}
