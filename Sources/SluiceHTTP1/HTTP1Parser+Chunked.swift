import NIOCore

/// Chunked bodies (RFC 9112 §7.1): sizes, data, the CRLF after it, trailers.
extension HTTP1Parser {
    /// Chunk data only: one event per run of data; framing is consumed silently.
    @usableFromInline
    mutating func nextChunkData(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> Event? {
        while true {
            switch state {
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let count = min(remaining, buffer.readableBytes)
                dataBytes += count
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
    @usableFromInline
    mutating func nextFramedChunks(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> Event? {
        let start = buffer.readerIndex
        loop: while true {
            switch state {
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { break loop }
                let count = min(remaining, buffer.readableBytes)
                dataBytes += count
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
                if keepsTrailers { trailers.append(line) }
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
}
