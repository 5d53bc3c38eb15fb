import NIOCore
import SluiceConfig
import SluiceCore
import SluiceHTTP1

/// A body held to be read before the request goes on (to route by its `model` or a routing key
/// in it, for token limits or batching): held whole, read once (`facts`), then sent as it came.
extension ProxyServerHandler {
    /// Holds the body (data, framing removed) to read `model` or a routing key from it.
    func inspect(_ exchange: Exchange, head: HTTP1Head) {
        mode = .inspecting
        parser.passChunkFraming = false
        var held = head
        held.bytes = context.channel.allocator.buffer(buffer: head.bytes)
        exchange.heldHead = held
        // Sized for the whole body when its length is known: one copy, no regrowth. (Keeping
        // the first read itself would pin the channel's receive buffer for as long as the
        // request waits, in a queue or a batch.)
        exchange.inspectBuffer = context.channel.allocator.buffer(capacity: min(head.contentLength ?? 0, runtime.limits.maxInspectBytes))
        sendContinueIfExpected(exchange)
        armTimer(exchange)
    }

    func routeByModel(_ exchange: Exchange) {
        let body = exchange.inspectBuffer ?? context.channel.allocator.buffer(capacity: 0)
        exchange.inspectBuffer = nil
        if let index = exchange.keyPool {
            // Routed by path; the body was read for the routing key, limits or batching.
            guard let head = exchange.heldHead else { return }
            exchange.heldHead = nil
            forwardRead(exchange, head: head, pool: runtime.pools[index], body: body)
            return
        }
        let model: String?
        switch facts(of: body, for: exchange) {
        case .success(let facts):
            model = facts.model
        case .failure(let failure):
            respond(.badJSON(failure.description), closeAfter: false)
            return
        }
        guard let head = exchange.heldHead else { return }
        exchange.heldHead = nil
        switch runtime.routeTable.route(path: exchange.path[...], model: model) {
        case .pool(let index):
            forwardRead(exchange, head: head, pool: runtime.pools[index], body: body)
        case .needsModel, .noRoute:
            respond(.noRoute(path: exchange.path, model: model ?? "(none)"), closeAfter: false)
        }
    }

    /// The held body's facts (model, user, prompt, token estimate), read in one validating pass
    /// the first time routing or limits ask, then kept.
    func facts(of body: ByteBuffer, for exchange: Exchange) -> Result<CompletionRequestFacts, JSONFieldScanner.Failure> {
        if let known = exchange.bodyFacts { return known }
        let scanned = body.withUnsafeReadableBytes { bytes in
            Result { () throws(JSONFieldScanner.Failure) -> CompletionRequestFacts in try JSONFieldScanner.completionFacts(in: bytes) }
        }
        exchange.bodyFacts = scanned
        return scanned
    }

    /// A body read whole, its pool known: the routing key (and, for cache-aware, the prompt)
    /// from it, then the body's admission checks, then on.
    private func forwardRead(_ exchange: Exchange, head: HTTP1Head, pool: PoolRuntime, body: ByteBuffer) {
        let routing = pool.configuration.routing
        let (key, prompt, streams) = RoutingKeys.fromBody(
            body, facts: { try? self.facts(of: body, for: exchange).get() }, head: head, sources: routing.key,
            prefixTokens: routing.prefixTokens, followPrompt: routing.policy == .cacheAware)
        exchange.prompt = prompt
        exchange.promptStreams = streams
        admitBody(exchange, body: body) { body in
            self.forwardInspected(exchange, head: head, pool: pool, key: key, body: body)
        }
    }

    /// Queues a body read whole (to route on it) to be sent upstream as it came.
    func queueInspected(_ body: ByteBuffer, chunked: Bool, in exchange: Exchange) {
        if chunked {
            // The data was collected without its framing: sent on as one chunk.
            var framed = context.channel.allocator.buffer(capacity: body.readableBytes + 32)
            if body.readableBytes > 0 {
                HTTP1Writer.writeChunkHeader(length: body.readableBytes, into: &framed)
                framed.writeImmutableBuffer(body)
                framed.writeStaticString(HTTP1Writer.chunkEnd)
            }
            framed.writeStaticString(HTTP1Writer.lastChunk)
            exchange.pending.append(framed)
            exchange.pendingBytes += framed.readableBytes
        } else if body.readableBytes > 0 {
            exchange.pending.append(body)
            exchange.pendingBytes += body.readableBytes
        }
    }
}
