import NIOCore
import NIOHTTP1
import SluiceCore

extension ProxyServerHandler: UpstreamDelegate {
    var downstreamIsWritable: Bool { context.channel.isWritable }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let exchange, exchange.upstream != nil, !exchange.finished else { return }
        switch part {
        case .head(let response):
            let now = NIODeadline.now()
            exchange.responseStarted = true
            exchange.status = Int(response.status.code)
            exchange.upstreamKeepAlive = response.isKeepAlive
            exchange.lastActivity = now
            exchange.replica?.recordSuccess()
            exchange.pool?.metrics.recordFirstByte(nanoseconds: Int64(now.uptimeNanoseconds - exchange.start.uptimeNanoseconds))
            if let pool = exchange.pool {
                // From the head on, the replica's silence is what is timed.
                exchange.upstreamDeadline = now + .nanoseconds(pool.configuration.timeouts.idle.nanoseconds)
                armTimer(exchange)
            }
            var head = response
            if exchange.requestVersion == .http1_0, !head.headers.contains(name: "content-length"), head.status.mayHaveResponseBody {
                // HTTP/1.0 has no chunked encoding: the body ends when the connection closes.
                head.headers.remove(name: "transfer-encoding")
                exchange.keepAlive = false
            }
            HeaderRewriter.downstreamResponse(
                &head, requestVersion: exchange.requestVersion, requestID: exchange.requestID ?? "",
                keepAlive: exchange.keepAlive)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            exchange.lastActivity = .now()
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if let upstream = exchange.upstream {
                exchange.upstream = nil
                if exchange.requestSent && exchange.upstreamKeepAlive {
                    exchange.connectionPool?.release(upstream)
                } else {
                    exchange.connectionPool?.discard(upstream)
                }
            }
            finish(exchange, status: exchange.status)
            if !exchange.keepAlive || quiescing {
                mode = .closed
                let context = self.context!
                context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
                return
            }
            // State first: writing the end lets NIO's pipelining handler deliver the next
            // request synchronously, re-entering this handler.
            self.exchange = nil
            mode = exchange.requestEnded ? .idle : .discarding(closeAfter: false)
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            exchangeEnded()
        }
    }

    func upstreamReadComplete() {
        context.flush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable { resumeReading() }
    }

    func upstreamClosed(error: (any Error)?) {
        guard let exchange, let upstream = exchange.upstream, !exchange.finished else { return }
        exchange.upstream = nil
        if !exchange.responseStarted, upstream.useCount > 1, !exchange.retriedStaleConnection, let replay = exchange.replay {
            // A reused keep-alive connection closed before any answer: most likely the replica
            // closed it while idle (the race every keep-alive proxy has). Nothing was answered,
            // so send the same bytes once more on another connection; not a replica failure.
            exchange.retriedStaleConnection = true
            exchange.replay = nil
            exchange.pending = CircularBuffer(replay)
            exchange.pendingBytes = exchange.replayBytes
            acquireUpstream(exchange)
            return
        }
        if !exchange.responseStarted {
            if let replica = exchange.replica, let pool = exchange.pool {
                replica.recordFailure(at: NIODeadline.now().uptimeNanoseconds, policy: pool.configuration.ejection)
            }
            let reused = upstream.useCount > 1 ? " (on a reused keep-alive connection)" : ""
            let detail = error.map { ": \($0)" } ?? ""
            let name = exchange.replica.map { "\($0.id)" } ?? "the replica"
            respond(.replicaFailed("\(name) closed the connection before answering\(reused)\(detail)"), closeAfter: mustCloseUnfinished(exchange))
        } else {
            abort(exchange, status: 502)
        }
    }
}

extension ProxyServerHandler: UpstreamRequester {
    func upstreamReady(_ connection: UpstreamConnection) {
        guard let exchange, case .proxying = mode, exchange.upstream == nil, !exchange.finished else {
            connection.pool.release(connection)
            return
        }
        attach(connection, to: exchange)
    }

    func upstreamFailed(_ error: any Error) {
        guard let exchange, case .proxying = mode, exchange.upstream == nil, !exchange.finished,
              let pool = exchange.pool, let replica = exchange.replica
        else { return }
        let now = NIODeadline.now()
        replica.recordFailure(at: now.uptimeNanoseconds, policy: pool.configuration.ejection)
        exchange.attempts += 1
        // Nothing has been sent yet, so one retry on another replica is always safe.
        if exchange.attempts < 2, let other = pool.pick(RoutingFacts(), now: now), other !== replica {
            replica.requestFinished()
            other.requestStarted()
            exchange.replica = other
            exchange.upstreamDeadline = nil
            acquireUpstream(exchange)
            return
        }
        respond(.replicaFailed("could not connect to \(replica.id): \(error)"), closeAfter: mustCloseUnfinished(exchange))
    }
}

extension ProxyServerHandler {
    /// Answers the client with a gateway error, if no response has started, and settles the exchange.
    func respond(_ error: GatewayError, closeAfter requested: Bool) {
        let exchange = self.exchange
        if let exchange {
            if exchange.responseStarted {
                abort(exchange, status: Int(error.status.code))
                return
            }
            abandonUpstream(exchange)
        }
        let closeAfter = requested || !(exchange?.keepAlive ?? false) || quiescing
        let body = context.channel.allocator.buffer(string: error.jsonBody())
        var headers = HTTPHeaders()
        headers.reserveCapacity(4)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        if let requestID = exchange?.requestID {
            headers.add(name: "x-request-id", value: requestID)
        }
        if closeAfter {
            headers.add(name: "connection", value: "close")
        }
        let head = HTTPResponseHead(version: exchange?.requestVersion ?? .http1_1, status: error.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let status = Int(error.status.code)
        if let exchange {
            exchange.responseStarted = true
            exchange.status = status
            finish(exchange, status: status)
        } else {
            runtime.metrics.unrouted.recordResponse(status: status, nanoseconds: 0)
        }
        if closeAfter {
            mode = .closed
            self.exchange = nil
            closeLingering(after: context.writeAndFlush(wrapOutboundOut(.end(nil))))
            return
        }
        // State first, as in `upstreamReceived(.end)`: the write may deliver the next request.
        self.exchange = nil
        mode = (exchange?.requestEnded ?? true) ? .idle : .discarding(closeAfter: false)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        exchangeEnded()
    }

    /// After an early answer, whether the rest of the request is better cut (close) than read and
    /// dropped: yes when its size is unknown (chunked) or over 1 MiB still to come. Reading a
    /// small rest keeps the connection, and clients that write their whole request before
    /// reading do not fail on a closed socket.
    func mustCloseUnfinished(_ exchange: Exchange) -> Bool {
        guard !exchange.requestEnded else { return false }
        guard let length = exchange.head.headers.first(name: "content-length").flatMap({ Int($0) }) else { return true }
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
        abandonUpstream(exchange)
        finish(exchange, status: status)
        self.exchange = nil
        mode = .closed
        context.close(promise: nil)
    }

    // MARK: - Timers

    func startResponseTimer(_ exchange: Exchange) {
        guard let pool = exchange.pool else { return }
        exchange.upstreamDeadline = .now() + .nanoseconds(pool.configuration.timeouts.responseHeader.nanoseconds)
        armTimer(exchange)
    }

    /// The earliest instant at which something about this exchange must be checked: the client
    /// going quiet mid-request, or the upstream phase's deadline.
    func nextDeadline(_ exchange: Exchange) -> NIODeadline? {
        var deadline = exchange.upstreamDeadline
        if !exchange.requestEnded {
            let client = exchange.lastClientActivity + .nanoseconds(runtime.limits.clientTimeout.nanoseconds)
            deadline = deadline.map { min($0, client) } ?? client
        }
        return deadline
    }

    /// Makes sure the connection's timer fires no later than the exchange's next deadline.
    ///
    /// The connection keeps one timer across exchanges and schedules only when none is due
    /// before that deadline; a timer that fires early re-evaluates and re-arms. So a keep-alive
    /// connection schedules about once per timeout period, not once per request, and body parts
    /// never touch the timer (they only move `lastActivity` / `lastClientActivity`).
    func armTimer(_ exchange: Exchange) {
        guard let deadline = nextDeadline(exchange) else { return }
        if timer != nil, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = try? context.eventLoop.assumeIsolated().scheduleCallback(at: deadline, handler: ConnectionTimer(handler: self))
    }

    fileprivate func connectionTimerFired() {
        timer = nil
        timerDeadline = .distantFuture
        guard let exchange else {
            checkIdle()
            return
        }
        guard !exchange.finished else { return }
        evaluateTimeouts(exchange)
    }

    /// With no exchange in progress (idle, or dropping the rest of an answered request), the
    /// connection may stay `keepalive_timeout` without a complete new request head.
    func armIdleTimer() {
        guard exchange == nil, !isClosed else { return }
        let deadline = idleSince + .nanoseconds(runtime.limits.keepaliveTimeout.nanoseconds)
        if timer != nil, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = try? context.eventLoop.assumeIsolated().scheduleCallback(at: deadline, handler: ConnectionTimer(handler: self))
    }

    private func checkIdle() {
        guard exchange == nil, !isClosed else { return }
        if NIODeadline.now() - idleSince >= .nanoseconds(runtime.limits.keepaliveTimeout.nanoseconds) {
            mode = .closed
            context.close(promise: nil)
        } else {
            armIdleTimer()
        }
    }

    /// Checks every deadline of the exchange against now; acts on the first passed, else re-arms.
    func evaluateTimeouts(_ exchange: Exchange) {
        let now = NIODeadline.now()
        let limits = runtime.limits
        if !exchange.requestEnded, now - exchange.lastClientActivity >= .nanoseconds(limits.clientTimeout.nanoseconds) {
            respond(.clientTimeout(after: "\(limits.clientTimeout)"), closeAfter: true)
            return
        }
        guard let pool = exchange.pool, var deadline = exchange.upstreamDeadline else {
            armTimer(exchange)
            return
        }
        let timeouts = pool.configuration.timeouts
        if exchange.responseStarted {
            deadline = exchange.lastActivity + .nanoseconds(timeouts.idle.nanoseconds)
            exchange.upstreamDeadline = deadline
        }
        guard now >= deadline else {
            armTimer(exchange)
            return
        }
        exchange.upstreamDeadline = nil
        if exchange.upstream == nil {
            exchange.connectionPool?.cancel(self)
            respond(.replicaTimeout(after: "the connect timeout (\(timeouts.connect)); the connection pool may be full"), closeAfter: mustCloseUnfinished(exchange))
        } else if !exchange.responseStarted {
            exchange.replica?.recordFailure(at: now.uptimeNanoseconds, policy: pool.configuration.ejection)
            respond(.replicaTimeout(after: "the response_header timeout (\(timeouts.responseHeader))"), closeAfter: mustCloseUnfinished(exchange))
        } else {
            abort(exchange, status: 504)
        }
    }
}

private struct ConnectionTimer: NIOScheduledCallbackHandler {
    let handler: ProxyServerHandler

    func handleScheduledCallback(eventLoop: some EventLoop) {
        handler.connectionTimerFired()
    }
}
