import NIOCore
import SluiceHTTP1

/// A body held and read whole: inspected once (`BodyInspection`), admitted against the limits
/// that read bodies (`BodyAdmission`), then on into a batch or to a replica.
extension ProxyServerHandler {
    func inspect(_ exchange: Exchange, head: HTTP1Head, body: ByteBuffer) {
        let inspection: BodyInspection
        switch BodyInspection.of(exchange, head: head, body: body, runtime: runtime) {
        case .answer(let error): return respond(error, closeAfter: false)
        case .inspected(let found): inspection = found
        }
        exchange.prompt = inspection.prompt
        exchange.promptStreams = inspection.streams
        guard let cost = inspection.cost, let admission = runtime.admission, let tenant = exchange.tenant else {
            return forward(exchange, head: head, inspection, body: body)
        }
        BodyAdmission.decide(
            exchange, body: body, cost: cost, tenant: tenant, admission: admission, now: now,
            limiter: admission.shared.map { upstreams.redisLimiter($0) }, allocator: context.channel.allocator,
            stillWanted: { self.exchange === exchange && !exchange.finished && self.state.isAdmitting }
        ) { verdict in
            switch verdict {
            case .proceed(let body): self.forward(exchange, head: head, inspection, body: body)
            case .refuse(let error, let fields, let rendered): self.respond(error, closeAfter: false, extraFields: fields, body: rendered)
            }
        }
    }

    /// Sends an inspected request on: into its pool's batch, or alone.
    private func forward(_ exchange: Exchange, head: HTTP1Head, _ inspection: BodyInspection, body: ByteBuffer) {
        if let item = inspection.batchItem, let batcher = inspection.pool.batcher {
            return join(batcher, item: item, exchange: exchange, head: head, pool: inspection.pool, key: inspection.key, body: body)
        }
        exchange.pendRead(body, chunked: head.isChunked, allocator: context.channel.allocator)
        begin(exchange, head: head, pool: inspection.pool, key: inspection.key)
    }
}
