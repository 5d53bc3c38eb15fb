import NIOCore
import NIOHTTP1
import SluiceHTTP1

/// How an exchange ends: the gateway's own answers (errors, a batch member's share), a cut when
/// an answer had begun, timeouts, and settling what the exchange held.
extension ProxyServerHandler {
    /// Answers the client with a gateway error, if no response has started, and settles the exchange.
    /// - Parameter body: `error`'s JSON body when already rendered.
    func respond(_ error: GatewayError, closeAfter requested: Bool, extraFields: [(String, String)] = [], body rendered: String? = nil) {
        answer(status: error.status, body: rendered ?? error.jsonBody(), closeAfter: requested, extraFields: extraFields)
    }

    /// Answers the client with a JSON body the gateway made, if no response has started (else
    /// the exchange is cut), and settles the exchange.
    /// - Parameter grpcMessage: a gRPC call's answer (a framed message), sent with status OK.
    func answer(status httpStatus: HTTPResponseStatus, body: String, closeAfter requested: Bool, extraFields: [(String, String)] = [], grpcMessage: [UInt8]? = nil) {
        let exchange = self.exchange
        let status = Int(httpStatus.code)
        if let exchange {
            if state.responseStarted { return abort(exchange, status: status) }
            exchange.undo(state.abandon(), requester: self)
            exchange.status = status
            finish(exchange, status: status)
        } else {
            runtime.metrics.unrouted.recordResponse(status: status, nanoseconds: 0)
        }
        let closeAfter = requested || !(exchange?.keepAlive ?? false) || quiescing
        let out = GatewayAnswer.render(
            for: exchange, status: httpStatus, body: body, grpcMessage: grpcMessage,
            fields: extraFields.isEmpty ? (exchange?.limitFields ?? []) : extraFields, close: closeAfter, allocator: context.channel.allocator)
        self.exchange = nil
        if case .close = state.exchangeEnded(keepAlive: !closeAfter, now: now) {
            return ClientWriter.closeLingering(after: context.writeAndFlush(wrapOutboundOut(out)), context)
        }
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        exchangeEnded()
    }

    /// An exchange ended, the connection kept: a pipelined request is parsed, the idle time timed.
    func exchangeEnded() {
        parseAvailable()
        armTimer()
        resumeReading()
    }

    func mustCloseUnfinished(_ exchange: Exchange) -> Bool {
        exchange.mustCloseUnfinished(requestEnded: state.requestEnded)
    }

    /// Ends an exchange whose response has started: a stream of events with an `error` event and
    /// its end where its framing allows (`ClientWriter.endEvents`), else by closing, HTTP/1.1's
    /// only other way to say it.
    func abort(_ exchange: Exchange, status: Int, betweenChunks: Bool? = nil) {
        let between = betweenChunks ?? state.connection?.handler.parser.isBetweenChunks ?? false
        exchange.undo(state.abandon(), requester: self)
        finish(exchange, status: status)
        self.exchange = nil
        if exchange.eventStream, writer.endEvents(with: .streamCut(status: status), exchange.clientFraming, betweenChunks: between, context) {
            return state.closed()
        }
        writer.dropStaged()
        close()
    }

    /// A deadline passed: the connection closes, or the exchange is answered (cut, when its
    /// answer had begun).
    func timedOut(_ expiry: ExchangeStateMachine<UpstreamConnection>.Expiry) {
        let exchange = self.exchange
        var extra: [(String, String)] = []
        switch expiry {
        case .keepalive: return close()
        case .idle: return exchange.map { abort($0, status: 504) } ?? close()
        case .queue(let ticket):
            // If a slot is on its way after all, it is taken.
            guard exchange?.pool?.queueWaitExpired(ticket) ?? false else { return }
            _ = state.abandon()
            extra = (exchange?.limitFields ?? []) + [("retry-after", "1")]
        case .responseHeader: exchange?.replicaFailed(now: now)
        case .client, .slowBody, .connect: break
        }
        respond(
            .expired(expiry, pool: exchange?.pool?.configuration, limits: runtime.limits),
            closeAfter: expiry == .client || expiry == .slowBody || exchange.map(mustCloseUnfinished) ?? true, extraFields: extra)
    }

    /// Settles in-flight counts, tokens, the tenant and metrics exactly once per exchange.
    func finish(_ exchange: Exchange, status: Int) {
        exchange.settle(status: status, runtime: runtime, upstreams: upstreams, now: now)
    }
}
