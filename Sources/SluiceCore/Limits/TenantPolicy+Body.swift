/// The limits decided on a request's body (`BodyLimit`): every limit that applies to the
/// request's model passes and is charged, or none is charged.
extension TenantPolicy {
    /// Whether `tenant` has limits that need the request body.
    public func needsBody(_ tenant: Int) -> Bool {
        !tenants[tenant].quota.bodyLimits.isEmpty
    }

    /// Whether a request of `tenant` for `model` is charged tokens (and so must be settled).
    public func countsTokens(_ tenant: Int, model: String?) -> Bool {
        tenants[tenant].quota.bodyLimits.contains { $0.countsTokens && $0.applies(to: model) }
    }

    /// Decides a body of `tokens` estimated tokens naming `model` in this process, against the
    /// limits or (`fallback`) this instance's shares of them.
    public func admitBody(tenant index: Int, model: String?, tokens: Int, now: UInt64, fallback: Bool = false) -> LimitOutcome {
        let quota = tenants[index].quota
        let applying = quota.bodyLimits(for: model)
        guard !applying.isEmpty else { return LimitOutcome(.admitted) }
        let costs = applying.map { quota.bodyLimits[$0].cost(tokens: tokens) }
        let decisions = tenants[index].state.withLock { $0.admitBody(applying, costs: costs, now: now, fallback: fallback) }
        return concludeBody(index, applying: applying, decisions: decisions, tokens: tokens, charged: fallback ? .fallback : .local)
    }

    /// `admitBody` in `store`: every applying limit in one decision, all or none charged. `then`
    /// gets the outcome once (at once while the store backs off); a failure is decided by
    /// `onBackendFailure`, as on the head.
    public func admitBodyShared(
        tenant index: Int, model: String?, tokens: Int, now: UInt64, store: some SharedLimitStore, then: @escaping (LimitOutcome) -> Void
    ) {
        let quota = tenants[index].quota
        let applying = quota.bodyLimits(for: model)
        guard !applying.isEmpty else { return then(LimitOutcome(.admitted)) }
        guard isBackendUp(at: now) else { return then(bodyWithoutBackend(index, model: model, tokens: tokens, now: now)) }
        let items = applying.map { quota.bodyLimits[$0].item(cost: quota.bodyLimits[$0].cost(tokens: tokens)) }
        store.decide(items, adjust: false) { result in
            guard case .success(let decisions) = result, decisions.count == items.count else {
                self.backendFailed(at: now)
                return then(self.bodyWithoutBackend(index, model: model, tokens: tokens, now: now))
            }
            then(self.concludeBody(index, applying: applying, decisions: decisions, tokens: tokens, charged: .shared))
        }
    }

    /// The outcome of body-limit decisions made where `charged` says. Of several refusals, the
    /// one with the longest wait speaks.
    func concludeBody(_ index: Int, applying: [Int], decisions: [GCRA.Decision], tokens: Int, charged: TokenCharge.Store) -> LimitOutcome {
        let limits = tenants[index].quota.bodyLimits
        var windows: [RateLimitHeaders.Window] = []
        for (limit, decision) in zip(applying, decisions) {
            if let name = limits[limit].window {
                windows.append(.init(name: name, limit: limits[limit].perMinute, remaining: decision.remaining, resetAfter: decision.resetAfter))
            }
        }
        guard let refused = zip(applying, decisions).filter({ !$0.1.allowed }).max(by: { $0.1.retryAfter < $1.1.retryAfter }) else {
            return LimitOutcome(.admitted, windows: windows, charged: charged)
        }
        // A refused decision charged nothing, in any store.
        if shadow { return LimitOutcome(.shadowRefused, refusedBy: .body(refused.0), windows: windows) }
        let limit = limits[refused.0]
        let burst = charged == .fallback ? max(1, limit.burst / instances) : limit.burst
        // No wait would ever let a cost over the burst through: no retry time.
        let retryAfter = limit.cost(tokens: tokens) > burst ? nil : refused.1.retryAfter
        return LimitOutcome(limit.countsTokens ? .refusedTokens : .refusedRate, refusedBy: .body(refused.0), windows: windows, retryAfter: retryAfter)
    }

    /// A body decision while the store is failing, as `onBackendFailure` says.
    func bodyWithoutBackend(_ index: Int, model: String?, tokens: Int, now: UInt64) -> LimitOutcome {
        var outcome: LimitOutcome
        switch onBackendFailure {
        case .allow: outcome = LimitOutcome(.admitted)
        case .deny: outcome = LimitOutcome(.backendUnavailable, retryAfter: Self.second)
        case .local: outcome = admitBody(tenant: index, model: model, tokens: tokens, now: now, fallback: true)
        }
        outcome.backendFailed = true
        return outcome
    }
}
