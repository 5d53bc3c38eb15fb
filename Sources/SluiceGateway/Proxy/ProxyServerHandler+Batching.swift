import NIOCore
import NIOHTTP1
import SluiceCore
import SluiceHTTP1

/// Gateway batching on the request path: a batchable request (`/v1/embeddings`, V2 `infer`) to
/// a pool with `batching` is read whole, checked on its own (`Batcher.membership`), then joins a
/// batch (see `Batcher`) and waits for its part of the answer, or is sent alone.
extension ProxyServerHandler {
    func join(_ batcher: Batcher, item: Batcher.Item, exchange: Exchange, head: HTTP1Head, pool: PoolRuntime, key: String?, body: ByteBuffer) {
        exchange.pool = pool
        exchange.routingKey = key
        pool.scaling?.recordArrival()
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, exchange), eventLoop: loop)
        let (ticket, batchKey) = batcher.join(item, path: exchange.path, pool: pool, loop: loop) { outcome in
            loop.execute { bound.value.0.batchAnswered(bound.value.1, outcome) }
        }
        // (The outcome cannot arrive before this line: it hops to this loop.)
        state.joinedBatch(head.detached(context.channel.allocator), body: body, ticket: ticket, key: batchKey)
    }

    /// A member's outcome, on this loop.
    func batchAnswered(_ exchange: Exchange, _ outcome: Batcher.Outcome) {
        guard self.exchange === exchange, let (head, body) = state.batchAnswered() else { return }
        switch outcome {
        case .answer(let body, let usage):
            exchange.knownUsage = usage
            exchange.status = 200
            exchange.recordEndToEnd(now: now)
            answer(status: .ok, body: String(decoding: body, as: UTF8.self), closeAfter: false)
        case .timedOut:
            let after = exchange.pool.map { "the response_header timeout (\($0.configuration.timeouts.responseHeader)), as part of a batch" } ?? "its timeout"
            respond(.replicaTimeout(after: after), closeAfter: false)
        case .alone:
            guard let pool = exchange.pool else { return }
            exchange.pendRead(body, chunked: head.isChunked, allocator: context.channel.allocator)
            begin(exchange, head: head, pool: pool, key: exchange.routingKey)
        }
    }
}
