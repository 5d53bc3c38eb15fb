import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceTesting

/// An HTTP/1.1 server on 127.0.0.1 whose every answer the test scripts (a status, a chunked
/// answer, a connection closed without an answer, silence, or a head and then silence),
/// keeping each request it was sent: a replica or a webhook target that fails exactly when a
/// test needs it to.
final class ScriptedServer: Sendable {
    struct Request: Sendable {
        var uri: String
        var headers: HTTPHeaders
        var body: String
        var at: ContinuousClock.Instant
    }

    enum Answer: Sendable {
        case status(Int, body: String)
        /// Reads the request, closes the connection without a byte of answer.
        case close
        /// Never answers (the connection stays open until the other side or `stop` closes it).
        case silence
        /// A streamed answer's head and first chunk, then nothing more.
        case headThenSilence(firstChunk: String)
        /// A whole answer in `transfer-encoding: chunked`, one chunk per part.
        case chunked(Int, parts: [String])
        /// A stream of events' head and these chunks, then the connection closed (a replica that
        /// dies mid-stream, or, with no chunks, before its first event).
        case streamThenClose(chunks: [String])
    }

    /// Decides the answer to the `index`-th request (from 0), on the server's event loop.
    typealias Script = @Sendable (_ request: Request, _ index: Int) -> Answer

    private let channel: any Channel
    private let state: Locked<State>

    private struct State: Sendable {
        var requests: [Request] = []
        var connections: [any Channel] = []
    }

    var port: Int { channel.localAddress!.port! }
    var requests: [Request] { state.withLock { $0.requests } }
    /// Connections accepted so far.
    var connectionCount: Int { state.withLock { $0.connections.count } }
    /// Connections still open.
    var openConnections: Int { state.withLock { $0.connections.filter(\.isActive).count } }

    private init(channel: any Channel, state: Locked<State>) {
        self.channel = channel
        self.state = state
    }

    /// Listens on `port` (0: any free one).
    static func start(port: Int = 0, _ script: @escaping Script) async throws -> ScriptedServer {
        let state = Locked(State())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.withLock { $0.connections.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(state: state, script: script))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        return ScriptedServer(channel: channel, state: state)
    }

    /// Stops listening and closes every connection still open.
    func stop() async throws {
        try await channel.close()
        for connection in state.withLock({ $0.connections }) {
            try? await connection.close()
        }
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let state: Locked<State>
        let script: Script
        var head: HTTPRequestHead?
        var body = ""

        init(state: Locked<State>, script: @escaping Script) {
            self.state = state
            self.script = script
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let value):
                head = value
                body = ""
            case .body(let buffer):
                body += String(buffer: buffer)
            case .end:
                guard let head else { return }
                let request = Request(uri: head.uri, headers: head.headers, body: body, at: .now)
                let index = state.withLock { state -> Int in
                    state.requests.append(request)
                    return state.requests.count - 1
                }
                answer(script(request, index), context: context)
            }
        }

        private func answer(_ answer: Answer, context: ChannelHandlerContext) {
            switch answer {
            case .status(let status, let text):
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: "application/json")
                headers.add(name: "content-length", value: String(text.utf8.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            case .close:
                context.close(promise: nil)
            case .silence:
                break
            case .headThenSilence(let chunk):
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: "text/event-stream")
                headers.add(name: "transfer-encoding", value: "chunked")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: chunk)))), promise: nil)
            case .streamThenClose(let chunks):
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: "text/event-stream")
                headers.add(name: "transfer-encoding", value: "chunked")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                for chunk in chunks { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: chunk)))), promise: nil) }
                context.flush()
                context.close(promise: nil)
            case .chunked(let status, let parts):
                var headers = HTTPHeaders()
                headers.add(name: "transfer-encoding", value: "chunked")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
                for part in parts { context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: part)))), promise: nil) }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
