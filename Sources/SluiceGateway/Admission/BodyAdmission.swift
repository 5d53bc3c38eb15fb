import NIOCore
import SluiceCore

/// A read body's limits for one exchange (token limits, per-model limits; see `BodyLimit`):
/// charged its estimate or refused, the replica asked for stream usage when tokens are counted
/// and the client did not ask, and the charge settled with the real usage when the exchange ends.
enum BodyAdmission {
    enum Verdict {
        /// Go on with this body (the client's, or rewritten to ask for usage).
        case proceed(ByteBuffer)
        case refuse(GatewayError, fields: [(String, String)], body: String?)
    }

    /// Decides at once, or when the shared backend answers (on the exchange's loop); `deliver`
    /// is called once, unless `stillWanted` says the exchange has gone meanwhile, in which case
    /// what was charged is given back.
    static func decide(
        _ exchange: Exchange, body: ByteBuffer, cost: RequestCost, tenant: Int, admission: Admission, now: NIODeadline,
        limiter: RedisRateLimiter?, allocator: ByteBufferAllocator,
        stillWanted: @escaping () -> Bool, deliver: @escaping (Verdict) -> Void
    ) {
        guard let limiter else {
            let outcome = admission.admitBody(tenant: tenant, model: cost.model, tokens: cost.tokens, now: now.uptimeNanoseconds)
            return deliver(apply(outcome, cost: cost, to: exchange, tenant: tenant, admission: admission, body: body, allocator: allocator))
        }
        admission.admitBodyShared(tenant: tenant, model: cost.model, tokens: cost.tokens, now: now.uptimeNanoseconds, limiter: limiter) { outcome in
            guard stillWanted() else {
                // The client left meanwhile: nothing was used.
                if case .admitted(_, let store) = outcome, admission.countsTokens(tenant, model: cost.model) {
                    admission.settle(
                        TokenCharge(tenant: tenant, model: cost.model, tokens: cost.tokens, store: store),
                        used: 0, succeeded: false, now: limiter.eventLoop.now.uptimeNanoseconds, limiter: limiter)
                }
                return
            }
            deliver(apply(outcome, cost: cost, to: exchange, tenant: tenant, admission: admission, body: body, allocator: allocator))
        }
    }

    private static func apply(
        _ outcome: Admission.BodyOutcome, cost: RequestCost, to exchange: Exchange, tenant: Int, admission: Admission, body: ByteBuffer,
        allocator: ByteBufferAllocator
    ) -> Verdict {
        switch outcome {
        case .refused(let refusal, let windows, let retryAfter):
            return .refuse(refusal.error, fields: RateLimitHeaders.fields(exchange.limitWindows + windows, retryAfter: retryAfter), body: refusal.body)
        case .admitted(let windows, let store):
            if !windows.isEmpty {
                exchange.limitWindows += windows
                exchange.limitFields = RateLimitHeaders.fields(exchange.limitWindows)
            }
            guard admission.countsTokens(tenant, model: cost.model) else { return .proceed(body) }
            exchange.tokenCharge = TokenCharge(tenant: tenant, model: cost.model, tokens: cost.tokens, store: store)
            if cost.stream, !cost.clientAskedUsage,
               let asking = RequestCost.askingUsage(body, hasStreamOptions: cost.hasStreamOptions, allocator: allocator) {
                exchange.usageMeter = UsageMeter(strip: true)
                if exchange.contentLength != nil { exchange.rewrittenLength = asking.readableBytes }
                return .proceed(asking)
            }
            exchange.usageMeter = UsageMeter(strip: false)
            return .proceed(body)
        }
    }

    /// Settles the exchange's token charge (once), when it ends.
    static func settle(_ exchange: Exchange, status: Int, admission: Admission, now: NIODeadline, limiter: @autoclosure () -> RedisRateLimiter?) {
        guard let charge = exchange.tokenCharge else { return }
        exchange.tokenCharge = nil
        admission.settle(
            charge, used: exchange.knownUsage ?? exchange.usageMeter?.usedTokens, succeeded: (200..<300).contains(status),
            now: now.uptimeNanoseconds, limiter: limiter())
    }
}
