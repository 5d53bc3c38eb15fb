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

    func handle(_ part: HTTPServerRequestPart) {
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
}
