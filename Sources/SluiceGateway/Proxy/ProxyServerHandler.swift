import NIOCore
import NIOHTTP1
import SluiceConfig
import SluiceCore

/// The data path for one client connection: reads a request, chooses a pool and a replica,
/// borrows an upstream connection from this event loop's pool and streams both ways.
///
/// Bodies are forwarded part by part as NIO delivers them (never copied, never buffered whole)
/// unless routing needs the `model` field, which is read from a capped buffer and then forwarded
/// as that same buffer. Reads are held while the other side cannot take more bytes, so a slow
/// peer makes the gateway stop reading instead of buffering.
///
/// HTTP/1.1 pipelining is handled here rather than by NIO's `HTTPServerPipelineHandler`: that
/// handler stops reading after every request until its response ends, which costs two
/// `epoll_ctl` calls per request. This handler keeps reading, and only when a client really
/// pipelines does it queue the next request's parts (and then stop reading) until the current
/// exchange ends. At most one `Exchange` is active.
final class ProxyServerHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    enum Mode {
        case idle
        /// Holding the body to read its `model` field.
        case inspecting
        /// A pool was chosen; waiting for or talking to a replica.
        case proxying
        /// The request was answered early; the rest of its body is read and dropped.
        case discarding(closeAfter: Bool)
        case closed
    }

    /// How much request body may wait for an upstream connection before reads stop.
    static let pendingLimit = 64 * 1024

    let runtime: GatewayRuntime
    let upstreams: EventLoopUpstreams
    var context: ChannelHandlerContext!
    var mode = Mode.idle
    var exchange: Exchange?
    var pendingRead = false
    /// Between `channelRead` and `channelReadComplete`: upstream writes made now are flushed once,
    /// at the end of the burst, so a request read in one go costs one upstream write syscall.
    var inReadBurst = false
    var clientAddress: String?
    /// Parts of pipelined requests that arrived while an exchange was active.
    var queued = CircularBuffer<HTTPServerRequestPart>()
    var delivering = false
    /// Set by a graceful shutdown: finish the current exchange, then close.
    var quiescing = false
    /// The connection's one timer and the instant it fires; see `arm(_:at:)`.
    var timer: NIOScheduledCallback?
    var timerDeadline = NIODeadline.distantFuture
    /// When the connection last became free of exchanges (or opened): with no request in
    /// progress, a client gets `limits.keepalive_timeout` to start and finish sending the next
    /// request head, then the connection is closed (this also ends slow-header attacks).
    var idleSince = NIODeadline.now()

    init(runtime: GatewayRuntime, upstreams: EventLoopUpstreams) {
        self.runtime = runtime
        self.upstreams = upstreams
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientAddress = context.channel.remoteAddress?.ipAddress
        runtime.tracker.add(context.channel)
        // Accepted just as a shutdown began, after the quiesce went out: close when idle.
        if runtime.isDraining { quiescing = true }
        idleSince = .now()
        armIdleTimer()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Closed (possibly lingering after an early answer): what still arrives is dropped.
        if isClosed { return }
        inReadBurst = true
        let part = unwrapInboundIn(data)
        if !queued.isEmpty {
            queued.append(part)
            return
        }
        if case .head = part, !isIdle {
            queued.append(part)
            return
        }
        handle(part)
    }

    private func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            receivedHead(head)
        case .body(let buffer):
            receivedBody(buffer)
        case .end(let trailers):
            receivedEnd(trailers)
        }
    }

    var isIdle: Bool {
        if case .idle = mode { return true }
        return false
    }

    /// Called whenever an exchange has ended and the handler may be idle: delivers queued
    /// pipelined requests, or closes the connection when shutting down.
    func exchangeEnded() {
        guard !delivering else { return }
        delivering = true
        defer { delivering = false }
        while let part = queued.first {
            if case .head = part, !isIdle { return }
            queued.removeFirst()
            handle(part)
        }
        if quiescing, isIdle {
            mode = .closed
            context.close(promise: nil)
            return
        }
        if exchange == nil {
            idleSince = .now()
            armIdleTimer()
        }
        resumeReading()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if let exchange, !exchange.responseStarted { exchange.keepAlive = false }
            if isIdle, queued.isEmpty {
                mode = .closed
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        if let exchange, exchange.wroteUpstreamSinceFlush, let upstream = exchange.upstream {
            exchange.wroteUpstreamSinceFlush = false
            upstream.handler.flush()
        }
    }

    func read(context: ChannelHandlerContext) {
        if !queued.isEmpty {
            pendingRead = true
            return
        }
        if case .proxying = mode, let exchange {
            if let upstream = exchange.upstream {
                if !upstream.isWritable {
                    pendingRead = true
                    return
                }
            } else if exchange.pendingBytes >= Self.pendingLimit {
                pendingRead = true
                return
            }
        }
        context.read()
    }

    func resumeReading() {
        guard pendingRead else { return }
        pendingRead = false
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            exchange?.upstream?.handler.resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        // Accepted as a shutdown began: nothing is in progress, so close at once.
        if quiescing, isIdle {
            mode = .closed
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        runtime.tracker.remove(context.channel)
        timer?.cancel()
        timer = nil
        if let exchange {
            self.exchange = nil
            if let upstream = exchange.upstream {
                // The client left: cancel the upstream request by closing its connection.
                exchange.upstream = nil
                exchange.connectionPool?.discard(upstream)
                exchange.pool?.metrics.clientCancelled.increment()
            } else if case .proxying = mode, let connectionPool = exchange.connectionPool {
                connectionPool.cancel(self)
            }
            finish(exchange, status: exchange.responseStarted ? exchange.status : 499)
        }
        mode = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A parse error is answered only when it belongs to the request being read now: not
        // to a pipelined one behind a request already sent, nor after a response completed.
        if let parserError = error as? HTTPParserError, !isClosed, ownsParseError {
            let answer: GatewayError
            if parserError == .headerOverflow {
                answer = .headersTooLarge(limit: runtime.limits.maxHeaderBytes)
            } else {
                answer = .malformed()
            }
            respond(answer, closeAfter: true)
            return
        }
        // While lingering, the decoder reports bytes it will not parse: expected, not fatal.
        if isClosed { return }
        context.close(promise: nil)
    }

    private var ownsParseError: Bool {
        guard queued.isEmpty else { return false }
        if let exchange { return !exchange.requestEnded && !exchange.responseStarted }
        return isIdle
    }

    var isClosed: Bool {
        if case .closed = mode { return true }
        return false
    }

    // MARK: - Request

    private func receivedHead(_ head: HTTPRequestHead) {
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
            respond(.bodyTooLarge(limit: limits.maxBodyBytes), closeAfter: true)
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

    private func receivedBody(_ buffer: ByteBuffer) {
        guard let exchange else { return }
        let limits = runtime.limits
        switch mode {
        case .proxying:
            exchange.bodyBytes += buffer.readableBytes
            exchange.lastClientActivity = .now()
            if exchange.bodyBytes > limits.maxBodyBytes {
                abandonUpstream(exchange)
                respond(.bodyTooLarge(limit: limits.maxBodyBytes), closeAfter: true)
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
        case .inspecting:
            exchange.bodyBytes += buffer.readableBytes
            exchange.lastClientActivity = .now()
            if exchange.bodyBytes > limits.maxBodyBytes {
                respond(.bodyTooLarge(limit: limits.maxBodyBytes), closeAfter: true)
            } else if exchange.bodyBytes > limits.maxInspectBytes {
                respond(.inspectTooLarge(limit: limits.maxInspectBytes), closeAfter: true)
            } else {
                var buffer = buffer
                exchange.inspectBuffer?.writeBuffer(&buffer)
            }
        case .idle, .discarding, .closed:
            break
        }
    }

    private func receivedEnd(_ trailers: HTTPHeaders?) {
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

    private func routeByModel(_ exchange: Exchange, trailers: HTTPHeaders?) {
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
    private func begin(_ exchange: Exchange, pool: PoolRuntime) {
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
