import NIOCore
import NIOHPACK
import NIOHTTP2
import SluiceHTTP1

/// The response direction: the HTTP/1.1 bytes `ProxyServerHandler` writes (a head, then data
/// framed by length or in chunks, or the gateway's own answers) as frames (`HTTP1MessageFramer`).
/// The parse is of the gateway's own output, already checked when it came from the replica.
/// A write's promise goes with its last frame; the END_STREAM frame's completion is kept, for
/// the empty write the handler closes after.
extension HTTP2StreamBridge {
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        // An empty write marks "everything before me is written" (the handler closes after it).
        if buffer.readableBytes == 0, !response.holdsFrames {
            guard let promise else { return }
            if let ended { ended.cascade(to: promise) } else { promise.succeed() }
            return
        }
        do throws(HTTP1ParseError) {
            try response.take(buffer, allocator: context.channel.allocator) { emit($0, last: $1, context) }
        } catch {
            // Not possible for the gateway's own output; the stream is reset, not guessed at.
            promise?.fail(error)
            return context.close(promise: nil)
        }
        guard let promise else { return writeSlot(context, promise: nil) }
        // The write's promise goes with its last frame: held frames go now.
        response.release { emit($0, last: $1, context) }
        writeSlot(context, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        response.release { emit($0, last: $1, context) }
        writeSlot(context, promise: nil)
        context.flush()
    }

    /// Queues `payload` as the last frame so far, writing the one it follows; the END_STREAM
    /// frame goes at once, its completion kept in `ended`.
    private func emit(_ payload: HTTP2Frame.FramePayload, last: Bool, _ context: ChannelHandlerContext) {
        writeSlot(context, promise: nil)
        guard last else { return slot = payload }
        let promise = context.eventLoop.makePromise(of: Void.self)
        ended = promise.futureResult
        context.write(wrapOutboundOut(payload), promise: promise)
    }

    private func writeSlot(_ context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard let payload = slot else {
            if let promise {
                if let ended { ended.cascade(to: promise) } else { promise.succeed() }
            }
            return
        }
        slot = nil
        context.write(wrapOutboundOut(payload), promise: promise)
    }

    /// The response head as an HTTP/2 header block: `:status`, then the fields with lowercase
    /// names, without HTTP/1.1's connection-specific ones and without a `content-length` a
    /// chunked body overrides.
    static func headerBlock(_ head: HTTP1Head) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.reserveCapacity(head.fields.count + 1)
        headers.add(name: ":status", value: String(head.status))
        head.bytes.withUnsafeReadableBytes { raw in
            for field in head.fields {
                let name = raw[field.name]
                if HTTP1MessageFramer.isConnectionSpecific(name) || (head.isChunked && HTTP1Bytes.equalsLowercase(name, "content-length")) {
                    continue
                }
                var lowered = String(decoding: name, as: UTF8.self)
                if name.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) { lowered = lowered.lowercased() }
                headers.add(name: lowered, value: String(decoding: raw[field.value], as: UTF8.self))
            }
        }
        return headers
    }
}
