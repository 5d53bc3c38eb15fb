import NIOCore
import NIOHPACK
import NIOHTTP2
import SluiceHTTP1

/// One HTTP/2 stream, seen by `ProxyServerHandler` as an HTTP/1.1 connection carrying one
/// exchange: the request's frames become HTTP/1.1 bytes (`HTTP2RequestHead`), and the bytes the
/// handler writes become frames (`+Response`). So routing, limits, the queue, batching, SSE,
/// deadlines and metrics are the same code for both protocols, and each stream has its own
/// exchange state machine, timers and backpressure: the handler stops reading a stream (its
/// window is then not reopened) while its replica cannot take more, and stops reading its
/// replica while the stream's send window is full.
final class HTTP2StreamBridge: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var requestStarted = false
    /// The request body goes on as chunks (it had no `content-length`).
    private var chunked = false
    /// The response as the handler writes it, as frames.
    var response: HTTP1MessageFramer
    /// The last frame of a write so far, written with the write's promise.
    var slot: HTTP2Frame.FramePayload?
    /// Completed when the frame carrying END_STREAM has gone to the connection.
    var ended: EventLoopFuture<Void>?

    init(maxHeadBytes: Int) {
        self.response = HTTP1MessageFramer(role: .response, maxHeadBytes: maxHeadBytes, headerBlock: Self.headerBlock)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers) where !requestStarted:
            requestStarted = true
            guard let encoded = HTTP2RequestHead.encode(headers.headers, endStream: headers.endStream, allocator: context.channel.allocator) else {
                // (NIO refuses a request without :method or :path before this; kept as a guard.)
                return context.close(promise: nil)
            }
            chunked = encoded.chunked
            if encoded.isHEAD { response.requestWasHEAD() }
            context.fireChannelRead(wrapInboundOut(encoded.bytes))
        case .headers(let trailers):
            // Trailers: the chunked body's trailer section. (A body framed by `content-length`
            // has no place for them in HTTP/1.1; they are dropped, as nginx does.)
            guard chunked else { return }
            chunked = false
            context.fireChannelRead(wrapInboundOut(HTTP2RequestHead.lastChunk(trailers: trailers.headers, allocator: context.channel.allocator)))
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else { return }
            guard chunked else {
                if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
                return
            }
            if data.endStream { chunked = false }
            let out = HTTP2RequestHead.chunk(buffer, last: data.endStream, allocator: context.channel.allocator)
            if out.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(out)) }
        default:
            break
        }
    }

    /// END_STREAM is the stream's half-close: the handler's "close the sending side" (after an
    /// early answer, to keep reading what the client still sends) has already happened. A
    /// full close resets the stream if it is still open.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .output else { return context.close(mode: mode, promise: promise) }
        promise?.succeed()
    }
}
