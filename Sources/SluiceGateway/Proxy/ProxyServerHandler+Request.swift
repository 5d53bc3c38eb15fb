import NIOCore
import NIOHTTP1
import SluiceConfig
import SluiceCore

/// Reading a request, choosing its pool and replica, and sending it upstream.
extension ProxyServerHandler {
    func receivedHead(_ head: HTTPRequestHead) {
        guard case .idle = mode else { return }
        let exchange = Exchange(head: head, now: .now())
        if quiescing { exchange.keepAlive = false }
        self.exchange = exchange
        let limits = runtime.limits
        if let framingError = HeaderRewriter.normalizeFraming(&exchange.head) {
            respond(framingError, closeAfter: true)
            return
        }
        if let length = head.headers.first(name: "content-length").flatMap({ Int($0) }), length > limits.maxBodyBytes {
            // A small rest is read and dropped (the connection stays); a large one is cut.
            respond(.bodyTooLarge(limit: limits.maxBodyBytes), closeAfter: mustCloseUnfinished(exchange))
            return
        }
        exchange.expectsContinue = HeaderRewriter.takeExpectContinue(&exchange.head)
        switch runtime.routeTable.route(path: exchange.path) {
        case .pool(let index):
            begin(exchange, pool: runtime.pools[index])
        case .needsModel:
            mode = .inspecting
            exchange.inspectBuffer = context.channel.allocator.buffer(capacity: 0)
            sendContinueIfExpected(exchange)
            armTimer(exchange)
        case .noRoute:
            respond(.noRoute(path: String(exchange.path), model: nil), closeAfter: false)
        }
    }

    /// `Expect: 100-continue` is answered by the gateway once it has accepted the request (the
    /// header is not forwarded: the body may have to be read before any replica is chosen).
    func sendContinueIfExpected(_ exchange: Exchange) {
        guard exchange.expectsContinue, !exchange.requestEnded else { return }
        exchange.expectsContinue = false
        let head = HTTPResponseHead(version: exchange.requestVersion, status: .continue)
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
    }

    func receivedBody(_ buffer: ByteBuffer) {
        guard let exchange else { return }
        switch mode {
        case .proxying, .inspecting: break
        case .idle, .discarding, .closed: return
        }
        let limits = runtime.limits
        exchange.bodyBytes += buffer.readableBytes
        exchange.lastClientActivity = .now()
        if exchange.bodyBytes > limits.maxBodyBytes {
            respond(.bodyTooLarge(limit: limits.maxBodyBytes), closeAfter: true)
            return
        }
        if case .inspecting = mode {
            if exchange.bodyBytes > limits.maxInspectBytes {
                respond(.inspectTooLarge(limit: limits.maxInspectBytes), closeAfter: true)
            } else {
                var buffer = buffer
                exchange.inspectBuffer?.writeBuffer(&buffer)
            }
            return
        }
        if let upstream = exchange.upstream {
            upstream.handler.write(.body(.byteBuffer(buffer)))
            exchange.wroteUpstreamSinceFlush = true
            remember(.body(.byteBuffer(buffer)), bytes: buffer.readableBytes, in: exchange)
        } else {
            exchange.pending.append(.body(.byteBuffer(buffer)))
            exchange.pendingBytes += buffer.readableBytes
        }
    }

    func receivedEnd(_ trailers: HTTPHeaders?) {
        switch mode {
        case .discarding(let closeAfter):
            exchange = nil
            if closeAfter {
                mode = .closed
                context.close(promise: nil)
            } else {
                mode = .idle
                exchangeEnded()
            }
        case .inspecting:
            guard let exchange else { return }
            exchange.requestEnded = true
            routeByModel(exchange, trailers: trailers)
        case .proxying:
            guard let exchange else { return }
            exchange.requestEnded = true
            if let upstream = exchange.upstream {
                upstream.handler.write(.end(trailers))
                remember(.end(trailers), bytes: 0, in: exchange)
                flushUpstream(upstream, exchange)
                exchange.requestSent = true
                if !exchange.responseStarted { startResponseTimer(exchange) } else { armTimer(exchange) }
            } else {
                exchange.pending.append(.end(trailers))
            }
        case .idle, .closed:
            break
        }
    }

    func routeByModel(_ exchange: Exchange, trailers: HTTPHeaders?) {
        let body = exchange.inspectBuffer ?? context.channel.allocator.buffer(capacity: 0)
        exchange.inspectBuffer = nil
        let scanned = body.withUnsafeReadableBytes { bytes in
            Result { () throws(JSONFieldScanner.Failure) -> [String: String] in
                try JSONFieldScanner.topLevelStrings(["model"], in: bytes)
            }
        }
        let model: String?
        switch scanned {
        case .success(let fields):
            model = fields["model"]
        case .failure(let failure):
            respond(.badJSON(failure.description), closeAfter: false)
            return
        }
        switch runtime.routeTable.route(path: exchange.path, model: model) {
        case .pool(let index):
            if body.readableBytes > 0 {
                exchange.pending.append(.body(.byteBuffer(body)))
                exchange.pendingBytes += body.readableBytes
            }
            exchange.pending.append(.end(trailers))
            begin(exchange, pool: runtime.pools[index])
        case .needsModel, .noRoute:
            respond(.noRoute(path: String(exchange.path), model: model ?? "(none)"), closeAfter: false)
        }
    }

    /// Commits the exchange to a pool: picks a replica and asks for a connection to it.
    func begin(_ exchange: Exchange, pool: PoolRuntime) {
        exchange.pool = pool
        guard let replica = pool.pick(RoutingFacts(), now: exchange.start) else {
            respond(.noHealthyReplica(pool: pool.name), closeAfter: false)
            return
        }
        replica.requestStarted()
        exchange.replica = replica
        exchange.requestID = HeaderRewriter.upstreamRequest(
            &exchange.head, clientAddress: clientAddress, random: &upstreams.random)
        if !exchange.head.headers.contains(name: "host") {
            // HTTP/1.0 clients may omit Host; HTTP/1.1 (what is sent upstream) requires it.
            exchange.head.headers.add(name: "host", value: replica.id.description)
        }
        mode = .proxying
        sendContinueIfExpected(exchange)
        acquireUpstream(exchange)
    }

    func acquireUpstream(_ exchange: Exchange) {
        guard let pool = exchange.pool, let replica = exchange.replica else { return }
        let connectionPool = upstreams.connectionPool(for: replica.id, in: pool)
        exchange.connectionPool = connectionPool
        if let connection = connectionPool.acquire(for: self) {
            attach(connection, to: exchange)
        } else if self.exchange === exchange, !exchange.finished, exchange.upstream == nil {
            // (A connect that fails at once is reported inside `acquire`, which may already have
            // answered or retried this exchange: hence the checks.) The wait covers a full pool;
            // the TCP connect has its own timeout.
            let wait = TimeAmount.nanoseconds(pool.configuration.timeouts.connect.nanoseconds) + .milliseconds(50)
            exchange.upstreamDeadline = .now() + wait
            armTimer(exchange)
        }
    }

    /// Sends the head and any parts that arrived while waiting.
    func attach(_ connection: UpstreamConnection, to exchange: Exchange) {
        exchange.upstreamDeadline = nil
        exchange.upstream = connection
        exchange.requestSent = false
        connection.handler.delegate = self
        let reused = connection.useCount > 1 && !exchange.retriedStaleConnection
        exchange.replay = reused ? [] : nil
        exchange.replayBytes = 0
        connection.handler.write(.head(exchange.head))
        while let part = exchange.pending.popFirst() {
            connection.handler.write(part)
            remember(part, bytes: part.byteCount, in: exchange)
        }
        exchange.pendingBytes = 0
        flushUpstream(connection, exchange)
        if exchange.requestEnded {
            exchange.requestSent = true
            startResponseTimer(exchange)
        } else {
            armTimer(exchange)
        }
        if connection.isWritable { resumeReading() }
    }

    /// Keeps a written part for a possible resend (see `Exchange.replay`), up to 64 KiB.
    func remember(_ part: HTTPClientRequestPart, bytes: Int, in exchange: Exchange) {
        guard exchange.replay != nil else { return }
        exchange.replayBytes += bytes
        if exchange.replayBytes > Self.pendingLimit {
            exchange.replay = nil
        } else {
            exchange.replay!.append(part)
        }
    }

    /// Flushes now, or at the end of the current read burst when inside one.
    func flushUpstream(_ connection: UpstreamConnection, _ exchange: Exchange) {
        if inReadBurst {
            exchange.wroteUpstreamSinceFlush = true
        } else {
            exchange.wroteUpstreamSinceFlush = false
            connection.handler.flush()
        }
    }

    /// Closes the exchange's upstream side, if any, without answering the client.
    func abandonUpstream(_ exchange: Exchange) {
        exchange.upstreamDeadline = nil
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            exchange.connectionPool?.discard(upstream)
        } else if case .proxying = mode, let connectionPool = exchange.connectionPool {
            connectionPool.cancel(self)
        }
    }

    /// Settles in-flight counts and metrics exactly once per exchange.
    func finish(_ exchange: Exchange, status: Int) {
        guard !exchange.finished else { return }
        exchange.finished = true
        exchange.upstreamDeadline = nil
        if let replica = exchange.replica {
            exchange.replica = nil
            replica.requestFinished()
        }
        let metrics = exchange.pool?.metrics ?? runtime.metrics.unrouted
        metrics.recordResponse(status: status, nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds - exchange.start.uptimeNanoseconds))
    }
}

extension HTTPClientRequestPart {
    var byteCount: Int {
        if case .body(.byteBuffer(let buffer)) = self { return buffer.readableBytes }
        return 0
    }
}
