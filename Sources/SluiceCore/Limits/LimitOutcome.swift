/// What `TenantPolicy` decided for a request's head or body, as plain values: the gateway
/// turns them into the answer's fields, a refusal's body and its metrics.
public struct LimitOutcome: Sendable, Equatable {
    /// What happened, as counted.
    public enum Decision: Sendable, Hashable, CaseIterable {
        case admitted
        /// Refused: over the request rate (the tenant's, or a model's).
        case refusedRate
        /// Refused: at `max_concurrent`.
        case refusedConcurrency
        /// Refused: over a token rate (the tenant's, or a model's).
        case refusedTokens
        /// Shadow mode: enforcing would have refused it; let in, and the refused part charged
        /// nothing.
        case shadowRefused
        /// Refused: the shared store failed and `on_backend_failure` is `deny`.
        case backendUnavailable
    }

    /// A limit of the tenant's.
    public enum Limit: Sendable, Equatable {
        case requests
        case concurrency
        /// `TenantQuota.bodyLimits[index]`.
        case body(Int)
    }

    public var decision: Decision
    /// The limit that refused, or in shadow mode would have (nil: none did).
    public var refusedBy: Limit?
    /// Where the limits decided stand now, for the answer's fields.
    public var windows: [RateLimitHeaders.Window]
    /// Nanoseconds before a refused request may pass; nil on a refusal: none ever will (its
    /// cost is over the limit's burst).
    public var retryAfter: UInt64?
    /// Where a body's estimate was charged, to be settled there (`.none` for a head).
    public var charged: TokenCharge.Store
    /// Decided without the shared store, which failed now or less than `backendRetry` ago.
    public var backendFailed: Bool

    public init(
        _ decision: Decision, refusedBy: Limit? = nil, windows: [RateLimitHeaders.Window] = [], retryAfter: UInt64? = nil,
        charged: TokenCharge.Store = .none, backendFailed: Bool = false
    ) {
        self.decision = decision
        self.refusedBy = refusedBy
        self.windows = windows
        self.retryAfter = retryAfter
        self.charged = charged
        self.backendFailed = backendFailed
    }

    /// Let in (admitted, or refused only in shadow).
    public var letIn: Bool { decision == .admitted || decision == .shadowRefused }
}
