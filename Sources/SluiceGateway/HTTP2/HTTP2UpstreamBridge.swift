import NIOCore
import NIOHPACK
import NIOHTTP2
import SluiceHTTP1

/// One HTTP/2 stream to a replica, seen by `UpstreamHandler` as an HTTP/1.1 connection that
/// carries one exchange: the listener bridge's mirror image. The request bytes the exchange
/// writes become a header block and data frames (with `te: trailers` for gRPC, which servers
/// require); the replica's frames become an HTTP/1.1 response, chunked when it has no
/// `content-length`, its trailers (gRPC's status) in the chunked trailer section.
final class HTTP2UpstreamBridge: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// The request as the exchange writes it, as frames.
    private var request: HTTP1MessageFramer
    private var responseStarted = false
    private var responseChunked = false

    init(tls: Bool) {
        let scheme = tls ? "https" : "http"
        request = HTTP1MessageFramer(role: .request, maxHeadBytes: 1 << 20) { Self.requestBlock($0, scheme: scheme) }
    }

    // MARK: The request, HTTP/1.1 bytes to frames

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        do throws(HTTP1ParseError) {
            try request.take(unwrapOutboundIn(data), allocator: context.channel.allocator) { frame, _ in
                context.write(wrapOutboundOut(frame), promise: nil)
            }
        } catch {
            promise?.fail(error)
            return context.close(promise: nil)
        }
        promise?.succeed()
    }

    func flush(context: ChannelHandlerContext) {
        request.release { frame, _ in context.write(wrapOutboundOut(frame), promise: nil) }
        context.flush()
    }

    /// The request head as a header block: `host` becomes `:authority`; HTTP/1.1's
    /// connection-specific fields go; gRPC calls get `te: trailers`, which servers require.
    private static func requestBlock(_ head: HTTP1Head, scheme: String) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(head.fields.count + 4)
        block.add(name: ":method", value: head.string(head.method))
        block.add(name: ":scheme", value: scheme)
        block.add(name: ":path", value: head.targetString)
        if let host = head.first("host") { block.add(name: ":authority", value: head.value(host)) }
        head.bytes.withUnsafeReadableBytes { raw in
            for field in head.fields {
                let name = raw[field.name]
                if HTTP1Bytes.equalsLowercase(name, "host") || HTTP1MessageFramer.isConnectionSpecific(name) { continue }
                block.add(name: String(decoding: name, as: UTF8.self).lowercased(), value: String(decoding: raw[field.value], as: UTF8.self))
            }
        }
        if head.isGRPC { block.add(name: "te", value: "trailers") }
        return block
    }

    // MARK: The response, frames to HTTP/1.1 bytes

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let allocator = context.channel.allocator
        switch unwrapInboundIn(data) {
        case .headers(let headers) where !responseStarted:
            let status = headers.headers.first(name: ":status").flatMap { Int($0) } ?? 0
            // Interim answers (100, 103) are not passed on: the gateway answers `Expect` itself.
            if (100..<200).contains(status) { return }
            responseStarted = true
            var out = allocator.buffer(capacity: 256)
            out.writeStaticString("HTTP/1.1 ")
            out.writeString(String(status))
            out.writeStaticString(" \r\n")
            var hasLength = false
            for (name, value, _) in headers.headers where name.utf8.first != UInt8(ascii: ":") {
                if name == "content-length" { hasLength = true }
                out.writeString(name)
                out.writeStaticString(": ")
                out.writeString(value)
                out.writeStaticString("\r\n")
            }
            if headers.endStream {
                if !hasLength { out.writeStaticString("content-length: 0\r\n") }
            } else if !hasLength {
                responseChunked = true
                out.writeStaticString("transfer-encoding: chunked\r\n")
            }
            out.writeStaticString("\r\n")
            context.fireChannelRead(wrapInboundOut(out))
        case .headers(let trailers):
            guard responseChunked else { return }
            responseChunked = false
            context.fireChannelRead(wrapInboundOut(HTTP2RequestHead.lastChunk(trailers: trailers.headers, allocator: allocator)))
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else { return }
            guard responseChunked else {
                if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
                return
            }
            if data.endStream { responseChunked = false }
            let out = HTTP2RequestHead.chunk(buffer, last: data.endStream, allocator: allocator)
            if out.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(out)) }
        default:
            break
        }
    }
}
