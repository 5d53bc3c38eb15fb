import NIOCore

/// A value of the Redis serialization protocol (RESP2), as much as a limiter needs: what
/// `EVALSHA`, `SCRIPT LOAD` and `PING` answer.
enum RESPValue: Equatable, Sendable {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk(ByteBuffer?)
    case array([RESPValue]?)

    var string: String? {
        switch self {
        case .simple(let text): text
        case .bulk(let buffer?): String(buffer: buffer)
        default: nil
        }
    }
}

enum RESPError: Error, Equatable {
    case malformed(String)
}

enum RESP {
    /// A command as an array of bulk strings.
    static func write(_ arguments: [String], into out: inout ByteBuffer) {
        out.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            out.writeString("$\(argument.utf8.count)\r\n")
            out.writeString(argument)
            out.writeStaticString("\r\n")
        }
    }

    /// Reads one whole value from the front of `buffer`, or nil (nothing consumed) when more
    /// bytes are needed. Sizes are bounded, so a hostile or broken server cannot make the
    /// gateway allocate without limit.
    static func read(_ buffer: inout ByteBuffer, depth: Int = 0) throws -> RESPValue? {
        var probe = buffer
        guard let value = try parse(&probe, depth: depth) else { return nil }
        buffer = probe
        return value
    }

    private static func parse(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard depth < 8 else { throw RESPError.malformed("nested too deep") }
        guard let line = readLine(&buffer) else {
            if buffer.readableBytes > 65_536 { throw RESPError.malformed("a line longer than 64 KiB") }
            return nil
        }
        guard let kind = line.first else { throw RESPError.malformed("empty line") }
        let rest = String(line.dropFirst())
        switch kind {
        case "+": return .simple(rest)
        case "-": return .error(rest)
        case ":":
            guard let value = Int64(rest) else { throw RESPError.malformed("integer \(rest)") }
            return .integer(value)
        case "$":
            guard let length = Int(rest), length >= -1, length <= 64 << 20 else { throw RESPError.malformed("bulk length \(rest)") }
            if length == -1 { return .bulk(nil) }
            guard buffer.readableBytes >= length + 2 else { return nil }
            let bytes = buffer.readSlice(length: length)!
            guard buffer.readString(length: 2) == "\r\n" else { throw RESPError.malformed("bulk not followed by CRLF") }
            return .bulk(bytes)
        case "*":
            guard let count = Int(rest), count >= -1, count <= 1 << 16 else { throw RESPError.malformed("array length \(rest)") }
            if count == -1 { return .array(nil) }
            var items: [RESPValue] = []
            items.reserveCapacity(count)
            for _ in 0..<count {
                guard let item = try parse(&buffer, depth: depth + 1) else { return nil }
                items.append(item)
            }
            return .array(items)
        default:
            throw RESPError.malformed("type byte \(kind)")
        }
    }

    private static func readLine(_ buffer: inout ByteBuffer) -> Substring? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")), view.index(after: cr) < view.endIndex,
              view[view.index(after: cr)] == UInt8(ascii: "\n")
        else { return nil }
        let length = cr - view.startIndex
        let text = buffer.readString(length: length) ?? ""
        buffer.moveReaderIndex(forwardBy: 2)
        return text[...]
    }
}

/// Bytes from Redis as they arrive, read one whole value at a time (a value may span reads).
struct RESPReader {
    private var buffer: ByteBuffer?

    mutating func append(_ incoming: ByteBuffer) {
        var incoming = incoming
        if buffer == nil {
            buffer = incoming
        } else {
            buffer!.writeBuffer(&incoming)
        }
    }

    /// The next whole value, or nil until more bytes come; throws on malformed input.
    mutating func next() throws -> RESPValue? {
        guard var current = buffer, let value = try RESP.read(&current) else { return nil }
        buffer = current
        return value
    }

    /// Drops what was read (call after a burst of `next()`).
    mutating func compact() {
        if buffer?.readableBytes == 0 { buffer = nil } else { buffer?.discardReadBytes() }
    }
}
