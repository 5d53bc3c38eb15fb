import NIOCore
import SluiceHTTP1

/// A body held and read whole: inspected once (`BodyInspection`), admitted against the limits
/// that read bodies (`BodyAdmission`), then on into a batch (`Batcher`) or to a replica.
extension ProxyServerHandler {
    func inspect(_ exchange: Exchange, head: HTTP1Head, body: ByteBuffer) {
        exchange.trace?.event("body read", at: now)
        let inspection: BodyInspection
        switch BodyInspection.of(exchange, head: head, body: body, runtime: runtime, random: &upstreams.random) {
        case .answer(let error): return respond(error, closeAfter: false)
        case .inspected(let found): inspection = found
        }
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

    /// Sends an inspected request on: into its pool's batch (`Batcher`; the member then waits for
    /// its part of the batch's answer), or alone.
    private func forward(_ exchange: Exchange, head: HTTP1Head, _ inspection: BodyInspection, body: ByteBuffer) {
        let body = inspection.modelRename.map { exchange.renamingModel(body, to: $0, allocator: context.channel.allocator) } ?? body
        // An admitted request's copy (the client's request does not wait on it).
        inspection.shadow?.mirror(path: exchange.path, body: body, client: runtime.httpClient, on: context.eventLoop)
        let pool = inspection.pool
        guard let item = inspection.batchItem, let batcher = pool.batcher else {
            return begin(exchange, head: head, pool: pool, key: inspection.key, held: body)
        }
        exchange.pool = pool
        exchange.routingKey = inspection.key
        pool.scaling?.recordArrival()
        let answered = exchange.callback(to: self, on: context.eventLoop) { $0.batchAnswered($1, $2) }
        let (ticket, key) = batcher.join(item, path: exchange.path, pool: pool, loop: context.eventLoop, deliver: answered)
        exchange.trace?.event("joined a batch", at: now)
        // (The outcome cannot arrive before this line: it hops to this loop.)
        state.joinedBatch(head.detached(context.channel.allocator), body: body, ticket: ticket, key: key)
    }

    /// A batch member's outcome, on this loop.
    func batchAnswered(_ exchange: Exchange, _ outcome: Batcher.Outcome) {
        guard self.exchange === exchange, let (head, body) = state.batchAnswered() else { return }
        exchange.trace?.event("batch answered", at: now)
        switch outcome {
        case .answer(let body, let usage):
            exchange.knownUsage = usage
            exchange.status = 200
            exchange.recordEndToEnd(now: now)
            let grpc = exchange.isGRPC
            answer(status: .ok, body: grpc ? "" : String(decoding: body, as: UTF8.self), closeAfter: false, grpcMessage: grpc ? body : nil)
        case .timedOut:
            respond(.batchTimedOut(exchange.pool?.configuration), closeAfter: false)
        case .alone:
            guard let pool = exchange.pool else { return }
            begin(exchange, head: head, pool: pool, key: exchange.routingKey, held: body)
        }
    }
}
