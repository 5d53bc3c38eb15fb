import NIOCore
import SluiceCore
import SluiceHTTP1

/// Limits decided on the body (token limits, per-model limits), and settling token charges with
/// the replica's usage. See `BodyLimit` for the accounting.
extension ProxyServerHandler {
    /// Whether admission must read this request's body before it goes on.
    func admissionNeedsBody(_ exchange: Exchange, head: HTTP1Head) -> Bool {
        guard let tenant = exchange.tenant, let admission = runtime.admission, admission.needsBody(tenant) else { return false }
        return head.isChunked || (head.contentLength ?? 0) > 0
    }

    /// Decides the body's limits, then calls `proceed` with the body to send (rewritten to ask
    /// for the usage chunk when the client streams without it); answers the client instead when
    /// refused or the body is not JSON.
    func admitBody(_ exchange: Exchange, body: ByteBuffer, then proceed: @escaping (ByteBuffer) -> Void) {
        guard let admission = runtime.admission, let tenant = exchange.tenant, admission.needsBody(tenant), body.readableBytes > 0 else {
            proceed(body)
            return
        }
        guard case .success(let facts) = facts(of: body, for: exchange) else {
            respond(.badJSON("a token-limited request must be a JSON object"), closeAfter: false)
            return
        }
        let cost = RequestCost(facts, defaultMaxTokens: runtime.limits.defaultMaxTokens)
        let now = NIODeadline.now().uptimeNanoseconds
        if let shared = admission.shared {
            let limiter = upstreams.redisLimiter(shared)
            mode = .admitting
            admission.admitBodyShared(tenant: tenant, model: cost.model, tokens: cost.tokens, now: now, limiter: limiter)
                .assumeIsolated().whenSuccess { outcome in
                    guard self.exchange === exchange, !exchange.finished, case .admitting = self.mode else {
                        // The client left meanwhile: nothing was used.
                        if case .admitted(_, let store) = outcome, admission.countsTokens(tenant, model: cost.model) {
                            admission.settleCharge(
                                TokenCharge(tenant: tenant, model: cost.model, tokens: cost.tokens, store: store),
                                used: 0, succeeded: false, now: NIODeadline.now().uptimeNanoseconds, limiter: limiter)
                        }
                        return
                    }
                    self.mode = .inspecting
                    self.applyBodyOutcome(outcome, cost: cost, exchange, body: body, then: proceed)
                }
            return
        }
        applyBodyOutcome(admission.admitBody(tenant: tenant, model: cost.model, tokens: cost.tokens, now: now), cost: cost, exchange, body: body, then: proceed)
    }

    private func applyBodyOutcome(
        _ outcome: Admission.BodyOutcome, cost: RequestCost, _ exchange: Exchange, body: ByteBuffer,
        then proceed: (ByteBuffer) -> Void
    ) {
        guard let admission = runtime.admission, let tenant = exchange.tenant else { return }
        switch outcome {
        case .refused(let refusal, let windows, let retryAfter):
            let fields = RateLimitHeaders.fields(exchange.limitWindows + windows, retryAfter: retryAfter)
            respond(refusal.error, closeAfter: false, extraFields: fields, body: refusal.body)
        case .admitted(let windows, let store):
            if !windows.isEmpty {
                exchange.limitWindows += windows
                exchange.limitFields = RateLimitHeaders.fields(exchange.limitWindows)
            }
            guard admission.countsTokens(tenant, model: cost.model) else {
                proceed(body)
                return
            }
            exchange.tokenCharge = TokenCharge(tenant: tenant, model: cost.model, tokens: cost.tokens, store: store)
            if cost.stream, !cost.clientAskedUsage,
               let asking = RequestCost.askingUsage(body, hasStreamOptions: cost.hasStreamOptions, allocator: context.channel.allocator) {
                exchange.usageMeter = UsageMeter(strip: true)
                if exchange.contentLength != nil { exchange.rewrittenLength = asking.readableBytes }
                proceed(asking)
            } else {
                exchange.usageMeter = UsageMeter(strip: false)
                proceed(body)
            }
        }
    }

    /// Settles the exchange's token charge (once), when it ends.
    func settleTokens(_ exchange: Exchange, status: Int) {
        guard let charge = exchange.tokenCharge, let admission = runtime.admission else { return }
        exchange.tokenCharge = nil
        admission.settleCharge(
            charge, used: exchange.knownUsage ?? exchange.usageMeter?.usedTokens, succeeded: (200..<300).contains(status), now: NIODeadline.now().uptimeNanoseconds,
            limiter: admission.shared.map { upstreams.redisLimiter($0) })
    }
}
