import NIOCore
import SluiceCore
import SluiceHTTP1

/// The limits decided on a request's head (the tenant's request rate and concurrency), for one
/// exchange: by this instance's own counters, or by the shared backend when the tenant's rate is
/// shared. A refused request touches no pool, replica or body.
enum HeadAdmission {
    enum Verdict {
        case admitted
        case refused(GatewayError, fields: [(String, String)], body: String?)
    }

    /// Decides at once or when the shared backend answers (on the limiter's loop). `deliver` is
    /// called once, with whether it comes after `decide` returned, unless `stillWanted` says the
    /// exchange has gone meanwhile (then what admission took is given back). Returns whether
    /// the decision is still to come.
    static func decide(
        _ head: HTTP1Head, _ exchange: Exchange, admission: Admission, now: NIODeadline,
        limiter: (Admission.Shared) -> RedisRateLimiter, stillWanted: @escaping () -> Bool, deliver: @escaping (Verdict, _ later: Bool) -> Void
    ) -> Bool {
        let tenant = admission.tenant(for: head)
        guard admission.decidesShared(tenant), let shared = admission.shared else {
            deliver(apply(admission.admit(tenant: tenant, now: now.uptimeNanoseconds), to: exchange), false)
            return false
        }
        var returned = false
        var delivered = false
        admission.admitShared(tenant: tenant, now: now.uptimeNanoseconds, limiter: limiter(shared)) { outcome in
            guard stillWanted() else {
                if case .admitted(let tenant, _) = outcome { admission.release(tenant: tenant) }
                return
            }
            delivered = true
            deliver(apply(outcome, to: exchange), returned)
        }
        returned = true
        return !delivered
    }

    private static func apply(_ outcome: Admission.Outcome, to exchange: Exchange) -> Verdict {
        switch outcome {
        case .admitted(let tenant, let windows):
            exchange.tenant = tenant
            exchange.limitWindows = windows
            exchange.limitFields = windows.isEmpty ? [] : RateLimitHeaders.fields(windows)
            return .admitted
        case .refused(let refusal, let fields):
            return .refused(refusal.error, fields: fields, body: refusal.body)
        }
    }
}
