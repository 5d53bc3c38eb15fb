import Prometheus
import SluiceConfig
import SluiceCore

/// A configured tenant, as the policy sees it (`TenantQuota`) and as its answers and counters
/// need it (`Admission.Tenant`).
extension Admission {
    static func tenant(_ name: String, _ limits: TenantLimits, registry: PrometheusCollectorRegistry) -> (tenant: Tenant, quota: TenantQuota) {
        let decisions = LimitOutcome.Decision.allCases.compactMap { decision in
            decision.label.map { label in
                (decision, registry.makeCounter(
                    descriptor: .sluice("sluice_admission_decisions_total", "Admission decisions, by tenant and outcome."),
                    labels: [("tenant", name), ("decision", label)]))
            }
        }
        let rate = limits.requestsPerMinute.map { "\($0)" } ?? "unlimited"
        let body = bodyLimits(tenant: name, limits)
        let tenant = Tenant(
            name: name, limits: limits,
            rateRefusal: Refusal(.rateLimited(
                "Tenant \(name) is over its \(rate) requests per minute. Retry after the time in the Retry-After header (x-ratelimit-reset-requests says when the limit is full again).")),
            concurrencyRefusal: Refusal(.rateLimited(
                "Tenant \(name) has \(limits.maxConcurrent ?? 0) requests in progress, its max_concurrent. Retry when one ends.")),
            bodyRefusals: body.map(\.refusal),
            decisions: Dictionary(uniqueKeysWithValues: decisions))
        let quota = TenantQuota(
            name: name, requestsPerMinute: limits.requestsPerMinute, burst: limits.burst, maxConcurrent: limits.maxConcurrent,
            bodyLimits: body.map(\.limit))
        return (tenant, quota)
    }

    /// `tokens_per_minute`, then each model's requests and tokens per minute, with their refusals.
    static func bodyLimits(tenant: String, _ limits: TenantLimits) -> [(limit: BodyLimit, refusal: Refusal)] {
        var all: [(limit: BodyLimit, refusal: Refusal)] = []
        if let rate = limits.tokensPerMinute {
            all.append((
                BodyLimit(tenant: tenant, model: nil, countsTokens: true, perMinute: rate, burst: limits.tokenBurst),
                Refusal(.rateLimited(
                    "Tenant \(tenant) is over its \(rate) tokens per minute. Retry after the time in the Retry-After header (x-ratelimit-reset-tokens says when the limit is full again)."))))
        }
        for model in limits.models {
            let kinds = [(unit: "requests", rate: model.requestsPerMinute, burst: model.burst), (unit: "tokens", rate: model.tokensPerMinute, burst: model.tokenBurst)]
            for kind in kinds {
                guard let rate = kind.rate else { continue }
                all.append((
                    BodyLimit(tenant: tenant, model: model.model, countsTokens: kind.unit == "tokens", perMinute: rate, burst: kind.burst),
                    Refusal(.rateLimited(
                        "Tenant \(tenant) is over its \(rate) \(kind.unit) per minute for model \(model.model). Retry after the time in the Retry-After header."))))
            }
        }
        return all
    }
}

extension LimitOutcome.Decision {
    /// The `decision` label in `sluice_admission_decisions_total`; nil: not counted there (a
    /// refusal for want of the backend is counted in `sluice_limits_backend_failures_total`).
    var label: String? {
        switch self {
        case .admitted: "admitted"
        case .refusedRate: "refused_rate"
        case .refusedConcurrency: "refused_concurrency"
        case .refusedTokens: "refused_tokens"
        case .shadowRefused: "shadow_refused"
        case .backendUnavailable: nil
        }
    }
}
