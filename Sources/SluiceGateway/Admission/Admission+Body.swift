import NIOCore
import SluiceConfig
import SluiceCore
import Synchronization

/// Limits decided once the request body is read: a tenant's `tokens_per_minute`, and limits
/// for one model (`tenants[].models`). The request rate and concurrency were decided on the
/// head; these need the body's `model` and its token estimate.
///
/// Token accounting, as OpenAI's own limits count it: at admission a request is charged its
/// estimated prompt tokens plus the completion tokens it may produce (`max_completion_tokens`
/// or `max_tokens`, times `n`; `limits.default_max_tokens` when it names none); when the
/// response ends the charge is settled with the replica's `usage` (`total_tokens`), refunding
/// or charging the difference. A response that ends without `usage` keeps the estimate, unless
/// it failed (not 2xx), which is refunded: a failed request consumed no tokens.
struct BodyLimit: Sendable {
    /// Nil: every request of the tenant; else only requests whose `model` is this.
    let model: String?
    /// Counts tokens (the request's estimate, then its usage), or requests (1 each).
    let countsTokens: Bool
    let perMinute: Int
    let burst: Int
    /// The shared backend's key.
    let key: String
    let refusal: Admission.Refusal

    /// The header window this limit's state is reported under: OpenAI's `-tokens` trio for
    /// the tenant's token limit; per-model limits are not in OpenAI's vocabulary, so they speak
    /// through `Retry-After` and the refusal's message only.
    var window: String? { model == nil && countsTokens ? "tokens" : nil }

    static func all(tenant: String, _ limits: TenantLimits) -> [BodyLimit] {
        var all: [BodyLimit] = []
        if let rate = limits.tokensPerMinute {
            all.append(BodyLimit(
                model: nil, countsTokens: true, perMinute: rate, burst: limits.tokenBurst ?? rate, key: "tenant:\(tenant):tokens",
                refusal: .init(.rateLimited(
                    "Tenant \(tenant) is over its \(rate) tokens per minute. Retry after the time in the Retry-After header (x-ratelimit-reset-tokens says when the limit is full again)."))))
        }
        for model in limits.models {
            let kinds = [(unit: "requests", rate: model.requestsPerMinute, burst: model.burst), (unit: "tokens", rate: model.tokensPerMinute, burst: model.tokenBurst)]
            for kind in kinds {
                guard let rate = kind.rate else { continue }
                all.append(BodyLimit(
                    model: model.model, countsTokens: kind.unit == "tokens", perMinute: rate, burst: kind.burst ?? rate,
                    key: "tenant:\(tenant):model:\(model.model):\(kind.unit)",
                    refusal: .init(.rateLimited(
                        "Tenant \(tenant) is over its \(rate) \(kind.unit) per minute for model \(model.model). Retry after the time in the Retry-After header."))))
            }
        }
        return all
    }

    func applies(to model: String?) -> Bool {
        self.model == nil || self.model == model
    }

    func cost(tokens: Int) -> Int { countsTokens ? tokens : 1 }
}

/// What admission charged a request once its body was read, for the settlement.
struct TokenCharge {
    /// Where the estimate was charged, which is where it is settled.
    enum Store {
        /// This process's limits (`limits.backend: local`).
        case local
        /// The shared backend.
        case shared
        /// This instance's share, while the shared backend failed (`on_backend_failure: local`).
        case fallback
        /// Nowhere: let in uncharged (shadow mode over a limit, or `on_backend_failure: allow`).
        case none
    }

    let tenant: Int
    let model: String?
    /// The tokens charged (the estimate).
    let tokens: Int
    let store: Store
}

extension Admission {
    enum BodyOutcome {
        /// Let in; these windows join the head's in the answer's fields; the estimate was
        /// charged in `store` (where it must be settled).
        case admitted(windows: [RateLimitHeaders.Window], store: TokenCharge.Store)
        /// Refused; the answer's fields describe `windows` (with the head's) and `retryAfter`.
        case refused(Refusal, windows: [RateLimitHeaders.Window], retryAfter: UInt64?)
    }

    /// Whether `tenant` has limits that need the request body.
    func needsBody(_ tenant: Int) -> Bool {
        !tenants[tenant].bodyLimits.isEmpty
    }

    /// Whether a request of `tenant` for `model` is charged tokens (and so must be settled).
    func countsTokens(_ tenant: Int, model: String?) -> Bool {
        tenants[tenant].bodyLimits.contains { $0.countsTokens && $0.applies(to: model) }
    }

    /// Indices of `tenant`'s body limits that apply to a request for `model`.
    func bodyLimits(_ tenant: Int, model: String?) -> [Int] {
        tenants[tenant].bodyLimits.indices.filter { tenants[tenant].bodyLimits[$0].applies(to: model) }
    }

    /// Decides the body limits for a request of `tokens` estimated tokens naming `model`, in
    /// this process: all of them pass and are charged, or none is charged.
    func admitBody(tenant index: Int, model: String?, tokens: Int, now: UInt64, fallback: Bool = false) -> BodyOutcome {
        let tenant = tenants[index]
        let applying = bodyLimits(index, model: model)
        guard !applying.isEmpty else { return .admitted(windows: [], store: .none) }
        let decisions = tenant.state.withLock { state -> [GCRA.Decision] in
            var trial = fallback ? state.bodyFallback : state.body
            let decisions = applying.map { limit in trial[limit].admit(cost: tenant.bodyLimits[limit].cost(tokens: tokens), now: now) }
            if decisions.allSatisfy(\.allowed) {
                if fallback { state.bodyFallback = trial } else { state.body = trial }
            }
            return decisions
        }
        return concludeBody(index, applying: applying, decisions: decisions, tokens: tokens, store: fallback ? .fallback : .local)
    }

    /// The outcome of body-limit decisions made in `store`, counted in metrics.
    func concludeBody(_ index: Int, applying: [Int], decisions: [GCRA.Decision], tokens: Int, store: TokenCharge.Store) -> BodyOutcome {
        let tenant = tenants[index]
        var windows: [RateLimitHeaders.Window] = []
        for (limit, decision) in zip(applying, decisions) {
            if let name = tenant.bodyLimits[limit].window {
                windows.append(.init(name: name, limit: tenant.bodyLimits[limit].perMinute, remaining: decision.remaining, resetAfter: decision.resetAfter))
            }
        }
        guard let refused = zip(applying, decisions).filter({ !$0.1.allowed }).max(by: { $0.1.retryAfter < $1.1.retryAfter }) else {
            return .admitted(windows: windows, store: store)
        }
        let limit = tenant.bodyLimits[refused.0]
        if shadow {
            // Let in, and nothing was charged (a refused decision commits nothing).
            tenant.decisions[Decision.allCases.firstIndex(of: .shadowRefused)!].increment()
            return .admitted(windows: windows, store: .none)
        }
        tenant.decisions[Decision.allCases.firstIndex(of: limit.countsTokens ? .refusedTokens : .refusedRate)!].increment()
        let cost = limit.cost(tokens: tokens)
        let burst = store == .fallback ? max(1, limit.burst / instances) : limit.burst
        if cost > burst {
            // No wait would ever let this through: say so, instead of a Retry-After that lies.
            let error = GatewayError.rateLimited(
                "This request needs \(cost) tokens (estimated prompt plus max_tokens), more than tenant \(tenant.name)'s whole token limit of \(limit.burst) at once\(limit.model.map { " for model \($0)" } ?? ""). Lower max_tokens or shorten the prompt.")
            return .refused(Refusal(error), windows: windows, retryAfter: nil)
        }
        return .refused(limit.refusal, windows: windows, retryAfter: refused.1.retryAfter)
    }

    /// `admitBody` against the shared backend: every applying limit in one round trip, all or
    /// none charged; a backend failure is decided by `on_backend_failure`, as on the head.
    func admitBodyShared(tenant index: Int, model: String?, tokens: Int, now: UInt64, limiter: RedisRateLimiter) -> EventLoopFuture<BodyOutcome> {
        let tenant = tenants[index]
        let applying = bodyLimits(index, model: model)
        guard let shared, !applying.isEmpty else {
            return limiter.eventLoop.makeSucceededFuture(admitBody(tenant: index, model: model, tokens: tokens, now: now))
        }
        if backendDownUntil.load(ordering: .relaxed) > now {
            return limiter.eventLoop.makeSucceededFuture(bodyWithoutBackend(index, model: model, tokens: tokens, now: now, failure: shared.onFailure))
        }
        let items = applying.map { index in
            let limit = tenant.bodyLimits[index]
            return RedisRateLimiter.Item(key: limit.key, perMinute: limit.perMinute, burst: limit.burst, cost: limit.cost(tokens: tokens))
        }
        return limiter.decideAll(items).map { decisions in
            self.concludeBody(index, applying: applying, decisions: decisions, tokens: tokens, store: .shared)
        }.flatMapErrorThrowing { _ in
            self.backendDownUntil.store(NIODeadline.now().uptimeNanoseconds &+ Self.backendRetry, ordering: .relaxed)
            return self.bodyWithoutBackend(index, model: model, tokens: tokens, now: now, failure: shared.onFailure)
        }
    }

    private func bodyWithoutBackend(_ index: Int, model: String?, tokens: Int, now: UInt64, failure: BackendFailureMode) -> BodyOutcome {
        backendFailures.increment()
        switch failure {
        case .allow: return .admitted(windows: [], store: .none)
        case .deny: return .refused(Self.backendDown, windows: [], retryAfter: 1_000_000_000)
        case .local: return admitBody(tenant: index, model: model, tokens: tokens, now: now, fallback: true)
        }
    }

    /// Settles a charge in the shared backend (`used` tokens in all), without waiting: a failed
    /// settlement leaves the estimate charged, and is counted as a backend failure.
    func settleShared(_ charge: TokenCharge, used: Int, limiter: RedisRateLimiter) {
        let difference = used - charge.tokens
        guard difference != 0, backendDownUntil.load(ordering: .relaxed) <= NIODeadline.now().uptimeNanoseconds else { return }
        let tenant = tenants[charge.tenant]
        let items = bodyLimits(charge.tenant, model: charge.model).filter { tenant.bodyLimits[$0].countsTokens }.map { index in
            let limit = tenant.bodyLimits[index]
            return RedisRateLimiter.Item(key: limit.key, perMinute: limit.perMinute, burst: limit.burst, cost: difference)
        }
        guard !items.isEmpty else { return }
        limiter.decideAll(items, adjust: true).whenFailure { _ in self.backendFailures.increment() }
    }

    /// Settles `charge` where it was charged: `used` tokens (nil: unknown), `succeeded` when
    /// the answer was 2xx. `limiter` is needed for a shared charge.
    func settleCharge(_ charge: TokenCharge, used: Int?, succeeded: Bool, now: UInt64, limiter: @autoclosure () -> RedisRateLimiter?) {
        switch charge.store {
        case .none:
            return
        case .local, .fallback:
            _ = settle(charge, used: used, succeeded: succeeded, now: now)
        case .shared:
            guard let limiter = limiter() else { return }
            settleShared(charge, used: used ?? (succeeded ? charge.tokens : 0), limiter: limiter)
        }
    }

    /// Settles a charge once the response ended: `used` tokens (the replica's `usage`), or the
    /// estimate kept when unknown; nothing used when the request failed.
    func settle(_ charge: TokenCharge, used: Int?, succeeded: Bool, now: UInt64) -> Int {
        let actual = used ?? (succeeded ? charge.tokens : 0)
        let difference = actual - charge.tokens
        guard difference != 0 else { return 0 }
        let tenant = tenants[charge.tenant]
        let applying = bodyLimits(charge.tenant, model: charge.model).filter { tenant.bodyLimits[$0].countsTokens }
        tenant.state.withLock { state in
            for limit in applying {
                if charge.store == .fallback {
                    state.bodyFallback[limit].adjust(by: difference, now: now)
                } else {
                    state.body[limit].adjust(by: difference, now: now)
                }
            }
        }
        return difference
    }
}
