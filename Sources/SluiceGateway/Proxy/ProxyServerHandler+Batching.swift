import NIOCore
import NIOHTTP1
import SluiceCore
import SluiceHTTP1

/// Gateway batching on the request path: a batchable request (`/v1/embeddings`, V2 `infer`) to
/// a pool with `batching` is read whole, checked on its own, then joins a batch (see `Batcher`)
/// and waits for its part of the answer; what cannot join is sent alone as any other request.
extension ProxyServerHandler {
    /// Whether this request's body must be read for batching.
    func batchingNeedsBody(_ exchange: Exchange, head: HTTP1Head, pool: PoolRuntime) -> Bool {
        guard pool.batcher != nil, Batcher.kind(of: exchange.path) != nil else { return false }
        return head.isChunked || (head.contentLength ?? 0) > 0
    }

    /// Sends an inspected request on: into its pool's batch, or alone.
    func forwardInspected(_ exchange: Exchange, head: HTTP1Head, pool: PoolRuntime, key: String?, body: ByteBuffer) {
        if let batcher = pool.batcher, let kind = Batcher.kind(of: exchange.path), body.readableBytes > 0 {
            switch Self.batchItem(kind, body) {
            case .join(let item):
                join(batcher, item: item, exchange: exchange, head: head, pool: pool, key: key, body: body)
                return
            case .refuse(let error):
                // Malformed: answered on its own, before it could join anyone.
                respond(error, closeAfter: false)
                return
            case .alone:
                break
            }
        }
        queueInspected(body, chunked: head.isChunked, in: exchange)
        begin(exchange, head: head, pool: pool, key: key)
    }

    enum BatchDecision {
        case join(Batcher.Item)
        case refuse(GatewayError)
        case alone
    }

    static func batchItem(_ kind: Batcher.Kind, _ body: ByteBuffer) -> BatchDecision {
        let parsed = body.withUnsafeReadableBytes { raw in
            Result { () throws(JSONFieldScanner.Failure) -> JSONValue in try JSONValue.parse(Array(raw)) }
        }
        let value: JSONValue
        switch parsed {
        case .success(let tree): value = tree
        case .failure(let failure): return .refuse(.badJSON(failure.description))
        }
        func invalid(_ message: String) -> BatchDecision {
            .refuse(GatewayError(status: .badRequest, message: message, type: "invalid_request_error", code: "invalid_request"))
        }
        switch kind {
        case .embeddings:
            do throws(EmbeddingsBatch.Refusal) {
                return .join(.embeddings(try EmbeddingsBatch.member(value)))
            } catch {
                switch error {
                case .notAnObject: return invalid("An embeddings request is a JSON object.")
                case .noInput: return invalid("An embeddings request needs `input`.")
                case .emptyInput: return invalid("`input` must not be empty.")
                case .unsupportedInput: return .alone  // the replica says what it thinks of it
                }
            }
        case .infer:
            do throws(InferBatch.Refusal) {
                return .join(.infer(try InferBatch.member(value)))
            } catch {
                switch error {
                case .notAnObject: return invalid("An inference request is a JSON object.")
                case .noInputs: return invalid("An inference request needs a non-empty `inputs` list.")
                case .badInput(let name): return invalid("Input \(name) needs a name, a datatype, a shape and data of that shape.")
                case .inconsistentRows: return invalid("Every input of an inference request must have the same first dimension.")
                case .binaryExtension: return .alone
                }
            }
        }
    }

    private func join(_ batcher: Batcher, item: Batcher.Item, exchange: Exchange, head: HTTP1Head, pool: PoolRuntime, key: String?, body: ByteBuffer) {
        mode = .batching
        exchange.pool = pool
        exchange.routingKey = key
        var held = head
        held.bytes = context.channel.allocator.buffer(buffer: head.bytes)
        exchange.heldHead = held
        exchange.batchBody = body
        pool.scaling?.recordArrival()
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, exchange), eventLoop: loop)
        let (ticket, batchKey) = batcher.join(item, path: exchange.path, pool: pool, loop: loop) { outcome in
            loop.execute { bound.value.0.batchAnswered(bound.value.1, outcome) }
        }
        // (The outcome cannot arrive before this line: it hops to this loop.)
        exchange.batchTicket = ticket
        exchange.batchKey = batchKey
    }

    /// A member's outcome, on this loop.
    func batchAnswered(_ exchange: Exchange, _ outcome: Batcher.Outcome) {
        guard self.exchange === exchange, !exchange.finished, exchange.batchTicket != nil, case .batching = mode else { return }
        exchange.batchTicket = nil
        switch outcome {
        case .answer(let body, let usage):
            exchange.knownUsage = usage
            exchange.status = 200
            recordEndToEnd(exchange)
            answer(status: .ok, body: String(decoding: body, as: UTF8.self), closeAfter: false)
        case .timedOut:
            let after = exchange.pool.map { "the response_header timeout (\($0.configuration.timeouts.responseHeader)), as part of a batch" } ?? "its timeout"
            respond(.replicaTimeout(after: after), closeAfter: false)
        case .alone:
            guard let head = exchange.heldHead, let pool = exchange.pool, let body = exchange.batchBody else { return }
            exchange.heldHead = nil
            exchange.batchBody = nil
            mode = .inspecting
            queueInspected(body, chunked: head.isChunked, in: exchange)
            begin(exchange, head: head, pool: pool, key: exchange.routingKey)
        }
    }

    /// Takes a waiting member out of its batch (its client left, or it was answered otherwise).
    func leaveBatch(_ exchange: Exchange) {
        guard let ticket = exchange.batchTicket, let key = exchange.batchKey else { return }
        exchange.batchTicket = nil
        exchange.pool?.batcher?.leave(ticket: ticket, key: key)
    }
}
