/// A limit decided once the request body is read: a tenant's tokens per minute, or a limit for
/// one model (requests or tokens). The request rate and concurrency were decided on the head;
/// these need the body's `model` and its token estimate.
///
/// Token accounting, as OpenAI's own limits count it: at admission a request is charged its
/// estimated tokens (prompt plus what it may generate); when the response ends the charge is
/// settled with the real usage (`TenantPolicy.settle`), refunding or charging the difference.
public struct BodyLimit: Sendable, Equatable {
    /// Nil: every request of the tenant; else only requests whose `model` is this.
    public let model: String?
    /// Counts tokens (the request's estimate, then its usage), or requests (1 each).
    public let countsTokens: Bool
    public let perMinute: Int
    public let burst: Int
    /// The shared store's key: `tenant:<name>:tokens`, `tenant:<name>:model:<model>:<unit>`.
    public let key: String

    /// `burst` nil: a minute's worth.
    public init(tenant: String, model: String?, countsTokens: Bool, perMinute: Int, burst: Int?) {
        self.model = model
        self.countsTokens = countsTokens
        self.perMinute = perMinute
        self.burst = burst ?? perMinute
        let unit = countsTokens ? "tokens" : "requests"
        self.key = model.map { "tenant:\(tenant):model:\($0):\(unit)" } ?? "tenant:\(tenant):\(unit)"
    }

    /// The header window this limit's state is reported under: OpenAI's `-tokens` trio for
    /// the tenant's token limit; per-model limits are not in OpenAI's vocabulary, so they speak
    /// through `Retry-After` and the refusal's message only.
    public var window: String? { model == nil && countsTokens ? "tokens" : nil }

    public func applies(to model: String?) -> Bool {
        self.model == nil || self.model == model
    }

    /// What a request of `tokens` estimated tokens costs against this limit.
    public func cost(tokens: Int) -> Int { countsTokens ? tokens : 1 }

    /// The shared store's item for `cost` units of this limit.
    func item(cost: Int) -> LimitItem {
        LimitItem(key: key, perMinute: perMinute, burst: burst, cost: cost)
    }

    /// This instance's share (`on_backend_failure: local`): `limit / instances`, at least 1.
    func share(of instances: Int) -> GCRA {
        GCRA(perMinute: max(1, perMinute / instances), burst: max(1, burst / instances))
    }
}
