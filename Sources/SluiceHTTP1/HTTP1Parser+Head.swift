import NIOCore

/// Heads: finding the end of one, reading its start line and fields, and choosing the framing of
/// the body after it.
extension HTTP1Parser {
    mutating func parseHead(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> HTTP1Head? {
        if role == .request, scanned == 0 {
            // RFC 9112 §2.2: empty lines before a request line are ignored.
            while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
                buffer.moveReaderIndex(forwardBy: 2)
            }
            // A lone CR may open one more empty line whose LF is in the next read.
            if buffer.readableBytes == 1, buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == HTTP1Bytes.cr {
                return nil
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
        dataBytes = 0
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
            // Chunked is applied once and last (RFC 9112 §6.1). A response that says otherwise
            // would reach its client with a framing the client could read differently.
            if transferCodings.dropLast().contains(where: { HTTP1Bytes.equalsLowercase($0, "chunked") }) {
                throw .malformed("chunked before another transfer coding")
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
        case 12 where HTTP1Bytes.equalsLowercase(name, "content-type"):
            head.isGRPC = isGRPC(value)
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

    /// `application/grpc`, alone or with a suffix (`+proto`, `+json`) or parameters.
    static func isGRPC(_ value: Slice<UnsafeRawBufferPointer>) -> Bool {
        let prefix: StaticString = "application/grpc"
        let length = prefix.utf8CodeUnitCount
        guard value.count >= length, HTTP1Bytes.equalsLowercase(value.prefix(length), prefix) else { return false }
        guard value.count > length else { return true }
        let next = value[value.startIndex + length]
        return next == UInt8(ascii: "+") || next == UInt8(ascii: ";")
    }
}
