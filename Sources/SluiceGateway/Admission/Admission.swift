import Foundation
import Logging
import NIOCore
import Prometheus
import SluiceConfig
import SluiceCore
import SluiceHTTP1

/// Per-tenant admission for the gateway: who is asking (the API key, looked up by keyed hash,
/// `TenantResolver`) and what the tenant policy (`TenantPolicy`, in SluiceCore) decides,
/// rendered: a refusal's error and JSON body (made once per tenant), the answer's rate-limit
/// fields, the Prometheus counters. A refusal is decided from the request head alone, before
/// any pool, replica or body is touched, so it costs far less than a forwarded request.
final class Admission: Sendable {
    /// What a tenant's answers and counters need, besides its policy.
    final class Tenant: Sendable {
        let name: String
        let limits: TenantLimits
        /// The refusals' JSON bodies, rendered once (a refusal must be cheap; the timing is in
        /// the header fields).
        let rateRefusal: Refusal
        let concurrencyRefusal: Refusal
        /// One per body limit (`TenantQuota.bodyLimits`), in its order.
        let bodyRefusals: [Refusal]
        /// `sluice_admission_decisions_total{tenant, decision}`.
        let decisions: [LimitOutcome.Decision: Counter]

        init(
            name: String, limits: TenantLimits, rateRefusal: Refusal, concurrencyRefusal: Refusal, bodyRefusals: [Refusal],
            decisions: [LimitOutcome.Decision: Counter]
        ) {
            self.name = name
            self.limits = limits
            self.rateRefusal = rateRefusal
            self.concurrencyRefusal = concurrencyRefusal
            self.bodyRefusals = bodyRefusals
            self.decisions = decisions
        }
    }

    /// The shared backend (`limits.backend: redis://`), when configured.
    struct Shared: Sendable {
        let address: SocketAddress
        let timeout: TimeAmount
    }

    enum Outcome {
        /// Let in; its answer carries these limits' fields. `tenant` must be released when it ends.
        case admitted(tenant: Int, windows: [RateLimitHeaders.Window])
        case refused(Refusal, fields: [(String, String)])
    }

    /// A 429 answer's error and its JSON body, rendered once.
    struct Refusal: Sendable {
        let error: GatewayError
        let body: String

        init(_ error: GatewayError) {
            self.error = error
            self.body = error.jsonBody()
        }
    }

    /// Why admission cannot start: a keys file, a shared key, the backend's address.
    struct StartError: Error, CustomStringConvertible {
        var description: String
    }

    /// Configured tenants, then `default` (last; unlimited when `limits.default` is absent).
    let tenants: [Tenant]
    /// The same tenants' limits and counters.
    let policy: TenantPolicy
    let resolver: TenantResolver
    let shared: Shared?
    /// `sluice_limits_backend_failures_total{mode}`: shared decisions made without the backend
    /// (it failed, or failed less than `TenantPolicy.backendRetry` ago), by what decided instead.
    let backendFailures: Counter
    /// Says in the log that the backend fails (at most every 10 s).
    let backendWarning: RateLimitedLog?
    private let backendName: String
    private let failureMode: String

    /// Reads each tenant's keys now (`TenantResolver`); a start error names the tenant and file.
    init(
        _ configuration: LimitsConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment,
        hasher: SipHash = SipHash(k0: .random(in: .min ... .max), k1: .random(in: .min ... .max)),
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        warn: (String) -> Void = { _ in },
        logger: Logger? = nil
    ) throws {
        backendWarning = logger.map { RateLimitedLog(logger: $0) }
        backendName = { if case .redis(let id) = configuration.backend { "redis://\(id)" } else { "local" } }()
        failureMode = configuration.onBackendFailure.rawValue
        self.resolver = try TenantResolver(configuration, environment: environment, hasher: hasher, warn: warn)
        if case .redis(let id) = configuration.backend {
            let address: SocketAddress
            do {
                address = try SocketAddress.makeAddressResolvingHost(id.host, port: id.port)
            } catch {
                throw StartError(description: "limits.backend: cannot resolve \(id): \(error)")
            }
            shared = Shared(address: address, timeout: .nanoseconds(configuration.backendTimeout.nanoseconds))
        } else {
            shared = nil
        }
        backendFailures = registry.makeCounter(
            descriptor: .sluice("sluice_limits_backend_failures_total", "Shared limit decisions that failed, by what decided instead."),
            labels: [("mode", configuration.onBackendFailure.rawValue)])
        let configured = configuration.tenants.map { ($0.name, $0.limits) } + [("default", configuration.defaultTenant ?? TenantLimits())]
        let tenants = configured.map { name, limits in Self.tenant(name, limits, registry: registry) }
        self.tenants = tenants.map(\.tenant)
        self.policy = TenantPolicy(
            tenants.map(\.quota), instances: configuration.instances, shadow: configuration.shadow,
            onBackendFailure: configuration.onBackendFailure)
    }

    /// The tenant a request belongs to (see `TenantResolver`).
    func tenant(for head: HTTP1Head) -> Int {
        resolver.tenant(for: head)
    }

    /// Decides one request of `tenant` at `now` (monotonic nanoseconds) in this process
    /// (`TenantPolicy.admit`).
    func admit(tenant index: Int, now: UInt64) -> Outcome {
        outcome(index, policy.admit(tenant: index, now: now))
    }

    /// Whether `tenant`'s rate is decided by the shared backend (asynchronously).
    func decidesShared(_ tenant: Int) -> Bool {
        shared != nil && tenants[tenant].limits.requestsPerMinute != nil
    }

    /// Decides one request with its rate in Redis, on `limiter`'s loop
    /// (`TenantPolicy.admitShared`): `then` is called once, at once or when Redis answers.
    func admitShared(tenant index: Int, now: UInt64, limiter: RedisRateLimiter, then: @escaping (Outcome) -> Void) {
        guard shared != nil else { return then(admit(tenant: index, now: now)) }
        policy.admitShared(tenant: index, now: now, store: limiter) { then(self.outcome(index, $0)) }
    }

    func release(tenant index: Int) {
        policy.release(tenant: index)
    }

    /// A head's outcome, counted and rendered.
    private func outcome(_ index: Int, _ outcome: LimitOutcome) -> Outcome {
        count(index, outcome)
        if outcome.letIn { return .admitted(tenant: index, windows: outcome.windows) }
        return .refused(refusal(index, outcome), fields: RateLimitHeaders.fields(outcome.windows, retryAfter: outcome.retryAfter))
    }

    /// Counts `outcome` in `sluice_admission_decisions_total` (a body let in was counted on its
    /// head) and a decision made without the backend in `sluice_limits_backend_failures_total`.
    func count(_ index: Int, _ outcome: LimitOutcome, body: Bool = false) {
        if outcome.backendFailed { backendFailed() }
        if body && outcome.decision == .admitted { return }
        tenants[index].decisions[outcome.decision]?.increment()
    }

    /// The answer to a refused request (`tokens`: its body's estimate, for a body limit).
    func refusal(_ index: Int, _ outcome: LimitOutcome, tokens: Int = 0) -> Refusal {
        let tenant = tenants[index]
        switch outcome.refusedBy {
        case .requests: return tenant.rateRefusal
        case .concurrency: return tenant.concurrencyRefusal
        case .body(let limit) where outcome.retryAfter != nil: return tenant.bodyRefusals[limit]
        case .body(let which):
            // No wait would ever let this through: say so, instead of a Retry-After that lies.
            let limit = policy.tenants[index].quota.bodyLimits[which]
            return Refusal(.rateLimited(
                "This request needs \(limit.cost(tokens: tokens)) tokens (estimated prompt plus max_tokens), more than tenant \(tenant.name)'s whole token limit of \(limit.burst) at once\(limit.model.map { " for model \($0)" } ?? ""). Lower max_tokens or shorten the prompt."))
        case nil: return Self.backendDown
        }
    }

    static let backendDown = Refusal(GatewayError(
        status: .serviceUnavailable, message: "The shared rate-limit store is unavailable and limits.on_backend_failure is deny. Retry shortly.",
        type: "server_error", code: "rate_limit_backend_unavailable"))

    /// A shared decision or settlement made without the backend: counted, and said in the log.
    func backendFailed() {
        backendFailures.increment()
        backendWarning?.warning(
            "the limits backend is failing: shared limits are decided as limits.on_backend_failure says",
            metadata: ["backend": "\(backendName)", "on_backend_failure": "\(failureMode)"])
    }
}
