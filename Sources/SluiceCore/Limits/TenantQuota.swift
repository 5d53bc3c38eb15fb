/// One tenant's limits as plain values (the gateway maps `limits.tenants[]` to these); nil is
/// unlimited.
public struct TenantQuota: Sendable, Equatable {
    public var name: String
    public var requestsPerMinute: Int?
    /// Requests that may pass at once from a full limit; nil: a minute's worth.
    public var burst: Int?
    /// Requests in progress at once, on this instance.
    public var maxConcurrent: Int?
    /// Limits decided on the body, in a fixed order (`TenantLimitState.body` and the gateway's
    /// refusals follow it).
    public var bodyLimits: [BodyLimit]

    public init(name: String, requestsPerMinute: Int? = nil, burst: Int? = nil, maxConcurrent: Int? = nil, bodyLimits: [BodyLimit] = []) {
        self.name = name
        self.requestsPerMinute = requestsPerMinute
        self.burst = burst
        self.maxConcurrent = maxConcurrent
        self.bodyLimits = bodyLimits
    }

    /// The shared store's key for the request rate.
    public var requestsKey: String { "tenant:\(name):requests" }

    /// The shared store's item for one request against the request rate.
    func requestItem(rate: Int) -> LimitItem {
        LimitItem(key: requestsKey, perMinute: rate, burst: burst ?? rate, cost: 1)
    }

    /// Indices of the body limits that apply to a request for `model`.
    func bodyLimits(for model: String?) -> [Int] {
        bodyLimits.indices.filter { bodyLimits[$0].applies(to: model) }
    }
}
