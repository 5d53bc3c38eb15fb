import Foundation
import NIOCore
import Prometheus
import SluiceConfig
import SluiceCore
import SluiceHTTP1
import Synchronization

/// Per-tenant admission for one gateway process (`limits.backend: local`): who is asking (the
/// API key, looked up by keyed hash) and whether their request rate and concurrency let them
/// in. A refusal is decided from the request head alone, before any pool, replica or body is
/// touched, so it costs far less than a forwarded request.
final class Admission: Sendable {
    /// A class, not a struct: its `state` is a `Mutex`, which every copy of a tenant must share.
    final class Tenant: Sendable {
        let name: String
        let limits: TenantLimits
        let state: Mutex<State>
        /// The refusals' JSON bodies, rendered once (a refusal must be cheap; the timing is in
        /// the header fields).
        let rateRefusal: Refusal
        let concurrencyRefusal: Refusal
        /// Limits decided once the body is read: `tokens_per_minute`, and per-model limits.
        let bodyLimits: [BodyLimit]
        /// `sluice_admission_decisions_total{tenant, decision}`, by `Decision`.
        let decisions: [Counter]

        init(
            name: String, limits: TenantLimits, state: State, rateRefusal: Refusal, concurrencyRefusal: Refusal,
            bodyLimits: [BodyLimit], decisions: [Counter]
        ) {
            self.name = name
            self.limits = limits
            self.state = Mutex(state)
            self.rateRefusal = rateRefusal
            self.concurrencyRefusal = concurrencyRefusal
            self.bodyLimits = bodyLimits
            self.decisions = decisions
        }
    }

    /// What admission did with a request, as counted in metrics.
    enum Decision: String, CaseIterable {
        case admitted
        /// Refused: over `requests_per_minute`.
        case refusedRate = "refused_rate"
        /// Refused: at `max_concurrent`.
        case refusedConcurrency = "refused_concurrency"
        /// Refused: over `tokens_per_minute` (the tenant's or a model's).
        case refusedTokens = "refused_tokens"
        /// Shadow mode: would have been refused, was let in.
        case shadowRefused = "shadow_refused"
    }

    struct State: Sendable {
        var requests: GCRA?
        /// This instance's share (`limit / instances`), used while the shared backend fails.
        var fallback: GCRA?
        var inFlight = 0
        /// Until when Redis's last refusal holds (monotonic ns), and when it said the limit is
        /// full again: requests before then are refused here, without a round trip (other
        /// instances can only move the TAT later, never earlier, so Redis would refuse too).
        var refusedUntil: UInt64 = 0
        var refusedReset: UInt64 = 0
        /// `Tenant.bodyLimits`' state, and this instance's shares of them (`local` fallback).
        var body: [GCRA] = []
        var bodyFallback: [GCRA] = []
    }

    /// The shared backend (`limits.backend: redis://`), when configured.
    struct Shared: Sendable {
        let address: SocketAddress
        let timeout: TimeAmount
        let onFailure: BackendFailureMode
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
    let resolver: TenantResolver
    let shadow: Bool
    /// `limits.instances`: a fallback limit is this instance's share, `limit / instances`.
    let instances: Int
    let shared: Shared?
    /// `sluice_limits_backend_failures_total{mode}`: shared decisions made without the backend
    /// (it failed, or failed less than `backendRetry` ago), by what decided instead.
    let backendFailures: Counter
    /// After a failed shared decision, Redis is not asked again until this instant (monotonic
    /// ns): during an outage requests do not each wait `backend_timeout`.
    let backendDownUntil = Atomic<UInt64>(0)
    static let backendRetry: UInt64 = 250_000_000

    /// Reads each tenant's keys now (`TenantResolver`); a start error names the tenant and file.
    init(
        _ configuration: LimitsConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment,
        hasher: SipHash = SipHash(k0: .random(in: .min ... .max), k1: .random(in: .min ... .max)),
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        warn: (String) -> Void = { _ in }
    ) throws {
        self.resolver = try TenantResolver(configuration, environment: environment, hasher: hasher, warn: warn)
        self.shadow = configuration.shadow
        if case .redis(let id) = configuration.backend {
            let address: SocketAddress
            do {
                address = try SocketAddress.makeAddressResolvingHost(id.host, port: id.port)
            } catch {
                throw StartError(description: "limits.backend: cannot resolve \(id): \(error)")
            }
            shared = Shared(
                address: address, timeout: .nanoseconds(configuration.backendTimeout.nanoseconds),
                onFailure: configuration.onBackendFailure)
        } else {
            shared = nil
        }
        backendFailures = registry.makeCounter(
            descriptor: .sluice("sluice_limits_backend_failures_total", "Shared limit decisions that failed, by what decided instead."),
            labels: [("mode", configuration.onBackendFailure.rawValue)])
        let instances = max(1, configuration.instances)
        self.instances = instances
        var tenants = configuration.tenants.map { tenant in
            Self.tenant(tenant.name, tenant.limits, instances: instances, registry: registry)
        }
        tenants.append(Self.tenant("default", configuration.defaultTenant ?? TenantLimits(), instances: instances, registry: registry))
        self.tenants = tenants
    }

    private static func tenant(_ name: String, _ limits: TenantLimits, instances: Int, registry: PrometheusCollectorRegistry) -> Tenant {
        let requests = limits.requestsPerMinute.map { GCRA(perMinute: $0, burst: limits.burst) }
        let fallback = limits.requestsPerMinute.map { rate in
            GCRA(perMinute: max(1, rate / instances), burst: max(1, (limits.burst ?? rate) / instances))
        }
        let decisions = Decision.allCases.map { decision in
            registry.makeCounter(
                descriptor: .sluice("sluice_admission_decisions_total", "Admission decisions, by tenant and outcome."),
                labels: [("tenant", name), ("decision", decision.rawValue)])
        }
        let rate = limits.requestsPerMinute.map { "\($0)" } ?? "unlimited"
        let bodyLimits = BodyLimit.all(tenant: name, limits)
        var state = State(requests: requests, fallback: fallback)
        state.body = bodyLimits.map { GCRA(perMinute: $0.perMinute, burst: $0.burst) }
        state.bodyFallback = bodyLimits.map { GCRA(perMinute: max(1, $0.perMinute / instances), burst: max(1, $0.burst / instances)) }
        return Tenant(
            name: name, limits: limits, state: state,
            rateRefusal: Refusal(.rateLimited(
                "Tenant \(name) is over its \(rate) requests per minute. Retry after the time in the Retry-After header (x-ratelimit-reset-requests says when the limit is full again).")),
            concurrencyRefusal: Refusal(.rateLimited(
                "Tenant \(name) has \(limits.maxConcurrent ?? 0) requests in progress, its max_concurrent. Retry when one ends.")),
            bodyLimits: bodyLimits,
            decisions: decisions)
    }

    /// The tenant a request belongs to (see `TenantResolver`).
    func tenant(for head: HTTP1Head) -> Int {
        resolver.tenant(for: head)
    }

    /// Decides one request of `tenant` at `now` (monotonic nanoseconds). A request refused for
    /// concurrency spends nothing from the rate, in shadow mode too (shadow counts what
    /// enforcing would refuse, no more).
    func admit(tenant index: Int, now: UInt64) -> Outcome {
        let tenant = tenants[index]
        let limits = tenant.limits
        let (outcome, decision) = tenant.state.withLock { state -> (Outcome, Decision) in
            var windows: [RateLimitHeaders.Window] = []
            var refusal: (Refusal, UInt64, Decision)?
            if let limit = limits.maxConcurrent, state.inFlight >= limit {
                refusal = (tenant.concurrencyRefusal, 1_000_000_000, .refusedConcurrency)
            }
            if var requests = state.requests, let rate = limits.requestsPerMinute {
                if refusal != nil {
                    // Not charged, and the fields say where the rate stands without it.
                    let reset = requests.tat > now ? requests.tat - now : 0
                    windows.append(.init(name: "requests", limit: rate, remaining: requests.remaining(at: now), resetAfter: reset))
                } else {
                    let decision = requests.admit(now: now)
                    if decision.allowed { state.requests = requests }
                    windows.append(.init(name: "requests", limit: rate, remaining: decision.remaining, resetAfter: decision.resetAfter))
                    if !decision.allowed {
                        refusal = (tenant.rateRefusal, decision.retryAfter, .refusedRate)
                    }
                }
            }
            if let (error, retry, why) = refusal, !shadow {
                return (.refused(error, fields: RateLimitHeaders.fields(windows, retryAfter: retry)), why)
            }
            state.inFlight += 1
            return (.admitted(tenant: index, windows: windows), refusal == nil ? .admitted : .shadowRefused)
        }
        tenant.decisions[Decision.allCases.firstIndex(of: decision)!].increment()
        return outcome
    }

    /// Whether `tenant`'s rate is decided by the shared backend (asynchronously).
    func decidesShared(_ tenant: Int) -> Bool {
        shared != nil && tenants[tenant].limits.requestsPerMinute != nil
    }

    /// Decides one request against the shared backend: concurrency here (it is per instance),
    /// the rate in Redis, on `limiter`'s loop. A backend failure is decided by `on_backend_failure`:
    /// `allow` lets it in, `deny` refuses it (503), `local` uses this instance's share.
    func admitShared(tenant index: Int, now: UInt64, limiter: RedisRateLimiter) -> EventLoopFuture<Outcome> {
        let tenant = tenants[index]
        guard let rate = tenant.limits.requestsPerMinute, let shared else {
            return limiter.eventLoop.makeSucceededFuture(admit(tenant: index, now: now))
        }
        enum Local {
            case overConcurrency
            /// Over `max_concurrent` in shadow mode: let in, the rate not spent (as locally).
            case shadowOverConcurrency
            /// Redis's last refusal still holds.
            case refusedUntil(GCRA.Decision)
            case askRedis
        }
        // One lock: the concurrency slot is taken now (the answer comes later; a refusal gives
        // it back), and a remembered refusal is read.
        let local: Local = tenant.state.withLock { state in
            if let limit = tenant.limits.maxConcurrent, state.inFlight >= limit {
                guard shadow else { return .overConcurrency }
                state.inFlight += 1
                return .shadowOverConcurrency
            }
            state.inFlight += 1
            guard state.refusedUntil > now else { return .askRedis }
            return .refusedUntil(GCRA.Decision(
                allowed: false, remaining: 0, retryAfter: state.refusedUntil - now,
                resetAfter: state.refusedReset > now ? state.refusedReset - now : 0))
        }
        switch local {
        case .overConcurrency:
            tenant.decisions[Decision.allCases.firstIndex(of: .refusedConcurrency)!].increment()
            return limiter.eventLoop.makeSucceededFuture(
                .refused(tenant.concurrencyRefusal, fields: RateLimitHeaders.fields([], retryAfter: 1_000_000_000)))
        case .shadowOverConcurrency:
            tenant.decisions[Decision.allCases.firstIndex(of: .shadowRefused)!].increment()
            return limiter.eventLoop.makeSucceededFuture(.admitted(tenant: index, windows: []))
        case .refusedUntil(let decision):
            return limiter.eventLoop.makeSucceededFuture(conclude(index, decision: decision, rate: rate))
        case .askRedis:
            break
        }
        let burst = tenant.limits.burst ?? rate
        if backendDownUntil.load(ordering: .relaxed) > now {
            return limiter.eventLoop.makeSucceededFuture(withoutBackend(index, now: now, rate: rate, failure: shared.onFailure))
        }
        return limiter.decide(key: "tenant:\(tenant.name):requests", perMinute: rate, burst: burst).map { decision -> Outcome in
            if !decision.allowed {
                tenant.state.withLock { state in
                    state.refusedUntil = now &+ decision.retryAfter
                    state.refusedReset = now &+ decision.resetAfter
                }
            }
            return self.conclude(index, decision: decision, rate: rate)
        }.flatMapErrorThrowing { _ in
            self.backendDownUntil.store(NIODeadline.now().uptimeNanoseconds &+ Self.backendRetry, ordering: .relaxed)
            return self.withoutBackend(index, now: now, rate: rate, failure: shared.onFailure)
        }
    }

    /// A decision while the shared backend is failing, as `on_backend_failure` says.
    private func withoutBackend(_ index: Int, now: UInt64, rate: Int, failure: BackendFailureMode) -> Outcome {
        let tenant = tenants[index]
        backendFailures.increment()
        switch failure {
        case .allow:
            tenant.decisions[Decision.allCases.firstIndex(of: .admitted)!].increment()
            return .admitted(tenant: index, windows: [])
        case .deny:
            release(tenant: index)
            return .refused(Self.backendDown, fields: [("retry-after", "1")])
        case .local:
            let decision = tenant.state.withLock { state -> GCRA.Decision in
                var fallback = state.fallback!
                let decision = fallback.admit(now: now)
                if decision.allowed { state.fallback = fallback }
                return decision
            }
            return conclude(index, decision: decision, rate: rate)
        }
    }

    /// A shared (or fallback) rate decision for a request whose concurrency slot is taken.
    private func conclude(_ index: Int, decision: GCRA.Decision, rate: Int) -> Outcome {
        let tenant = tenants[index]
        let windows = [RateLimitHeaders.Window(name: "requests", limit: rate, remaining: decision.remaining, resetAfter: decision.resetAfter)]
        if decision.allowed || shadow {
            tenant.decisions[Decision.allCases.firstIndex(of: decision.allowed ? .admitted : .shadowRefused)!].increment()
            return .admitted(tenant: index, windows: windows)
        }
        release(tenant: index)
        tenant.decisions[Decision.allCases.firstIndex(of: .refusedRate)!].increment()
        return .refused(tenant.rateRefusal, fields: RateLimitHeaders.fields(windows, retryAfter: decision.retryAfter))
    }

    static let backendDown = Refusal(GatewayError(
        status: .serviceUnavailable, message: "The shared rate-limit store is unavailable and limits.on_backend_failure is deny. Retry shortly.",
        type: "server_error", code: "rate_limit_backend_unavailable"))

    func release(tenant index: Int) {
        tenants[index].state.withLock { $0.inFlight = max(0, $0.inFlight - 1) }
    }
}
