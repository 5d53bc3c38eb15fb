import NIOCore
import SluiceConfig
import SluiceCore
import SluiceHTTP1

/// The data path for one client connection: parses requests (`HTTP1Parser`), chooses a pool and
/// a replica, borrows an upstream connection from this event loop's pool and streams both ways.
///
/// It is the connection's only handler: bytes in, bytes out. Heads are rewritten byte to byte
/// (`HeaderRewriter`), and bodies are forwarded as slices of the buffers read from the socket
/// (never copied, never buffered whole) unless routing needs the `model` field, which is read
/// from a capped buffer and then forwarded as that same buffer. Reads are held while the other
/// side cannot take more bytes, so a slow peer makes the gateway stop reading instead of
/// buffering.
///
/// HTTP/1.1 pipelining costs nothing here: a request that arrives while another is in progress
/// simply stays unparsed in `unparsed` (and reads stop) until the current exchange ends. At
/// most one `Exchange` is active.
final class ProxyServerHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Mode {
        case idle
        /// Holding the body to read its `model` field.
        case inspecting
        /// Waiting for the shared limits backend to decide; the body waits unparsed.
        case admitting
        /// Waiting in a batch for its part of the answer (the request was read whole).
        case batching
        /// A pool was chosen; waiting for or talking to a replica.
        case proxying
        /// The request was answered early; the rest of its body is read and dropped.
        case discarding(closeAfter: Bool)
        case closed
    }

    /// How much request body may wait for an upstream connection before reads stop.
    static let pendingLimit = 64 * 1024
    /// Bodies up to this size are copied behind their head, so a small message is one write.
    static let coalesceLimit = 8 * 1024

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
    var parser: HTTP1Parser
    /// Bytes read but not parsed yet: the rest of a read, or a pipelined request waiting for
    /// the current exchange to end.
    var unparsed: ByteBuffer?
    var parsing = false
    /// A response head held until its first body bytes (or the end of the read burst), so a
    /// small response is one write.
    var stagedHead: ByteBuffer?
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
        self.parser = HTTP1Parser(role: .request, maxHeadBytes: runtime.limits.maxHeaderBytes)
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
        unparsed = .unparsed(unparsed, then: unwrapInboundIn(data), allocator: context.channel.allocator)
        parseAvailable()
    }

    /// Parses and handles what has been read, as far as the connection's state allows: a new
    /// request's head is parsed only when no exchange is active.
    func parseAvailable() {
        guard !parsing else { return }
        parsing = true
        defer { parsing = false }
        while !isClosed, unparsed != nil {
            if parser.isAtMessageStart, !isIdle { break }
            if case .admitting = mode { break }
            let event: HTTP1Parser.Event?
            do {
                event = try parser.next(&unparsed!)
            } catch {
                parseFailed(error)
                break
            }
            guard let event else { break }
            switch event {
            case .head(let head):
                receivedHead(head)
            case .body(let buffer):
                receivedBody(buffer)
            case .end:
                receivedEnd()
            }
        }
        // Let go of the read buffer as soon as it is consumed, so NIO can reuse it.
        if let buffer = unparsed, buffer.readableBytes == 0 { unparsed = nil }
        if quiescing, isIdle {
            mode = .closed
            context.close(promise: nil)
        }
    }

    /// Bytes that are not HTTP/1.1: answered when no response has started, else the exchange is cut.
    func parseFailed(_ error: HTTP1ParseError) {
        if let exchange, exchange.responseStarted {
            abort(exchange, status: 400)
            return
        }
        let answer: GatewayError
        switch error {
        case .headTooLarge: answer = .headersTooLarge(limit: runtime.limits.maxHeaderBytes)
        case .unsupportedTransferEncoding(let value): answer = .unsupportedTransferEncoding(value)
        case .malformed(let reason): answer = .malformed(reason)
        }
        if case .discarding = mode {
            // The request was answered already; only its rest was being read.
            mode = .closed
            context.close(promise: nil)
            return
        }
        respond(answer, closeAfter: true)
    }

    /// Whether a pipelined request is waiting for the current exchange to end.
    var holdsPipelinedRequest: Bool {
        guard let unparsed, unparsed.readableBytes > 0 else { return false }
        return parser.isAtMessageStart && !isIdle
    }

    var isIdle: Bool {
        if case .idle = mode { return true }
        return false
    }

    /// Called whenever an exchange has ended and the handler may be idle: parses a pipelined
    /// request, or closes the connection when shutting down.
    func exchangeEnded() {
        parseAvailable()
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
            if isIdle, !holdsPipelinedRequest {
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
        if holdsPipelinedRequest {
            pendingRead = true
            return
        }
        if case .admitting = mode, let unparsed, unparsed.readableBytes >= Self.pendingLimit {
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
            } else if case .proxying = mode {
                abandonUpstream(exchange)
            } else if case .batching = mode {
                leaveBatch(exchange)
            }
            finish(exchange, status: exchange.responseStarted ? exchange.status : 499)
        }
        mode = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // While lingering after an early answer, errors (a reset) are expected: not news.
        if isClosed { return }
        context.close(promise: nil)
    }

    var isClosed: Bool {
        if case .closed = mode { return true }
        return false
    }
}
