import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import SluiceConfig
import SluiceCore

/// Per-tenant admission for one gateway process (`limits.backend: local`): who is asking (the
/// API key, looked up by keyed hash) and whether their request rate and concurrency let them
/// in. A refusal is decided from the request head alone, before any pool, replica or body is
/// touched, so it costs far less than a forwarded request.
final class Admission: Sendable {
    struct Tenant: Sendable {
        let name: String
        let limits: TenantLimits
        let state: NIOLockedValueBox<State>
        /// The refusals' JSON bodies, rendered once (a refusal must be cheap; the timing is in
        /// the header fields).
        let rateRefusal: Refusal
        let concurrencyRefusal: Refusal
        /// `sluice_admission_decisions_total{tenant, decision}`, by `Decision`.
        let decisions: [Counter]
    }

    /// What admission did with a request, as counted in metrics.
    enum Decision: String, CaseIterable {
        case admitted
        /// Refused: over `requests_per_minute`.
        case refusedRate = "refused_rate"
        /// Refused: at `max_concurrent`.
        case refusedConcurrency = "refused_concurrency"
        /// Shadow mode: would have been refused, was let in.
        case shadowRefused = "shadow_refused"
    }

    struct State: Sendable {
        var requests: GCRA?
        var inFlight = 0
    }

    enum Outcome {
        /// Let in; carry these fields on the response. `tenant` must be released when it ends.
        case admitted(tenant: Int, fields: [(String, String)])
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

    struct KeysError: Error, CustomStringConvertible {
        var description: String
    }

    /// Configured tenants, then `default` (last; unlimited when `limits.default` is absent).
    let tenants: [Tenant]
    private let keyIndex: [UInt64: Int]
    private let hasher: SipHash
    private let header: String?
    let shadow: Bool

    /// Reads each tenant's keys (environment or file) now: a file that cannot be read stops the
    /// start with its name; an unset variable leaves the tenant without keys and is returned as
    /// a warning.
    init(
        _ configuration: LimitsConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment,
        hasher: SipHash = SipHash(k0: .random(in: .min ... .max), k1: .random(in: .min ... .max)),
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        warn: (String) -> Void = { _ in }
    ) throws {
        self.hasher = hasher
        self.header = configuration.tenantHeader
        self.shadow = configuration.shadow
        var tenants: [Tenant] = []
        var index: [UInt64: Int] = [:]
        for tenant in configuration.tenants {
            var keys: [String] = []
            if let name = tenant.keysEnv {
                if let value = environment[name], !value.isEmpty {
                    keys += value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                } else {
                    warn("tenant \(tenant.name): keys_env \(name) is unset or empty, so no key names this tenant")
                }
            }
            if let path = tenant.keysFile {
                let text: String
                do {
                    text = try String(contentsOfFile: path, encoding: .utf8)
                } catch {
                    throw KeysError(description: "tenant \(tenant.name): cannot read keys_file \(path): \(error.localizedDescription)")
                }
                keys += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            }
            for key in keys where !key.isEmpty {
                let hash = hasher.hash(Array(key.utf8))
                if let other = index[hash], other != tenants.count {
                    throw KeysError(description: "tenants \(tenants[other].name) and \(tenant.name) share an API key")
                }
                index[hash] = tenants.count
            }
            tenants.append(Self.tenant(tenant.name, tenant.limits, registry: registry))
        }
        tenants.append(Self.tenant("default", configuration.defaultTenant ?? TenantLimits(), registry: registry))
        self.tenants = tenants
        self.keyIndex = index
    }

    private static func tenant(_ name: String, _ limits: TenantLimits, registry: PrometheusCollectorRegistry) -> Tenant {
        let requests = limits.requestsPerMinute.map { GCRA(perMinute: $0, burst: limits.burst) }
        let decisions = Decision.allCases.map { decision in
            registry.makeCounter(
                descriptor: .sluice("sluice_admission_decisions_total", "Admission decisions, by tenant and outcome."),
                labels: [("tenant", name), ("decision", decision.rawValue)])
        }
        let rate = limits.requestsPerMinute.map { "\($0)" } ?? "unlimited"
        return Tenant(
            name: name, limits: limits, state: NIOLockedValueBox(State(requests: requests)),
            rateRefusal: Refusal(.rateLimited(
                "Tenant \(name) is over its \(rate) requests per minute. Retry after the time in the Retry-After header (x-ratelimit-reset-requests says when the limit is full again).")),
            concurrencyRefusal: Refusal(.rateLimited(
                "Tenant \(name) has \(limits.maxConcurrent ?? 0) requests in progress, its max_concurrent. Retry when one ends.")),
            decisions: decisions)
    }

    /// The tenant a request belongs to: its key's, or `default`. The key is hashed where it
    /// lies in the head's bytes: no string is made of it.
    func tenant(for head: HTTP1Head) -> Int {
        let defaultIndex = tenants.count - 1
        let field: HTTP1Head.Field?
        if let header {
            field = head.fields.first { field in
                head.bytes.withUnsafeReadableBytes { HTTP1Bytes.equalsLowercase($0[field.name], runtimeName: header) }
            }
        } else {
            field = head.first("authorization")
        }
        guard let field else { return defaultIndex }
        let hash: UInt64? = head.bytes.withUnsafeReadableBytes { raw in
            var value = raw[field.value]
            if header == nil {
                // `Bearer <key>`, the scheme matched ignoring case.
                let scheme = Array("bearer ".utf8)
                guard value.count > scheme.count,
                      zip(value.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 })
                else { return nil }
                value = value.dropFirst(scheme.count)
            }
            while let first = value.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { value = value.dropFirst() }
            return hasher.hash(value)
        }
        return hash.flatMap { keyIndex[$0] } ?? defaultIndex
    }

    /// Decides one request of `tenant` at `now` (monotonic nanoseconds). A request refused for
    /// concurrency spends nothing from the rate, in shadow mode too (shadow counts what
    /// enforcing would refuse, no more).
    func admit(tenant index: Int, now: UInt64) -> Outcome {
        let tenant = tenants[index]
        let limits = tenant.limits
        let (outcome, decision) = tenant.state.withLockedValue { state -> (Outcome, Decision) in
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
            return (.admitted(tenant: index, fields: RateLimitHeaders.fields(windows)), refusal == nil ? .admitted : .shadowRefused)
        }
        tenant.decisions[Decision.allCases.firstIndex(of: decision)!].increment()
        return outcome
    }

    func release(tenant index: Int) {
        tenants[index].state.withLockedValue { $0.inFlight = max(0, $0.inFlight - 1) }
    }
}
