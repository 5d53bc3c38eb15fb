import Foundation
import NIOCore
import SluiceConfig

/// A pool's hosted provider (`provider:`), as requests to it are written: its host and the
/// `Authorization` carrying its key, read from the environment at start.
struct ProviderCredentials: Sendable {
    let host: String
    let authorization: String
    let pricePerMillionTokens: Double?
    /// The provider's model name, written into requests sent to it (`provider.model`).
    let model: String?

    enum LoadError: Error, CustomStringConvertible {
        case missingKey(pool: String, variable: String)

        var description: String {
            switch self {
            case .missingKey(let pool, let variable): "pool \(pool): provider.api_key_env names \(variable), which is unset or empty"
            }
        }
    }

    init(_ pool: PoolConfiguration, provider: ProviderConfiguration, environment: [String: String]) throws(LoadError) {
        guard let key = environment[provider.apiKeyEnv], !key.isEmpty else {
            throw .missingKey(pool: pool.name, variable: provider.apiKeyEnv)
        }
        host = provider.host ?? pool.upstream.tls?.serverName ?? pool.replicas.first?.host ?? ""
        authorization = "Bearer \(key)"
        pricePerMillionTokens = provider.pricePerMillionTokens
        model = provider.model
    }

    /// US dollars for `tokens`, when the provider has a price.
    func cost(tokens: Int) -> Double? {
        pricePerMillionTokens.map { Double(tokens) * $0 / 1_000_000 }
    }
}

/// Where a pool's allowed tenants' requests go when it is saturated (`overflow:`), resolved to
/// indices: the provider's pool and the tenants (`Admission.tenants`) allowed.
struct OverflowRoute: Sendable {
    let pool: Int
    let whenWaiting: Int
    let tenants: Set<Int>
    /// The provider renames the model: a request that may overflow has its body read first.
    let renamesModel: Bool
    /// By tenant index.
    let counters: [Int: OverflowCounters]

    /// Nil when the gateway identifies no tenants (no `limits`): none could be allowed.
    init?(_ overflow: OverflowConfiguration, pools: [PoolConfiguration], admission: Admission?, metrics: GatewayMetrics) {
        guard let admission, let target = pools.firstIndex(where: { $0.name == overflow.pool }) else { return nil }
        pool = target
        whenWaiting = overflow.whenWaiting
        renamesModel = pools[target].provider?.model != nil
        let indices = overflow.tenants.compactMap { name in admission.tenants.firstIndex { $0.name == name } }
        tenants = Set(indices)
        counters = Dictionary(uniqueKeysWithValues: indices.map { index in
            (index, OverflowCounters(pool: overflow.pool, tenant: admission.tenants[index].name, metrics: metrics))
        })
    }

    /// Whether a request of `tenant` goes to the provider now: it is allowed, and `pool` has no
    /// replica in rotation, or it would wait (every replica at `max_concurrent_per_replica`)
    /// behind `when_waiting` or more.
    func applies(to tenant: Int?, in pool: PoolRuntime, now: UInt64) -> Bool {
        guard let tenant, tenants.contains(tenant) else { return false }
        let replicas = pool.snapshot.replicas
        guard replicas.contains(where: { $0.isAvailable(at: now) }) else { return true }
        guard let gate = pool.gate, gate.waiting >= whenWaiting else { return false }
        return !replicas.contains { $0.isAvailable(at: now) && $0.inFlight < gate.limit }
    }
}

extension OverflowRoute {
    /// Marks `exchange` as overflowed (counted; its answer says so, with its prompt's estimated
    /// price, since the answer's tokens are known only at its end) and returns the provider's
    /// pool, and the held `body`, if any, with the provider's name for the model (`provider.model`).
    func divert(_ exchange: Exchange, body: ByteBuffer?, runtime: GatewayRuntime, allocator: ByteBufferAllocator) -> (PoolRuntime, ByteBuffer?) {
        let counters = exchange.tenant.flatMap { self.counters[$0] }
        exchange.overflow = counters
        counters?.requests.increment()
        let provider = runtime.pools[pool]
        exchange.limitFields.append(("x-sluice-overflow", provider.name))
        let prompt = max(1, (exchange.contentLength ?? exchange.bodyBytes) / RoutingKeys.bytesPerToken)
        if let cost = provider.provider?.cost(tokens: prompt) {
            exchange.limitFields.append(("x-sluice-prompt-cost-estimate-usd", String(format: "%.6f", cost)))
        }
        // (Its usage is read from the answer for the tokens and cost counted when it ends.)
        if exchange.usageMeter == nil { exchange.usageMeter = UsageMeter(strip: false) }
        guard let body, let model = provider.provider?.model else { return (provider, body) }
        return (provider, exchange.renamingModel(body, to: model, allocator: allocator))
    }
}

/// What one tenant's overflow to one provider pool came to: requests, tokens, cost.
final class OverflowCounters: Sendable {
    let requests: CounterSeries
    let tokens: CounterSeries
    /// Nano-dollars.
    let cost: CounterSeries

    init(pool: String, tenant: String, metrics: GatewayMetrics) {
        let labels = [("pool", pool), ("tenant", tenant)]
        requests = metrics.overflowRequests.makeSeries(labels: labels)
        tokens = metrics.overflowTokens.makeSeries(labels: labels)
        cost = metrics.overflowCost.makeSeries(labels: labels)
    }
}
