import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceCore

/// Sends a merged batch to a replica and collects the whole answer: one HTTP/1.1 POST on its
/// own connection (`connection: close`), with a deadline. Batches are few and their answers
/// are read whole anyway (they are split before anyone sees them), so this stays apart from
/// the streaming data path.
enum BatchUpstream {
    struct Answer: Sendable {
        var status: Int
        var body: ByteBuffer
    }

    enum Failure: Error {
        case timedOut
        case closedEarly
    }

    static func post(_ body: [UInt8], path: String, to replica: ReplicaID, on loop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<Answer> {
        let promise = loop.makePromise(of: Answer.self)
        // Everything below runs on `loop`: the first completion wins.
        let once = Once(promise)
        let deadline = loop.scheduleTask(in: timeout) { once.complete(.failure(Failure.timedOut)) }
        promise.futureResult.whenComplete { _ in deadline.cancel() }
        ClientBootstrap(group: loop)
            .connectTimeout(min(timeout, .seconds(2)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Collector(once: once))
                }
            }
            .connect(host: replica.host, port: replica.port)
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    once.complete(.failure(error))
                case .success(let channel):
                    var headers = HTTPHeaders()
                    headers.add(name: "host", value: replica.description)
                    headers.add(name: "content-type", value: "application/json")
                    headers.add(name: "content-length", value: String(body.count))
                    headers.add(name: "connection", value: "close")
                    channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)), promise: nil)
                    channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil)
                    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                    promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                }
            }
        return promise.futureResult
    }

    /// Completes a promise once; used on one event loop only.
    private final class Once: @unchecked Sendable {
        let promise: EventLoopPromise<Answer>
        var done = false

        init(_ promise: EventLoopPromise<Answer>) {
            self.promise = promise
        }

        func complete(_ result: Result<Answer, any Error>) {
            guard !done else { return }
            done = true
            promise.completeWith(result)
        }
    }

    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let once: Once
        var status = 0
        var body = ByteBuffer()

        init(once: Once) {
            self.once = once
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = Int(head.status.code)
            case .body(var part):
                body.writeBuffer(&part)
            case .end:
                once.complete(.success(Answer(status: status, body: body)))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            once.complete(.failure(Failure.closedEarly))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            once.complete(.failure(error))
            context.close(promise: nil)
        }
    }
}
