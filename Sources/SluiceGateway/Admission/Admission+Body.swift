import SluiceCore

/// The limits decided once the request body is read (`BodyLimit`: a tenant's
/// `tokens_per_minute`, and limits for one model), and the settlement of a token charge when
/// the response ends (`TenantPolicy.settle`).
///
/// Token accounting, as OpenAI's own limits count it: at admission a request is charged its
/// estimated prompt tokens plus the completion tokens it may produce (`max_completion_tokens`
/// or `max_tokens`, times `n`; `limits.default_max_tokens` when it names none); when the
/// response ends the charge is settled with the replica's `usage` (`total_tokens`), refunding
/// or charging the difference. A response that ends without `usage` keeps the estimate, unless
/// it failed (not 2xx), which is refunded: a failed request consumed no tokens.
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
        policy.needsBody(tenant)
    }

    /// Whether a request of `tenant` for `model` is charged tokens (and so must be settled).
    func countsTokens(_ tenant: Int, model: String?) -> Bool {
        policy.countsTokens(tenant, model: model)
    }

    /// Decides the body limits for a request of `tokens` estimated tokens naming `model`, in
    /// this process (`fallback`: on this instance's shares): all of them pass and are charged,
    /// or none is charged.
    func admitBody(tenant index: Int, model: String?, tokens: Int, now: UInt64, fallback: Bool = false) -> BodyOutcome {
        bodyOutcome(index, tokens: tokens, policy.admitBody(tenant: index, model: model, tokens: tokens, now: now, fallback: fallback))
    }

    /// `admitBody` against the shared backend, on `limiter`'s loop: every applying limit in one
    /// round trip; `then` is called once, at once or when Redis answers.
    func admitBodyShared(
        tenant index: Int, model: String?, tokens: Int, now: UInt64, limiter: RedisRateLimiter, then: @escaping (BodyOutcome) -> Void
    ) {
        guard shared != nil else { return then(admitBody(tenant: index, model: model, tokens: tokens, now: now)) }
        policy.admitBodyShared(tenant: index, model: model, tokens: tokens, now: now, store: limiter) { outcome in
            then(self.bodyOutcome(index, tokens: tokens, outcome))
        }
    }

    /// Settles `charge` where it was charged: `used` tokens (nil: unknown), `succeeded` when
    /// the answer was 2xx; `limiter` is asked for only for a shared charge, whose failure is
    /// counted as a backend failure. Returns the difference settled.
    @discardableResult
    func settle(_ charge: TokenCharge, used: Int?, succeeded: Bool, now: UInt64, limiter: @autoclosure () -> RedisRateLimiter? = nil) -> Int {
        policy.settle(charge, used: used, succeeded: succeeded, now: now, store: limiter(), failed: { self.backendFailed() })
    }

    /// A body's outcome, counted and rendered.
    private func bodyOutcome(_ index: Int, tokens: Int, _ outcome: LimitOutcome) -> BodyOutcome {
        count(index, outcome, body: true)
        if outcome.letIn { return .admitted(windows: outcome.windows, store: outcome.charged) }
        return .refused(refusal(index, outcome, tokens: tokens), windows: outcome.windows, retryAfter: outcome.retryAfter)
    }
}
