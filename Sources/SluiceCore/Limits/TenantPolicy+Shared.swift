/// The request rate decided by a `SharedLimitStore`, and what stands in when the store fails.
extension TenantPolicy {
    /// Decides a request's head with the tenant's rate in `store` (concurrency stays here: it is
    /// per instance). `then` gets the outcome once: at once when this instance can tell (over
    /// `max_concurrent`, a remembered refusal, the store backing off), else when the store
    /// answers. A tenant without a rate is decided here (`admit`).
    public func admitShared(tenant index: Int, now: UInt64, store: some SharedLimitStore, then: @escaping (LimitOutcome) -> Void) {
        let tenant = tenants[index]
        guard let rate = tenant.quota.requestsPerMinute else { return then(admit(tenant: index, now: now)) }
        if let outcome = decideHere(index, now: now, rate: rate) { return then(outcome) }
        guard isBackendUp(at: now) else { return then(withoutBackend(index, now: now, rate: rate)) }
        let item = tenant.quota.requestItem(rate: rate)
        store.decide([item], adjust: false) { result in
            guard case .success(let decisions) = result, decisions.count == 1 else {
                self.backendFailed(at: now)
                return then(self.withoutBackend(index, now: now, rate: rate))
            }
            if !decisions[0].allowed {
                tenant.state.withLock { $0.remember(decisions[0], at: now) }
            }
            then(self.concludeShared(index, decisions[0], rate: rate))
        }
    }

    /// What this instance can tell without the store (over `max_concurrent`, a remembered
    /// refusal), or nil with the concurrency slot taken: ask the store. One lock: the slot is
    /// taken now (the answer comes later; a refusal gives it back).
    func decideHere(_ index: Int, now: UInt64, rate: Int) -> LimitOutcome? {
        enum Here {
            case overConcurrency
            /// Over `max_concurrent` in shadow mode: let in, the rate not spent (as locally).
            case shadowOverConcurrency
            case remembered(GCRA.Decision)
            case ask
        }
        let here: Here = tenants[index].state.withLock { state in
            if let limit = tenants[index].quota.maxConcurrent, state.inFlight >= limit {
                guard shadow else { return .overConcurrency }
                state.inFlight += 1
                return .shadowOverConcurrency
            }
            state.inFlight += 1
            return state.rememberedRefusal(at: now).map { .remembered($0) } ?? .ask
        }
        switch here {
        case .overConcurrency: return LimitOutcome(.refusedConcurrency, refusedBy: .concurrency, retryAfter: Self.second)
        case .shadowOverConcurrency: return LimitOutcome(.shadowRefused, refusedBy: .concurrency)
        case .remembered(let refusal): return concludeShared(index, refusal, rate: rate)
        case .ask: return nil
        }
    }

    /// A shared (or fallback) rate decision for a request whose slot is taken: a refusal gives
    /// the slot back.
    func concludeShared(_ index: Int, _ decision: GCRA.Decision, rate: Int) -> LimitOutcome {
        let windows = [Self.requestsWindow(rate, decision)]
        if decision.allowed { return LimitOutcome(.admitted, windows: windows) }
        if shadow { return LimitOutcome(.shadowRefused, refusedBy: .requests, windows: windows) }
        release(tenant: index)
        return LimitOutcome(.refusedRate, refusedBy: .requests, windows: windows, retryAfter: decision.retryAfter)
    }

    /// A head decision while the store is failing (its slot taken), as `onBackendFailure` says.
    func withoutBackend(_ index: Int, now: UInt64, rate: Int) -> LimitOutcome {
        var outcome: LimitOutcome
        switch onBackendFailure {
        case .allow:
            outcome = LimitOutcome(.admitted)
        case .deny:
            release(tenant: index)
            outcome = LimitOutcome(.backendUnavailable, retryAfter: Self.second)
        case .local:
            let decision = tenants[index].state.withLock { $0.fallback!.admit(now: now) }
            outcome = concludeShared(index, decision, rate: rate)
        }
        outcome.backendFailed = true
        return outcome
    }

    /// Whether the store may be asked at `now` (no failure in the last `backendRetry`).
    func isBackendUp(at now: UInt64) -> Bool {
        backendDownUntil.load(ordering: .relaxed) <= now
    }

    /// The store failed a decision asked at `now`: it is left alone for `backendRetry` from
    /// then (a later deadline already set is kept).
    func backendFailed(at now: UInt64) {
        let until = now &+ Self.backendRetry
        var current = backendDownUntil.load(ordering: .relaxed)
        while current < until {
            let (exchanged, original) = backendDownUntil.compareExchange(expected: current, desired: until, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }
}
