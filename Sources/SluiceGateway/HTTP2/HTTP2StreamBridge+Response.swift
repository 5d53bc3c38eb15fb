import NIOCore
import NIOHPACK
import NIOHTTP2
import SluiceHTTP1

/// The response direction: the HTTP/1.1 bytes `ProxyServerHandler` writes (a head, then data
/// framed by length or in chunks, or the gateway's own answers) parsed back into a header
/// block and data frames. The parse is of the gateway's own output, already checked when it
/// came from the replica.
extension HTTP2StreamBridge {
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        // An empty write marks "everything before me is written" (the handler closes after it).
        if buffer.readableBytes == 0, heldHeaders == nil, heldData == nil {
            guard let promise else { return }
            if let ended { ended.cascade(to: promise) } else { promise.succeed() }
            return
        }
        unparsed = .unparsed(unparsed, then: buffer, allocator: context.channel.allocator)
        // The gateway's own `100 Continue` (the parser skips interim answers): its own header block.
        if response.isAtMessageStart, heldHeaders == nil, unparsed!.readableBytesView.starts(with: Self.continueLine) {
            unparsed!.moveReaderIndex(forwardBy: Self.continueLine.count)
            emit(.headers(.init(headers: [":status": "100"])), context)
        }
        while unparsed != nil, ended == nil {
            let event: HTTP1Parser.Event?
            do {
                event = try response.next(&unparsed!)
            } catch {
                // Not possible for the gateway's own output; the stream is reset, not guessed at.
                promise?.fail(error)
                return context.close(promise: nil)
            }
            guard let event else { break }
            switch event {
            case .head(let head):
                heldHeaders = Self.headerBlock(head)
            case .body(let data):
                guard data.readableBytes > 0 else { continue }
                writeHeld(context)
                heldData = data
            case .end:
                end(context)
            }
        }
        if let rest = unparsed, rest.readableBytes == 0 { unparsed = nil }
        guard let promise else { return writeSlot(context, promise: nil) }
        // The write's promise goes with its last frame: held frames go now.
        writeHeld(context)
        writeSlot(context, promise: promise)
    }

    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    func flush(context: ChannelHandlerContext) {
        writeHeld(context)
        writeSlot(context, promise: nil)
        context.flush()
    }

    /// The response's last frame: its trailers, else END_STREAM on the held data, else on the
    /// held header block (a response without a body), else on an empty data frame (after a
    /// chunked body).
    private func end(_ context: ChannelHandlerContext) {
        let last: HTTP2Frame.FramePayload
        if !response.trailers.isEmpty {
            writeHeld(context)
            last = .headers(.init(headers: Self.fieldBlock(response.trailers), endStream: true))
            response.trailers = []
        } else if let data = heldData {
            heldData = nil
            if let headers = heldHeaders {
                heldHeaders = nil
                emit(.headers(.init(headers: headers)), context)
            }
            last = .data(.init(data: .byteBuffer(data), endStream: true))
        } else if let headers = heldHeaders {
            heldHeaders = nil
            last = .headers(.init(headers: headers, endStream: true))
        } else {
            last = .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))
        }
        writeSlot(context, promise: nil)
        let promise = context.eventLoop.makePromise(of: Void.self)
        ended = promise.futureResult
        context.write(wrapOutboundOut(last), promise: promise)
    }

    private func writeHeld(_ context: ChannelHandlerContext) {
        if let headers = heldHeaders {
            heldHeaders = nil
            emit(.headers(.init(headers: headers)), context)
        }
        if let data = heldData {
            heldData = nil
            emit(.data(.init(data: .byteBuffer(data))), context)
        }
    }

    /// Queues `payload` as the last frame so far, writing the one it follows.
    private func emit(_ payload: HTTP2Frame.FramePayload, _ context: ChannelHandlerContext) {
        writeSlot(context, promise: nil)
        slot = payload
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

    /// Trailer lines (`name: value`) as a header block with lowercase names.
    static func fieldBlock(_ lines: [ByteBuffer]) -> HPACKHeaders {
        var block = HPACKHeaders()
        for line in lines {
            let text = String(buffer: line)
            guard let colon = text.firstIndex(of: ":") else { continue }
            let name = text[..<colon].lowercased()
            if ["connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"].contains(name) { continue }
            block.add(name: name, value: String(text[text.index(after: colon)...].trimmedSpaces()))
        }
        return block
    }

    /// The response head as an HTTP/2 header block: `:status`, then the fields with lowercase
    /// names, without HTTP/1.1's connection-specific ones (RFC 9113 §8.2.2) and without a
    /// `content-length` a chunked body overrides.
    static func headerBlock(_ head: HTTP1Head) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.reserveCapacity(head.fields.count + 1)
        headers.add(name: ":status", value: String(head.status))
        head.bytes.withUnsafeReadableBytes { raw in
            for field in head.fields {
                let name = raw[field.name]
                if HTTP1Bytes.equalsLowercase(name, "connection") || HTTP1Bytes.equalsLowercase(name, "keep-alive")
                    || HTTP1Bytes.equalsLowercase(name, "transfer-encoding") || HTTP1Bytes.equalsLowercase(name, "proxy-connection")
                    || HTTP1Bytes.equalsLowercase(name, "upgrade")
                    || (head.isChunked && HTTP1Bytes.equalsLowercase(name, "content-length")) {
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
