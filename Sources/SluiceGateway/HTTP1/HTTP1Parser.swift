import NIOCore

/// Why bytes could not be read as HTTP/1.1.
enum HTTP1ParseError: Error, Equatable, CustomStringConvertible {
    /// The head did not end within the limit.
    case headTooLarge
    case malformed(String)
    /// A request `Transfer-Encoding` other than exactly `chunked`.
    case unsupportedTransferEncoding(String)

    var description: String {
        switch self {
        case .headTooLarge: "message head too large"
        case .malformed(let reason): reason
        case .unsupportedTransferEncoding(let value): "unsupported transfer-encoding: \(value)"
        }
    }
}

/// An incremental HTTP/1.x message parser for one connection direction (requests from a client,
/// or responses from a replica), strict where leniency lets two parsers disagree.
///
/// It replaces NIO's llhttp decoder on the data path. Body bytes come out as slices of the
/// buffers read from the socket (never copied). With `passChunkFraming` set, a chunked body comes
/// out with its framing, validated but unchanged, so a proxy forwards it in one write per read
/// instead of re-framing every chunk; otherwise only the chunk data comes out.
///
/// Strictness (RFC 9112): lines end in CRLF (a bare LF is an error); no whitespace before a
/// field's colon and no obsolete line folding; no control characters in values;
/// `Content-Length` must be digits and agree with any other `Content-Length`; in a request,
/// `Transfer-Encoding` must be exactly `chunked` (it then wins over `Content-Length`, which the
/// caller must not forward). Chunk sizes are hex (at most 15 digits); chunk extensions are
/// allowed but may not hold control characters.
struct HTTP1Parser {
    enum Role {
        case request
        case response
    }

    enum Event {
        case head(HTTP1Head)
        /// Body bytes: data, or data with its chunk framing when `passChunkFraming` is set.
        case body(ByteBuffer)
        case end
    }

    private enum State {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case endPending
    }

    let role: Role
    let maxHeadBytes: Int
    /// See the type's doc comment. Read when body bytes are parsed, so it may be set in answer
    /// to the head event.
    var passChunkFraming = false
    /// Responses: the request was `HEAD`, so the response has no body whatever it says.
    var requestWasHEAD = false
    private var state = State.head
    /// How far the current head (or chunk-size / trailer line) has been searched for a line end,
    /// and where its unfinished line starts: bytes arriving in many small reads are searched
    /// once, never again from the start of a line.
    private var scanned = 0
    private var lineStart = 0
    /// Bytes of the current message's trailer section so far (bounded like a head).
    private var trailerBytes = 0
    /// Data bytes of the current message's body so far (framing not counted).
    private(set) var bodyBytes = 0

    init(role: Role, maxHeadBytes: Int) {
        self.role = role
        self.maxHeadBytes = maxHeadBytes
    }

    /// Between messages: the last message ended and no byte of the next one was parsed.
    var isAtMessageStart: Bool {
        if case .head = state { return scanned == 0 }
        return false
    }

    /// The body runs until the connection closes.
    var readsUntilClose: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// The next event from `buffer` (whose parsed bytes are consumed), or nil when more bytes
    /// are needed.
    mutating func next(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> Event? {
        switch state {
        case .head:
            while true {
                guard let head = try parseHead(&buffer) else { return nil }
                if role == .response, head.status < 200, head.status != 101 {
                    // Interim responses (100, 103) are dropped: Sluice answers `Expect` itself.
                    state = .head
                    continue
                }
                return .head(head)
            }
        case .endPending:
            state = .head
            return .end
        case .fixed(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let count = min(remaining, buffer.readableBytes)
            let slice = buffer.readSlice(length: count)!
            bodyBytes += count
            state = count == remaining ? .endPending : .fixed(remaining: remaining - count)
            return .body(slice)
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            bodyBytes += buffer.readableBytes
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        case .chunkSize, .chunkData, .chunkDataEnd, .trailers:
            return passChunkFraming ? try nextFramedChunks(&buffer) : try nextChunkData(&buffer)
        }
    }

    /// At end of input: the end of a body that runs until close, else nil.
    mutating func finishAtClose() -> Event? {
        guard case .untilClose = state else { return nil }
        state = .head
        return .end
    }

    // MARK: Chunked bodies

    /// Chunk data only: one event per run of data; framing is consumed silently.
    private mutating func nextChunkData(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> Event? {
        while true {
            switch state {
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                bodyBytes += count
                state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
                return .body(buffer.readSlice(length: count)!)
            case .chunkSize, .chunkDataEnd, .trailers:
                guard try stepFraming(&buffer) else { return nil }
            case .endPending:
                state = .head
                return .end
            default:
                return nil
            }
        }
    }

    /// Chunked bytes as received: everything that can be validated now, in one slice.
    private mutating func nextFramedChunks(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> Event? {
        let start = buffer.readerIndex
        loop: while true {
            switch state {
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { break loop }
                let count = min(remaining, buffer.readableBytes)
                bodyBytes += count
                buffer.moveReaderIndex(forwardBy: count)
                state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
            case .chunkSize, .chunkDataEnd, .trailers:
                guard try stepFraming(&buffer) else { break loop }
            default:
                break loop
            }
        }
        let consumed = buffer.readerIndex - start
        guard consumed > 0 else {
            if case .endPending = state {
                state = .head
                return .end
            }
            return nil
        }
        buffer.moveReaderIndex(to: start)
        return .body(buffer.readSlice(length: consumed)!)
    }

    /// Consumes one piece of framing (a size line, a data-ending CRLF or a trailer line).
    /// Returns false when more bytes are needed.
    private mutating func stepFraming(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> Bool {
        switch state {
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else { return false }
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw .malformed("chunk data not followed by CRLF") }
            state = .chunkSize
            return true
        case .chunkSize:
            guard let line = try takeLine(&buffer, limit: 1024) else { return false }
            trailerBytes = 0
            let size = try line.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in try Self.chunkSize(raw) }
            state = size == 0 ? .trailers : .chunkData(remaining: size)
            return true
        case .trailers:
            guard let line = try takeLine(&buffer, limit: maxHeadBytes - trailerBytes) else { return false }
            trailerBytes += line.readableBytes + 2
            if line.readableBytes == 0 {
                state = .endPending
            } else {
                try line.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in
                    _ = try Self.field(raw[...])
                }
            }
            return true
        default:
            return false
        }
    }

    /// One CRLF-terminated line of at most `limit` bytes, without the CRLF; nil if it has not
    /// fully arrived. Bytes already searched are not searched again.
    private mutating func takeLine(_ buffer: inout ByteBuffer, limit: Int) throws(HTTP1ParseError) -> ByteBuffer? {
        let from = scanned
        let searchEnd = min(buffer.readableBytes, limit + 2)
        let lineEnd = from < searchEnd ? buffer.withUnsafeReadableBytes { raw in raw[from..<searchEnd].firstIndex(of: HTTP1Bytes.lf) } : nil
        guard let lineEnd else {
            if buffer.readableBytes > limit + 1 { throw .malformed("line too long in a chunked body") }
            scanned = searchEnd
            return nil
        }
        scanned = 0
        guard lineEnd > 0, buffer.getInteger(at: buffer.readerIndex + lineEnd - 1, as: UInt8.self) == HTTP1Bytes.cr else {
            throw .malformed("bare LF in a chunked body")
        }
        let line = buffer.readSlice(length: lineEnd - 1)!
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }

    static func chunkSize(_ raw: UnsafeRawBufferPointer) throws(HTTP1ParseError) -> Int {
        var size = 0
        var digits = 0
        var index = 0
        while index < raw.count {
            let byte = raw[index]
            let value: Int
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = Int(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = Int(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = Int(byte - UInt8(ascii: "A") + 10)
            default: value = -1
            }
            if value < 0 { break }
            digits += 1
            guard digits <= 15 else { throw .malformed("chunk size too large") }
            size = size << 4 | value
            index += 1
        }
        guard digits > 0 else { throw .malformed("invalid chunk size") }
        // What follows the size may only be whitespace and extensions (`;name=value`).
        while index < raw.count, raw[index] == HTTP1Bytes.space || raw[index] == HTTP1Bytes.tab { index += 1 }
        if index < raw.count {
            guard raw[index] == UInt8(ascii: ";") else { throw .malformed("invalid chunk size") }
            for byte in raw[index...] where !HTTP1Bytes.isValueByte(byte) {
                throw .malformed("control character in a chunk extension")
            }
        }
        return size
    }

    // MARK: Heads

    private mutating func parseHead(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> HTTP1Head? {
        if role == .request, scanned == 0 {
            // RFC 9112 §2.2: empty lines before a request line are ignored.
            while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
                buffer.moveReaderIndex(forwardBy: 2)
            }
        }
        let scanFrom = scanned
        let searchEnd = min(buffer.readableBytes, maxHeadBytes + 1)
        var lineStart = self.lineStart
        let headLength = try buffer.withUnsafeReadableBytes { raw throws(HTTP1ParseError) -> Int? in
            var index = scanFrom
            while index < searchEnd {
                guard let lf = raw[index..<searchEnd].firstIndex(of: HTTP1Bytes.lf) else { break }
                guard lf > 0, raw[lf - 1] == HTTP1Bytes.cr else { throw .malformed("bare LF in the message head") }
                if lf - 1 == lineStart { return lf + 1 }
                lineStart = lf + 1
                index = lf + 1
            }
            return nil
        }
        scanned = max(scanFrom, searchEnd)
        self.lineStart = lineStart
        guard let headLength else {
            if buffer.readableBytes > maxHeadBytes { throw .headTooLarge }
            return nil
        }
        guard headLength <= maxHeadBytes else { throw .headTooLarge }
        scanned = 0
        self.lineStart = 0
        bodyBytes = 0
        var head = HTTP1Head(bytes: buffer.readSlice(length: headLength)!)
        try head.bytes.withUnsafeReadableBytes { raw throws(HTTP1ParseError) in
            try Self.parseLines(raw, into: &head, role: role)
        }
        try frame(head)
        return head
    }

    /// Chooses how the body after `head` is delimited (RFC 9112 §6.3).
    private mutating func frame(_ head: HTTP1Head) throws(HTTP1ParseError) {
        switch role {
        case .request:
            if head.isChunked {
                state = .chunkSize
            } else if let length = head.contentLength, length > 0 {
                state = .fixed(remaining: length)
            } else {
                state = .endPending
            }
        case .response:
            if requestWasHEAD || head.status == 204 || head.status == 304 || head.status == 101 {
                state = .endPending
            } else if head.isChunked {
                state = .chunkSize
            } else if head.hasTransferEncoding {
                state = .untilClose
            } else if let length = head.contentLength {
                state = length > 0 ? .fixed(remaining: length) : .endPending
            } else {
                state = .untilClose
            }
        }
    }

    private static func parseLines(_ raw: UnsafeRawBufferPointer, into head: inout HTTP1Head, role: Role) throws(HTTP1ParseError) {
        // Every LF is known to follow a CR and the last line is empty. A line ends at its LF (a
        // CR inside a line is then rejected as a control character, never taken as an end).
        var lineStart = 0
        var lineEnd = raw[0...].firstIndex(of: HTTP1Bytes.lf)! - 1
        switch role {
        case .request: try requestLine(raw[0..<lineEnd], into: &head)
        case .response: try statusLine(raw[0..<lineEnd], into: &head)
        }
        head.fields.reserveCapacity(12)
        var transferCodings: [Slice<UnsafeRawBufferPointer>] = []
        while true {
            lineStart = lineEnd + 2
            lineEnd = raw[lineStart...].firstIndex(of: HTTP1Bytes.lf)! - 1
            if lineEnd == lineStart { break }
            let field = try field(raw[lineStart..<lineEnd])
            head.fields.append(field)
            try note(field, raw, in: &head, transferCodings: &transferCodings)
        }
        if !transferCodings.isEmpty {
            head.hasTransferEncoding = true
            let last = transferCodings[transferCodings.count - 1]
            head.isChunked = HTTP1Bytes.equalsLowercase(last, "chunked")
            if role == .request, !(transferCodings.count == 1 && head.isChunked) {
                let text = transferCodings.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ", ")
                throw .unsupportedTransferEncoding(text)
            }
            // The transfer coding frames the message; a Content-Length beside it is ignored, and
            // such a request (or HTTP/1.0 with a transfer coding) ends its connection: an
            // earlier hop may have framed it differently (RFC 9112 §6.1, §6.3).
            if role == .request, head.contentLength != nil || head.minorVersion == 0 {
                head.connectionClose = true
            }
            head.contentLength = nil
        }
    }

    /// Records what the proxy needs to know from the field: framing, connection options, host.
    private static func note(
        _ field: HTTP1Head.Field, _ raw: UnsafeRawBufferPointer, in head: inout HTTP1Head,
        transferCodings: inout [Slice<UnsafeRawBufferPointer>]
    ) throws(HTTP1ParseError) {
        let name = raw[field.name]
        let value = raw[field.value]
        switch name.count {
        case 4 where HTTP1Bytes.equalsLowercase(name, "host"):
            head.hasHost = true
        case 6 where HTTP1Bytes.equalsLowercase(name, "expect"):
            // HTTP/1.0 has no interim responses: Expect is ignored there (RFC 9110 §10.1.1).
            head.expectsContinue = head.minorVersion >= 1 && HTTP1Bytes.equalsLowercase(value, "100-continue")
        case 10 where HTTP1Bytes.equalsLowercase(name, "connection"):
            HTTP1Bytes.forEachListElement(value) { option in
                if HTTP1Bytes.equalsLowercase(option, "close") {
                    head.connectionClose = true
                } else if HTTP1Bytes.equalsLowercase(option, "keep-alive") {
                    head.connectionKeepAlive = true
                } else {
                    head.connectionNamesOthers = true
                }
            }
        case 14 where HTTP1Bytes.equalsLowercase(name, "content-length"):
            var failed = false
            var elements = 0
            HTTP1Bytes.forEachListElement(value) { element in
                elements += 1
                guard let length = decimal(element), head.contentLength == nil || head.contentLength == length else {
                    failed = true
                    return
                }
                head.contentLength = length
            }
            if failed || elements == 0 { throw .malformed("invalid content-length") }
        case 17 where HTTP1Bytes.equalsLowercase(name, "transfer-encoding"):
            HTTP1Bytes.forEachListElement(value) { transferCodings.append($0) }
            if value.isEmpty { transferCodings.append(value) }
        default:
            break
        }
    }

    private static func decimal(_ bytes: Slice<UnsafeRawBufferPointer>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// `name ":" OWS value OWS`; the ranges are indices of the buffer `line` is a slice of.
    static func field(_ line: Slice<UnsafeRawBufferPointer>) throws(HTTP1ParseError) -> HTTP1Head.Field {
        let start = line.startIndex
        var index = start
        while index < line.endIndex, HTTP1Bytes.isToken(line[index]) { index += 1 }
        guard index > start, index < line.endIndex, line[index] == HTTP1Bytes.colon else {
            if index == start, let first = line.first, first == HTTP1Bytes.space || first == HTTP1Bytes.tab {
                throw .malformed("obsolete line folding in a header field")
            }
            throw .malformed("invalid header field")
        }
        let name = start..<index
        index += 1
        while index < line.endIndex, line[index] == HTTP1Bytes.space || line[index] == HTTP1Bytes.tab { index += 1 }
        var end = line.endIndex
        while end > index, line[end - 1] == HTTP1Bytes.space || line[end - 1] == HTTP1Bytes.tab { end -= 1 }
        for byte in line[index..<end] where !HTTP1Bytes.isValueByte(byte) {
            throw .malformed("control character in a header value")
        }
        return HTTP1Head.Field(name: name, value: index..<end)
    }

    /// `method SP request-target SP HTTP-version`.
    private static func requestLine(_ line: Slice<UnsafeRawBufferPointer>, into head: inout HTTP1Head) throws(HTTP1ParseError) {
        var index = line.startIndex
        while index < line.endIndex, HTTP1Bytes.isToken(line[index]) { index += 1 }
        guard index > line.startIndex, index < line.endIndex, line[index] == HTTP1Bytes.space else {
            throw .malformed("invalid request line")
        }
        head.method = line.startIndex..<index
        let targetStart = index + 1
        index = targetStart
        while index < line.endIndex, line[index] > HTTP1Bytes.space, line[index] != 0x7F { index += 1 }
        guard index > targetStart, index < line.endIndex, line[index] == HTTP1Bytes.space else {
            throw .malformed("invalid request target")
        }
        head.target = targetStart..<index
        head.minorVersion = try version(line[(index + 1)...])
    }

    /// `HTTP-version SP status-code [SP reason-phrase]`.
    private static func statusLine(_ line: Slice<UnsafeRawBufferPointer>, into head: inout HTTP1Head) throws(HTTP1ParseError) {
        let start = line.startIndex
        guard line.count >= 12, line[start + 8] == HTTP1Bytes.space else { throw .malformed("invalid status line") }
        head.minorVersion = try version(line[start..<(start + 8)])
        var status = 0
        for byte in line[(start + 9)..<(start + 12)] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw .malformed("invalid status code") }
            status = status * 10 + Int(byte - UInt8(ascii: "0"))
        }
        guard status >= 100, line.count == 12 || line[start + 12] == HTTP1Bytes.space else {
            throw .malformed("invalid status code")
        }
        for byte in line[(start + 12)...] where !HTTP1Bytes.isValueByte(byte) {
            throw .malformed("control character in the reason phrase")
        }
        head.status = status
        head.statusText = (start + 9)..<line.endIndex
    }

    private static func version(_ bytes: Slice<UnsafeRawBufferPointer>) throws(HTTP1ParseError) -> Int {
        guard bytes.count == 8, HTTP1Bytes.equals(bytes[bytes.startIndex..<(bytes.startIndex + 7)], "HTTP/1.") else {
            throw .malformed("unsupported HTTP version")
        }
        switch bytes[bytes.startIndex + 7] {
        case UInt8(ascii: "1"): return 1
        case UInt8(ascii: "0"): return 0
        default: throw .malformed("unsupported HTTP version")
        }
    }
}
