import SluiceCore
import SluiceHTTP1

/// Where a request goes from its head alone: to a pool at once (its body forwarded as it comes),
/// or the body is held and read first (the pool is chosen by its `model`, the routing key is in
/// it, or limits or batching need it), or nowhere.
enum HeadRoute {
    case begin(PoolRuntime, key: String?)
    /// Hold the body; `pool` is set when the path already chose the pool.
    case hold(pool: Int?)
    case noRoute

    init(_ head: HTTP1Head, _ exchange: Exchange, runtime: GatewayRuntime) {
        switch runtime.routeTable.route(path: exchange.path[...]) {
        case .pool(let index):
            let pool = runtime.pools[index]
            let hasBody = head.isChunked || (head.contentLength ?? 0) > 0
            let admissionNeedsBody = exchange.tenant.map { runtime.admission?.needsBody($0) ?? false } ?? false
            // (A request that may overflow to a provider with its own model name is renamed first.)
            let mayBeRenamed = runtime.overflows[index].map { $0.renamesModel && $0.tenants.contains(exchange.tenant ?? -1) } ?? false
            let bodyNeeded = hasBody && (admissionNeedsBody || mayBeRenamed || (pool.batcher != nil && Batcher.kind(of: exchange.path) != nil))
            if !bodyNeeded, case .key(let key) = RoutingKeys.fromHead(head, sources: pool.configuration.routing.key) {
                self = .begin(pool, key: key)
            } else if !bodyNeeded, let length = head.contentLength, length > runtime.limits.maxInspectBytes {
                // Too large to hold for a key: routed without one (the policy's no-key branch).
                self = .begin(pool, key: nil)
            } else {
                self = .hold(pool: index)
            }
        case .needsModel, .versioned:  // (a path alone never names a version)
            self = .hold(pool: nil)
        case .noRoute:
            self = .noRoute
        }
    }
}
