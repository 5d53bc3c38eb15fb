import NIOCore
import SluiceCore

/// Reads a response's token `usage` as it passes to the client, for settling token limits:
/// from the JSON body of a plain answer, or from the usage chunk of a stream (the last event
/// with a `usage` object; OpenAI and vLLM send it just before `data: [DONE]` when asked with
/// `stream_options.include_usage`).
///
/// A stream is cut into server-sent events (an event is forwarded once its blank line has
/// arrived; replicas write whole events, so nothing waits in practice), and when the gateway
/// asked for the usage chunk on the client's behalf the event that carries only usage (empty
/// `choices`) is dropped: the client gets the stream it asked for. Only events that contain
/// `"usage"` followed by an object are parsed. A plain answer is copied aside (up to 4 MiB)
/// and parsed when it ends.
final class UsageMeter {
    /// Drop the usage-only event (the gateway asked for it; the client did not).
    private(set) var strip: Bool
    /// `usage.total_tokens` (or prompt + completion) when the response carried it.
    private(set) var usedTokens: Int?
    private var eventStream = false
    /// The start of an event whose end has not arrived.
    private var pending: ByteBuffer?
    /// A plain answer so far; nil once it outgrew `maxBody`.
    private var body: ByteBuffer?
    static let maxBody = 4 << 20
    /// An event longer than this is forwarded unread rather than held.
    static let maxEvent = 1 << 20

    init(strip: Bool) {
        self.strip = strip
    }

    /// - Parameter mayDrop: whether the framing lets the gateway leave bytes out (not under a
    ///   `content-length`); without it the usage event passes (it is still read).
    func responseStarted(eventStream: Bool, mayDrop: Bool, allocator: ByteBufferAllocator) {
        self.eventStream = eventStream
        if !mayDrop { strip = false }
        if !eventStream { body = allocator.buffer(capacity: 0) }
    }

    /// What to send the client now for `buffer` (body data, unframed).
    func consume(_ buffer: ByteBuffer) -> [ByteBuffer] {
        guard eventStream else {
            if body != nil {
                if body!.readableBytes + buffer.readableBytes > Self.maxBody {
                    body = nil
                } else {
                    body!.writeImmutableBuffer(buffer)
                }
            }
            return [buffer]
        }
        var data: ByteBuffer
        if var held = pending {
            held.writeImmutableBuffer(buffer)
            data = held
            pending = nil
        } else {
            data = buffer
        }
        var out: [ByteBuffer] = []
        var keepFrom = data.readerIndex
        var eventStart = data.readerIndex
        let ends = Self.eventEnds(in: data)
        for end in ends {
            let event = data.getSlice(at: eventStart, length: end - eventStart)!
            if Self.mentionsUsageObject(event), let (tokens, usageOnly) = Self.usage(inEvent: event) {
                usedTokens = tokens
                if strip, usageOnly {
                    if eventStart > keepFrom { out.append(data.getSlice(at: keepFrom, length: eventStart - keepFrom)!) }
                    keepFrom = end
                }
            }
            eventStart = end
        }
        if eventStart > keepFrom { out.append(data.getSlice(at: keepFrom, length: eventStart - keepFrom)!) }
        let rest = data.writerIndex - eventStart
        if rest > 0 {
            let tail = data.getSlice(at: eventStart, length: rest)!
            if rest > Self.maxEvent { out.append(tail) } else { pending = tail }
        }
        return out
    }

    /// At the response's end: what is still held (an event without its blank line), and the
    /// usage of a plain answer.
    func end() -> ByteBuffer? {
        if let body, let object = Self.lastUsageObject(in: body) {
            // Only the usage object is parsed, not the whole answer.
            usedTokens = Self.tokens(inUsage: try? JSONValue.parse(object))
        }
        body = nil
        defer { pending = nil }
        return pending
    }

    /// The buffer indices just past each complete event (`\n\n` or `\r\n\r\n`).
    static func eventEnds(in data: ByteBuffer) -> [Int] {
        data.withUnsafeReadableBytes { raw in
            var ends: [Int] = []
            var index = 0
            while index + 1 < raw.count {
                if raw[index] == 0x0A {
                    if raw[index + 1] == 0x0A {
                        ends.append(data.readerIndex + index + 2)
                        index += 2
                        continue
                    }
                    if index + 2 < raw.count, raw[index + 1] == 0x0D, raw[index + 2] == 0x0A {
                        ends.append(data.readerIndex + index + 3)
                        index += 3
                        continue
                    }
                }
                index += 1
            }
            return ends
        }
    }

    private static let usageKey = Array(#""usage""#.utf8)

    /// The bytes of the last `"usage": {...}` object in `body` (braces matched, strings
    /// skipped), or nil.
    static func lastUsageObject(in body: ByteBuffer) -> [UInt8]? {
        body.withUnsafeReadableBytes { raw -> [UInt8]? in
            let key = usageKey
            var index = raw.count - key.count
            while index >= 0 {
                defer { index -= 1 }
                guard raw[index] == key[0], (1..<key.count).allSatisfy({ raw[index + $0] == key[$0] }) else { continue }
                var next = index + key.count
                while next < raw.count, raw[next] == 0x20 || raw[next] == 0x3A || raw[next] == 0x0A || raw[next] == 0x0D || raw[next] == 0x09 { next += 1 }
                guard next < raw.count, raw[next] == UInt8(ascii: "{") else { continue }
                var depth = 0
                var inString = false
                var position = next
                while position < raw.count {
                    let byte = raw[position]
                    if inString {
                        if byte == UInt8(ascii: "\\") { position += 1 } else if byte == UInt8(ascii: "\"") { inString = false }
                    } else if byte == UInt8(ascii: "\"") {
                        inString = true
                    } else if byte == UInt8(ascii: "{") {
                        depth += 1
                    } else if byte == UInt8(ascii: "}") {
                        depth -= 1
                        if depth == 0 { return Array(raw[next...position]) }
                    }
                    position += 1
                }
                return nil
            }
            return nil
        }
    }

    /// Whether `"usage"` appears followed by `:` and an object (not `null`).
    static func mentionsUsageObject(_ event: ByteBuffer) -> Bool {
        event.withUnsafeReadableBytes { raw in
            let key = usageKey
            guard raw.count > key.count else { return false }
            var index = 0
            while index + key.count < raw.count {
                if raw[index] == key[0], (0..<key.count).allSatisfy({ raw[index + $0] == key[$0] }) {
                    var next = index + key.count
                    while next < raw.count, raw[next] == 0x20 || raw[next] == 0x3A { next += 1 }
                    if next < raw.count, raw[next] == UInt8(ascii: "{") { return true }
                }
                index += 1
            }
            return false
        }
    }

    /// The event's data as JSON: its usage tokens, and whether it carries nothing but usage.
    static func usage(inEvent event: ByteBuffer) -> (Int, Bool)? {
        let text = String(buffer: event)
        let data = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .filter { $0.hasPrefix("data:") }
            .map { $0.dropFirst(5).drop { $0 == " " } }
            .joined(separator: "\n")
        guard let object = try? JSONValue.parse(Array(data.utf8)), let tokens = tokens(inUsage: object["usage"]) else { return nil }
        let usageOnly = object["choices"]?.array?.isEmpty ?? true
        return (tokens, usageOnly)
    }

    /// `total_tokens` (or prompt + completion) of a `usage` object.
    static func tokens(inUsage usage: JSONValue?) -> Int? {
        guard let usage, case .object = usage else { return nil }
        if let total = usage["total_tokens"]?.int { return total }
        let prompt = usage["prompt_tokens"]?.int
        let completion = usage["completion_tokens"]?.int
        if prompt == nil, completion == nil { return nil }
        return (prompt ?? 0) + (completion ?? 0)
    }
}
