import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// One HTTP/2 client connection for integration tests: h2c with prior knowledge, or TLS with
/// ALPN `h2`; each request its own stream, so many run at once on one connection, and what
/// the server sends (header block, data, trailers, a reset) is kept as it came.
public final class TestHTTP2Connection: Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var headers: HPACKHeaders
        public var body: ByteBuffer
        public var trailers: HPACKHeaders?
        /// Header blocks with a 1xx status that came before the final one.
        public var interim: [HPACKHeaders] = []

        public var bodyString: String { String(buffer: body) }
        public func header(_ name: String) -> String? { headers.first(name: name) }
    }

    public struct StreamReset: Error, Sendable {
        public var code: HTTP2ErrorCode
    }

    public let channel: any Channel
    private let multiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>

    private init(channel: any Channel, multiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>) {
        self.channel = channel
        self.multiplexer = multiplexer
    }

    /// Connects with prior knowledge (`tls` nil) or over TLS, which must negotiate `h2`.
    public static func connect(
        to address: SocketAddress, group: any EventLoopGroup, tls: NIOSSLContext? = nil, serverHostname: String? = nil
    ) async throws -> TestHTTP2Connection {
        typealias Multiplexer = NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>
        let negotiated = group.next().makePromise(of: Multiplexer.self)
        // HTTP/2 goes into the pipeline as soon as it is agreed, before the server's first
        // frames are read.
        @Sendable func http2(_ channel: any Channel) throws -> Multiplexer {
            NIOLoopBound(
                try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                ) { $0.eventLoop.makeSucceededVoidFuture() },
                eventLoop: channel.eventLoop)
        }
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    guard let tls else { return negotiated.succeed(try http2(channel)) }
                    let outcome = Negotiation(negotiated)
                    try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverHostname))
                    try sync.addHandler(ApplicationProtocolNegotiationHandler { result in
                        channel.eventLoop.makeCompletedFuture {
                            guard case .negotiated("h2") = result else { return outcome.complete(.failure(ChannelError.inappropriateOperationForState)) }
                            outcome.complete(.success(try http2(channel)))
                        }
                    })
                    try sync.addHandler(outcome)
                }
            }
            .connect(to: address).get()
        let multiplexer: Multiplexer
        do {
            multiplexer = try await negotiated.futureResult.get()
        } catch {
            try? await channel.close()
            throw error
        }
        return TestHTTP2Connection(channel: channel, multiplexer: multiplexer)
    }

    /// Sends one request on a new stream and waits for the whole response. `headers` follow the
    /// pseudo-fields; a body without a `content-length` field is sent without one.
    public func request(
        _ method: String, _ path: String, headers: [(String, String)] = [], body: ByteBuffer? = nil,
        trailers: [(String, String)]? = nil, authority: String = "sluice.test"
    ) async throws -> Response {
        let promise = channel.eventLoop.makePromise(of: Response.self)
        // (A stream opened as the connection fails may never become active to hear of it.)
        channel.closeFuture.whenComplete { _ in promise.fail(ChannelError.ioOnClosedChannel) }
        var block = HPACKHeaders([(":method", method), (":scheme", "http"), (":path", path), (":authority", authority)])
        for (name, value) in headers { block.add(name: name, value: value) }
        let loop = channel.eventLoop
        let multiplexer = self.multiplexer
        try await loop.flatSubmit {
            multiplexer.value.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                }
            }.flatMap { stream -> EventLoopFuture<Void> in
                let ends = body == nil && trailers == nil
                stream.write(HTTP2Frame.FramePayload.headers(.init(headers: block, endStream: ends)), promise: nil)
                if let body { stream.write(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(body), endStream: trailers == nil)), promise: nil) }
                if let trailers { stream.write(HTTP2Frame.FramePayload.headers(.init(headers: HPACKHeaders(trailers), endStream: true)), promise: nil) }
                stream.flush()
                return loop.makeSucceededVoidFuture()
            }
        }.get()
        return try await promise.futureResult.get()
    }

    public func close() async {
        try? await channel.close()
    }
}

/// The TLS handshake's outcome: `h2` negotiated, or the handshake failed (the ALPN handler
/// never hears of it then) or the connection closed.
private final class Negotiation: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = Any
    typealias Multiplexer = NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>
    private let promise: EventLoopPromise<Multiplexer>
    private var done = false

    init(_ promise: EventLoopPromise<Multiplexer>) {
        self.promise = promise
    }

    func complete(_ result: Result<Multiplexer, any Error>) {
        guard !done else { return }
        done = true
        promise.completeWith(result)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        complete(.failure(error))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        complete(.failure(ChannelError.ioOnClosedChannel))
        context.fireChannelInactive()
    }
}

/// Gathers one stream's response; fails on a reset or a close before its end.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private let promise: EventLoopPromise<TestHTTP2Connection.Response>
    private var response: TestHTTP2Connection.Response?
    private var interim: [HPACKHeaders] = []
    private var body = ByteBuffer()
    private var done = false

    init(promise: EventLoopPromise<TestHTTP2Connection.Response>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            if response == nil {
                let status = headers.headers.first(name: ":status").flatMap { Int($0) } ?? 0
                if (100..<200).contains(status) { return interim.append(headers.headers) }
                response = .init(status: status, headers: headers.headers, body: ByteBuffer(), interim: interim)
            } else {
                response?.trailers = headers.headers
            }
            if headers.endStream { finish() }
        case .data(let data):
            if case .byteBuffer(var buffer) = data.data { body.writeBuffer(&buffer) }
            if data.endStream { finish() }
        case .rstStream(let code):
            guard !done else { return }
            done = true
            promise.fail(TestHTTP2Connection.StreamReset(code: code))
        default:
            break
        }
    }

    private func finish() {
        guard !done else { return }
        done = true
        guard var response else { return promise.fail(ChannelError.inputClosed) }
        response.body = body
        promise.succeed(response)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done { done = true; promise.fail(ChannelError.ioOnClosedChannel) }
        context.fireChannelInactive()
    }
}
