import NIOCore
import NIOHPACK
import NIOHTTP2
import SluiceCore
import SluiceGRPC
import Synchronization

/// Sends a merged `ModelInfer` call to a replica over HTTP/2 (the pool's `upstream.protocol`,
/// h2c or h2) and collects its one message: the gRPC counterpart of `BatchUpstream`, on the
/// same stream pool the data path uses (one per loop and replica, kept for the next batches).
final class GRPCBatchUpstream: Sendable {
    struct Answer: Sendable {
        /// 0 when the call succeeded; the replica's `grpc-status` otherwise (or 2, UNKNOWN, when it sent none).
        var grpcStatus: Int
        var message: [UInt8]
    }

    private struct Key: Hashable {
        var loop: ObjectIdentifier
        var replica: ReplicaID
    }

    private let settings: UpstreamSettings
    private let sessions = Mutex<[Key: NIOLoopBound<HTTP2Sessions>]>([:])

    init(settings: UpstreamSettings) {
        self.settings = settings
    }

    /// Completes on `loop` (the caller's); `BatchUpstream.Failure.timedOut` past `timeout`.
    func call(_ framed: [UInt8], path: String, to replica: ReplicaID, on loop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<Answer> {
        let key = Key(loop: ObjectIdentifier(loop), replica: replica)
        let settings = self.settings
        let bound = sessions.withLock { sessions in
            if let existing = sessions[key] { return existing }
            let created = NIOLoopBound(HTTP2Sessions(replica: replica, eventLoop: loop, settings: settings), eventLoop: loop)
            sessions[key] = created
            return created
        }
        let promise = loop.makePromise(of: Answer.self)
        var headers = HPACKHeaders([(":method", "POST"), (":scheme", settings.tls == nil ? "http" : "https"), (":path", path), (":authority", replica.description)])
        headers.add(contentsOf: [("content-type", "application/grpc"), ("te", "trailers")])
        let request = headers
        bound.value.openStream { stream in
            stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(UnaryCallCollector(promise: promise)) }
        }.whenComplete { result in
            switch result {
            case .success(let stream):
                stream.write(HTTP2Frame.FramePayload.headers(.init(headers: request)), promise: nil)
                stream.writeAndFlush(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: framed)), endStream: true)), promise: nil)
                let deadline = loop.scheduleTask(in: timeout) {
                    promise.fail(BatchUpstream.Failure.timedOut)
                    stream.close(promise: nil)
                }
                promise.futureResult.whenComplete { _ in deadline.cancel() }
            case .failure(let error):
                promise.fail(error)
            }
        }
        return promise.futureResult
    }
}

/// One unary call's answer: the header block, the message, the trailers with `grpc-status`.
private final class UnaryCallCollector: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private let promise: EventLoopPromise<GRPCBatchUpstream.Answer>
    private var headers: HPACKHeaders?
    private var body = ByteBuffer()

    init(promise: EventLoopPromise<GRPCBatchUpstream.Answer>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let block):
            if headers == nil {
                headers = block.headers
                // (A trailers-only answer: the status is in the one header block.)
                if block.endStream { finish(block.headers) }
            } else {
                finish(block.headers)
            }
        case .data(let data):
            if case .byteBuffer(var buffer) = data.data { body.writeBuffer(&buffer) }
            if data.endStream { finish([:]) }
        case .rstStream(let code):
            promise.fail(NIOHTTP2Errors.streamClosed(streamID: .rootStream, errorCode: code))
        default:
            break
        }
    }

    private func finish(_ trailers: HPACKHeaders) {
        let status = trailers.first(name: "grpc-status").flatMap { Int($0) } ?? 2
        let http = headers?.first(name: ":status").flatMap { Int($0) } ?? 0
        let message = body.withUnsafeReadableBytes { raw in GRPCMessage.messageRange(in: raw).map { Array(raw[$0]) } } ?? []
        promise.succeed(.init(grpcStatus: http == 200 ? status : 14, message: message))
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }
}
