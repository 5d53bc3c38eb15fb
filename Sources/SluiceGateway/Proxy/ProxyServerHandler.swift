import NIOCore
import SluiceConfig
import SluiceCore
import SluiceHTTP1

/// The data path for one client connection: parses requests, runs each through admission,
/// routing and its pool, borrows an upstream connection from this loop's pool and streams both
/// ways. Which wait a request is in, and what each event means there, is `ExchangeStateMachine`'s;
/// this handler does the I/O it asks for. Bodies are forwarded as the buffers read, unless they
/// must be read first (`BodyInspection`); reads stop while the other side cannot take more, and
/// a pipelined request stays in `unparsed` until the current exchange ends (docs/data-path.md).
final class ProxyServerHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How much request body may wait for an upstream connection before reads stop.
    static let pendingLimit = 64 * 1024

    let runtime: GatewayRuntime
    let upstreams: EventLoopUpstreams
    /// HTTP/1.1 or an HTTP/2 stream (through `HTTP2StreamBridge`), in cleartext or TLS.
    let clientProtocol: ClientProtocol
    var context: ChannelHandlerContext!
    var state: ExchangeStateMachine<UpstreamConnection>
    var exchange: Exchange?
    var parser: HTTP1Parser
    /// Bytes read but not parsed yet: the rest of a read, or a pipelined request waiting for
    /// the current exchange to end.
    var unparsed: ByteBuffer?
    private var parsing = false
    var pendingRead = false
    var flush: UpstreamFlush
    var clientAddress: String?
    var writer = ClientWriter()
    /// Set by a graceful shutdown: finish the current exchange, then close.
    var quiescing = false
    private var timer = DeadlineTimer()

    /// - Parameter clientAddress: the client's, read once from its connection (`ListenerPipeline`).
    init(runtime: GatewayRuntime, upstreams: EventLoopUpstreams, clientProtocol: ClientProtocol = .http1, clientAddress: String? = nil) {
        self.runtime = runtime
        self.upstreams = upstreams
        self.clientProtocol = clientProtocol
        self.clientAddress = clientAddress
        self.flush = UpstreamFlush(toRoundEnd: clientProtocol.isHTTP2)
        self.parser = HTTP1Parser(role: .request, maxHeadBytes: runtime.limits.maxHeaderBytes)
        self.state = ExchangeStateMachine(limits: .init(runtime.limits), now: upstreams.eventLoop.now)
    }

    /// The data path's clock: the event loop's, so tests drive it (`EmbeddedEventLoop.advanceTime`).
    var now: NIODeadline { upstreams.eventLoop.now }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Accepted just as a shutdown began, after the quiesce went out: close when idle.
        if runtime.isDraining { quiescing = true }
        armTimer()
    }

    /// The context and this handler hold each other: let go here, or both outlive the channel.
    /// Later callbacks find the exchange gone (`channelInactive`) and do not touch it.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Closed (possibly lingering after an early answer): what still arrives is dropped.
        if state.isClosed { return }
        flush.burstBegan()
        unparsed = .unparsed(unparsed, then: unwrapInboundIn(data), allocator: context.channel.allocator)
        parseAvailable()
    }

    /// Parses and handles what has been read, as far as the connection's state allows: a new
    /// request's head is parsed only when no exchange is active, nothing while admission waits.
    func parseAvailable() {
        guard !parsing else { return }
        parsing = true
        defer { parsing = false }
        while !state.isClosed, !state.isAdmitting, unparsed != nil {
            if parser.isAtMessageStart, !state.isIdle { break }
            let event: HTTP1Parser.Event?
            do {
                event = try parser.next(&unparsed!)
            } catch {
                parseFailed(error)
                break
            }
            guard let event else { break }
            switch event {
            case .head(let head): receivedHead(head)
            case .body(let buffer): receivedBody(buffer)
            case .end: receivedEnd()
            }
        }
        // Let go of the read buffer as soon as it is consumed, so NIO can reuse it.
        if let buffer = unparsed, buffer.readableBytes == 0 { unparsed = nil }
        if quiescing, state.isIdle { close() }
    }

    /// Bytes that are not HTTP/1.1: answered when no response has started, else the exchange is cut.
    func parseFailed(_ error: HTTP1ParseError) {
        if let exchange, state.responseStarted { return abort(exchange, status: 400) }
        // The request was answered already; only its rest was being read.
        if case .discarding = state.phase { return close() }
        respond(GatewayError(error, maxHeaderBytes: runtime.limits.maxHeaderBytes), closeAfter: true)
    }

    /// Whether a pipelined request is waiting for the current exchange to end.
    var holdsPipelinedRequest: Bool {
        guard let unparsed, unparsed.readableBytes > 0 else { return false }
        return parser.isAtMessageStart && !state.isIdle
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        quiescing = true
        if let exchange, !state.responseStarted { exchange.keepAlive = false }
        if state.isIdle, !holdsPipelinedRequest { close() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush.burstEnded(state.connection)
    }

    /// Reads stop while a pipelined request waits, while what waits for admission or a connection
    /// reaches `pendingLimit`, and while the replica cannot take more (the client's deadlines stop).
    func read(context: ChannelHandlerContext) {
        let waiting = state.isAdmitting ? unparsed?.readableBytes ?? 0 : state.isWaitingForUpstream ? exchange?.pendingBytes ?? 0 : 0
        let stalled = holdsPipelinedRequest || waiting >= Self.pendingLimit || state.connection.map({ !$0.isWritable }) ?? false
        if stalled { pendingRead = true; state.readsPaused(now: now) } else { context.read() }
    }

    func resumeReading() {
        guard pendingRead else { return }
        pendingRead = false
        state.readsResumed(now: now)
        context.read()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { state.connection?.handler.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        // Accepted as a shutdown began: nothing is in progress, so close at once.
        if quiescing, state.isIdle { close() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer.cancel()
        if let exchange {
            self.exchange = nil
            let left = state.abandon()
            // The client left mid-answer: the upstream request is cancelled by closing its connection.
            if case .discard = left { exchange.pool?.metrics.clientCancelled.increment() }
            exchange.undo(left, requester: self)
            finish(exchange, status: state.responseStarted ? exchange.status : 499)
        }
        state.closed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // While lingering after an early answer, errors (a reset) are expected: not news.
        if !state.isClosed { context.close(promise: nil) }
    }

    func close() {
        state.closed()
        context.close(promise: nil)
    }

    /// Makes sure the connection's timer fires by the state's next deadline.
    func armTimer() {
        guard let deadline = state.nextDeadline else { return }
        timer.ensure(firesBy: deadline, on: context.eventLoop, DeadlineCallback { [unowned self] in self.timerFired() })
    }

    private func timerFired() {
        timer.fired()
        guard let expiry = state.expired(now: now) else { return armTimer() }
        timedOut(expiry)
    }
}
