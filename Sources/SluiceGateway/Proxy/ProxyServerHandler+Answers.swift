import NIOCore
import NIOHTTP1

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
    func answer(status httpStatus: HTTPResponseStatus, body: String, closeAfter requested: Bool, extraFields: [(String, String)] = []) {
        let exchange = self.exchange
        let status = Int(httpStatus.code)
        if let exchange {
            if state.responseStarted { return abort(exchange, status: status) }
            undo(state.abandon(), exchange)
        }
        let closeAfter = requested || !(exchange?.keepAlive ?? false) || quiescing
        let out = GatewayAnswer.render(
            status: httpStatus, body: body, minorVersion: exchange?.requestMinorVersion ?? 1, requestID: exchange?.requestID,
            fields: extraFields.isEmpty ? (exchange?.limitFields ?? []) : extraFields, close: closeAfter,
            allocator: context.channel.allocator)
        if let exchange {
            exchange.status = status
            finish(exchange, status: status)
        } else {
            runtime.metrics.unrouted.recordResponse(status: status, nanoseconds: 0)
        }
        self.exchange = nil
        if case .close = state.exchangeEnded(keepAlive: !closeAfter, now: now) {
            return closeLingering(after: context.writeAndFlush(wrapOutboundOut(out)))
        }
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        exchangeEnded()
    }

    /// An exchange ended with the connection kept: parses a pipelined request, or closes when
    /// shutting down; times the idle connection.
    func exchangeEnded() {
        parseAvailable()
        armTimer()
        resumeReading()
    }

    /// After an early answer, whether the rest of the request is better cut (close) than read and
    /// dropped: yes when its size is unknown (chunked) or over 1 MiB still to come. Reading a
    /// small rest keeps the connection, and clients that write their whole request before
    /// reading do not fail on a closed socket.
    func mustCloseUnfinished(_ exchange: Exchange) -> Bool {
        guard !state.requestEnded else { return false }
        guard let length = exchange.contentLength else { return true }
        return length - exchange.bodyBytes > 1 << 20
    }

    /// Closes after an answer that may have come before the client finished sending (413, 431,
    /// 408): first only our sending side, then reads and drops what the client still sends for
    /// up to 2 s. Closing at once with unread bytes makes the kernel send a reset, and many
    /// clients then report "connection reset" instead of the answer (nginx's lingering close).
    func closeLingering(after written: EventLoopFuture<Void>) {
        let context = self.context!
        written.assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) {
                context.close(promise: nil)
            }
        }
    }

    /// Ends an exchange whose response has started: HTTP/1.1 can only signal that by closing.
    func abort(_ exchange: Exchange, status: Int) {
        undo(state.abandon(), exchange)
        finish(exchange, status: status)
        self.exchange = nil
        stagedHead = nil
        close()
    }

    /// Undoes the upstream side of an exchange cut short.
    func undo(_ abandon: ExchangeStateMachine<UpstreamConnection>.Abandon, _ exchange: Exchange) {
        switch abandon {
        case .none: break
        case .leaveQueue(let ticket): exchange.pool?.gate?.leave(ticket)
        case .leaveBatch(let ticket, let key): exchange.pool?.batcher?.leave(ticket: ticket, key: key)
        case .cancelConnect: exchange.connectionPool?.cancel(self)
        case .discard(let connection): connection.pool.discard(connection)
        }
    }

    /// A deadline passed.
    func timedOut(_ expiry: ExchangeStateMachine<UpstreamConnection>.Expiry) {
        guard let exchange, let pool = exchange.pool else {
            if expiry == .keepalive { close() } else if expiry == .client { respond(.clientTimeout(after: "\(runtime.limits.clientTimeout)"), closeAfter: true) }
            return
        }
        let timeouts = pool.configuration.timeouts
        switch expiry {
        case .keepalive:
            close()
        case .client:
            respond(.clientTimeout(after: "\(runtime.limits.clientTimeout)"), closeAfter: true)
        case .queue(let ticket):
            guard let gate = pool.gate else { return }
            // A replica that came back (an ejection that ran out) frees slots no one announced:
            // look once more before giving up. If the slot is already on its way, it is taken.
            gate.dispatch(pool.snapshot)
            guard gate.leave(ticket, timedOut: true) else { return }
            _ = state.abandon()
            respond(.queueTimeout(pool: pool.name, after: "\(pool.configuration.queue.timeout)"), closeAfter: mustCloseUnfinished(exchange),
                    extraFields: exchange.limitFields + [("retry-after", "1")])
        case .connect:
            respond(.replicaTimeout(after: "the connect timeout (\(timeouts.connect)); the connection pool may be full"), closeAfter: mustCloseUnfinished(exchange))
        case .responseHeader:
            exchange.replica?.recordFailure(at: now.uptimeNanoseconds, policy: pool.configuration.ejection)
            respond(.replicaTimeout(after: "the response_header timeout (\(timeouts.responseHeader))"), closeAfter: mustCloseUnfinished(exchange))
        case .idle:
            abort(exchange, status: 504)
        }
    }

    /// Settles in-flight counts, tokens, the tenant and metrics exactly once per exchange.
    func finish(_ exchange: Exchange, status: Int) {
        guard !exchange.finished else { return }
        exchange.finished = true
        exchange.countPrefill(on: nil)
        if let replica = exchange.replica {
            exchange.replica = nil
            if let pool = exchange.pool { pool.release(replica) } else { replica.requestFinished() }
        }
        if let admission = runtime.admission {
            BodyAdmission.settle(exchange, status: status, admission: admission, now: now, limiter: admission.shared.map { upstreams.redisLimiter($0) })
            if let tenant = exchange.tenant { admission.release(tenant: tenant) }
            exchange.tenant = nil
        }
        let metrics = exchange.pool?.metrics ?? runtime.metrics.unrouted
        metrics.recordResponse(status: status, nanoseconds: Int64(now.uptimeNanoseconds - exchange.start.uptimeNanoseconds))
    }
}
