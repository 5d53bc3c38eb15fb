/// `pools[].provider`: the pool's replica is a hosted OpenAI-compatible API. Requests to it carry
/// the provider's key (read from the environment at start) and its host name, never the client's
/// key; what they used is priced per tenant.
public struct ProviderConfiguration: Sendable, Equatable {
    /// The environment variable holding the provider's API key.
    public var apiKeyEnv: String
    /// The `Host` sent (default: the replica's host, or `upstream.tls.server_name`).
    public var host: String?
    /// US dollars per million tokens (prompt and completion alike), for the cost in metrics
    /// and headers; nil: tokens only.
    public var pricePerMillionTokens: Double?
    /// The provider's name for the model (`gpt-4o-mini`): written into each request's `model`
    /// (requests overflowing to it have their bodies read first); nil: sent as the client named it.
    public var model: String?

    public init(apiKeyEnv: String) {
        self.apiKeyEnv = apiKeyEnv
    }
}

/// `pools[].overflow`: where requests of the allowed tenants go when this pool is saturated
/// (`when_waiting` requests or more wait in its queue) or has no replica in rotation.
public struct OverflowConfiguration: Sendable, Equatable {
    /// A pool with `provider`.
    public var pool: String
    public var whenWaiting = 8
    /// Tenant names (`limits.tenants[].name`, or `default`) whose requests may overflow.
    public var tenants: [String]

    public init(pool: String, tenants: [String]) {
        self.pool = pool
        self.tenants = tenants
    }
}
