import NIOCore
import SluiceConfig
import SluiceCore
import SluiceHTTP1

/// A body held and read whole: its facts read once (`Exchange.facts`), the pool chosen by its
/// `model` when the path did not choose it, the routing key and prompt taken from it, the
/// body's limits decided, then on into a batch or to a replica.
extension ProxyServerHandler {
    func decide(_ exchange: Exchange, head: HTTP1Head, body: ByteBuffer) {
        let pool: PoolRuntime
        if let index = exchange.keyPool {
            pool = runtime.pools[index]
        } else {
            let model: String?
            switch exchange.facts(of: body) {
            case .success(let facts): model = facts.model
            case .failure(let failure): return respond(.badJSON(failure.description), closeAfter: false)
            }
            guard case .pool(let index) = runtime.routeTable.route(path: exchange.path[...], model: model) else {
                return respond(.noRoute(path: exchange.path, model: model ?? "(none)"), closeAfter: false)
            }
            pool = runtime.pools[index]
        }
        let routing = pool.configuration.routing
        let (key, prompt, streams) = RoutingKeys.fromBody(
            body, facts: { try? exchange.facts(of: body).get() }, head: head, sources: routing.key,
            prefixTokens: routing.prefixTokens, followPrompt: routing.policy == .cacheAware)
        exchange.prompt = prompt
        exchange.promptStreams = streams
        guard let admission = runtime.admission, let tenant = exchange.tenant, admission.needsBody(tenant), body.readableBytes > 0 else {
            return forwardRead(exchange, head: head, pool: pool, key: key, body: body)
        }
        BodyAdmission.decide(
            exchange, body: body, tenant: tenant, admission: admission, defaultMaxTokens: runtime.limits.defaultMaxTokens, now: now,
            limiter: admission.shared.map { upstreams.redisLimiter($0) }, allocator: context.channel.allocator,
            stillWanted: { self.exchange === exchange && !exchange.finished && self.state.isAdmitting }
        ) { verdict in
            switch verdict {
            case .proceed(let body): self.forwardRead(exchange, head: head, pool: pool, key: key, body: body)
            case .refuse(let error, let fields, let rendered): self.respond(error, closeAfter: false, extraFields: fields, body: rendered)
            }
        }
    }

    /// Sends a request read whole on: into its pool's batch, or alone.
    private func forwardRead(_ exchange: Exchange, head: HTTP1Head, pool: PoolRuntime, key: String?, body: ByteBuffer) {
        if let batcher = pool.batcher, let kind = Batcher.kind(of: exchange.path), body.readableBytes > 0 {
            switch Batcher.membership(kind, body) {
            case .join(let item):
                return join(batcher, item: item, exchange: exchange, head: head, pool: pool, key: key, body: body)
            case .refuse(let error):
                // Malformed: answered on its own, before it could join anyone.
                return respond(error, closeAfter: false)
            case .alone:
                break
            }
        }
        exchange.pendRead(body, chunked: head.isChunked, allocator: context.channel.allocator)
        begin(exchange, head: head, pool: pool, key: key)
    }
}
