import NIOCore
import SluiceConfig
import SluiceCore
import SluiceHTTP1

/// A body held and read whole: its pool and key (`BodyRoute`), its limits (`BodyAdmission`),
/// then on into a batch or to a replica.
extension ProxyServerHandler {
    func decide(_ exchange: Exchange, head: HTTP1Head, body: ByteBuffer) {
        let (pool, key): (PoolRuntime, String?)
        switch BodyRoute(exchange, head: head, body: body, runtime: runtime) {
        case .answer(let error): return respond(error, closeAfter: false)
        case .pool(let chosen, let found): (pool, key) = (chosen, found)
        }
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
