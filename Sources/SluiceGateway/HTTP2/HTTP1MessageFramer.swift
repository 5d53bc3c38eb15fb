import NIOCore
import NIOHPACK
import NIOHTTP2
import SluiceHTTP1

/// HTTP/1.1 message bytes (a head, data framed by length or in chunks, trailers) as HTTP/2
/// frames: what both bridges do in the direction the data path writes, the listener's with
/// responses, the upstream's with requests. The latest header block and data are held, so a
/// head and a small body, or the last data and the end, go as few frames with END_STREAM on the
/// last; `release` lets them go (a flush).
struct HTTP1MessageFramer {
    private var parser: HTTP1Parser
    private var unparsed: ByteBuffer?
    private var heldHeaders: HPACKHeaders?
    private var heldData: ByteBuffer?
    /// The frame with END_STREAM has been emitted; bytes after it are ignored.
    private(set) var ended = false
    /// The message's head as a header block (`:status` or the request pseudo-fields first).
    private let headerBlock: (HTTP1Head) -> HPACKHeaders

    init(role: HTTP1Parser.Role, maxHeadBytes: Int, headerBlock: @escaping (HTTP1Head) -> HPACKHeaders) {
        self.parser = HTTP1Parser(role: role, maxHeadBytes: maxHeadBytes)
        // (gRPC's status is a trailer: trailers end the stream.)
        self.parser.keepsTrailers = true
        self.headerBlock = headerBlock
    }

    /// Responses: the request was HEAD (its answer has no body, whatever it says).
    mutating func requestWasHEAD() {
        parser.requestWasHEAD = true
    }

    var holdsFrames: Bool { heldHeaders != nil || heldData != nil }

    /// Parses `bytes`, emitting the frames that are ready; `last` is true for the END_STREAM one.
    mutating func take(
        _ bytes: ByteBuffer, allocator: ByteBufferAllocator, emit: (HTTP2Frame.FramePayload, _ last: Bool) -> Void
    ) throws(HTTP1ParseError) {
        unparsed = .unparsed(unparsed, then: bytes, allocator: allocator)
        // The gateway's own `100 Continue` (the parser skips interim answers): its own header block.
        if parser.isAtMessageStart, heldHeaders == nil, unparsed!.readableBytesView.starts(with: Self.continueLine) {
            unparsed!.moveReaderIndex(forwardBy: Self.continueLine.count)
            emit(.headers(.init(headers: [":status": "100"])), false)
        }
        defer { if let rest = unparsed, rest.readableBytes == 0 { unparsed = nil } }
        while unparsed != nil, !ended, let event = try parser.next(&unparsed!) {
            switch event {
            case .head(let head):
                heldHeaders = headerBlock(head)
            case .body(let data):
                guard data.readableBytes > 0 else { continue }
                release(emit: emit)
                heldData = data
            case .end:
                end(emit: emit)
            }
        }
    }

    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// Emits the held frames, without ending the stream.
    mutating func release(emit: (HTTP2Frame.FramePayload, _ last: Bool) -> Void) {
        if let headers = heldHeaders {
            heldHeaders = nil
            emit(.headers(.init(headers: headers)), false)
        }
        if let data = heldData {
            heldData = nil
            emit(.data(.init(data: .byteBuffer(data))), false)
        }
    }

    /// The last frame: the trailers, else END_STREAM on the held data, else on the held header
    /// block (no body), else on an empty data frame (after a chunked body).
    private mutating func end(emit: (HTTP2Frame.FramePayload, _ last: Bool) -> Void) {
        ended = true
        if !parser.trailers.isEmpty {
            release(emit: emit)
            emit(.headers(.init(headers: Self.fieldBlock(parser.trailers), endStream: true)), true)
            parser.trailers = []
        } else if let data = heldData {
            heldData = nil
            if let headers = heldHeaders {
                heldHeaders = nil
                emit(.headers(.init(headers: headers)), false)
            }
            emit(.data(.init(data: .byteBuffer(data), endStream: true)), true)
        } else if let headers = heldHeaders {
            heldHeaders = nil
            emit(.headers(.init(headers: headers, endStream: true)), true)
        } else {
            emit(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)), true)
        }
    }

    /// Whether a field is HTTP/1.1's own (RFC 9113 §8.2.2: not sent in HTTP/2).
    static func isConnectionSpecific(_ name: Slice<UnsafeRawBufferPointer>) -> Bool {
        HTTP1Bytes.equalsLowercase(name, "connection") || HTTP1Bytes.equalsLowercase(name, "keep-alive")
            || HTTP1Bytes.equalsLowercase(name, "transfer-encoding") || HTTP1Bytes.equalsLowercase(name, "proxy-connection")
            || HTTP1Bytes.equalsLowercase(name, "upgrade") || HTTP1Bytes.equalsLowercase(name, "te")
    }

    /// Trailer lines (`name: value`) as a header block with lowercase names.
    static func fieldBlock(_ lines: [ByteBuffer]) -> HPACKHeaders {
        var block = HPACKHeaders()
        for line in lines {
            line.withUnsafeReadableBytes { raw in
                guard let colon = raw.firstIndex(of: UInt8(ascii: ":")), !isConnectionSpecific(raw[..<colon]) else { return }
                let value = String(decoding: raw[(colon + 1)...], as: UTF8.self)
                block.add(name: String(decoding: raw[..<colon], as: UTF8.self).lowercased(), value: String(value.trimmedSpaces()))
            }
        }
        return block
    }
}
