/// Where a JSON string's contents lie in a document already validated (quotes excluded), so
/// it can be read later in place instead of being copied out while scanning.
public struct JSONStringSpan: Sendable, Equatable {
    public var start: Int
    public var end: Int
    /// It holds backslash escapes (read it through `forEachDecodedChunk`).
    public var escaped: Bool

    public init(start: Int, end: Int, escaped: Bool) {
        self.start = start
        self.end = end
        self.escaped = escaped
    }

    /// How many decoded bytes `forEachDecodedChunk` gathers before handing them on.
    static let chunkBytes = 4096

    /// The decoded string's UTF-8 in order, in chunks: an unescaped string is handed on in
    /// place; an escaped one is decoded into a fixed 4 KiB buffer, handed on each time it
    /// fills (a consumer called per run between escapes would pay its per-call cost every few
    /// dozen bytes in text full of `\n`). `body` returns whether it wants more. `document` must
    /// be the one scanned (its escapes are valid).
    public func forEachDecodedChunk(in document: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Bool) {
        let text = UnsafeRawBufferPointer(rebasing: document[start..<end])
        guard escaped else {
            _ = body(text)
            return
        }
        withUnsafeTemporaryAllocation(byteCount: Self.chunkBytes, alignment: 8) { scratch in
            var filled = 0
            var index = 0
            var run = 0
            while true {
                index = Self.nextBackslash(in: text, from: index)
                // The run before the escape: gathered, or (when it fills the chunk) handed on.
                var pending = UnsafeRawBufferPointer(rebasing: text[run..<index])
                while filled + pending.count > Self.chunkBytes {
                    let take = Self.chunkBytes - filled
                    scratch.baseAddress!.advanced(by: filled).copyMemory(from: pending.baseAddress!, byteCount: take)
                    guard body(UnsafeRawBufferPointer(scratch)) else { return }
                    filled = 0
                    pending = UnsafeRawBufferPointer(rebasing: pending[take...])
                }
                if !pending.isEmpty {
                    scratch.baseAddress!.advanced(by: filled).copyMemory(from: pending.baseAddress!, byteCount: pending.count)
                    filled += pending.count
                }
                guard index + 1 < text.count else { break }
                let escape = text[index + 1]
                index += 2
                var code: UInt32
                switch escape {
                case UInt8(ascii: "b"): code = 0x08
                case UInt8(ascii: "f"): code = 0x0C
                case UInt8(ascii: "n"): code = 0x0A
                case UInt8(ascii: "r"): code = 0x0D
                case UInt8(ascii: "t"): code = 0x09
                case UInt8(ascii: "u"):
                    code = Self.hex4(text, at: index)
                    index += 4
                    if (0xD800..<0xDC00).contains(code), index + 6 <= text.count, text[index] == UInt8(ascii: "\\"), text[index + 1] == UInt8(ascii: "u") {
                        let low = Self.hex4(text, at: index + 2)
                        index += 6
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                default: code = UInt32(escape)  // `"`, `\`, `/`
                }
                if filled + 4 > Self.chunkBytes {
                    guard body(UnsafeRawBufferPointer(rebasing: scratch[0..<filled])) else { return }
                    filled = 0
                }
                if code < 0x80 {
                    scratch[filled] = UInt8(code)
                    filled += 1
                } else {
                    filled += Self.encodeUTF8(code, into: UnsafeMutableRawBufferPointer(rebasing: scratch[filled...]))
                }
                run = index
            }
            if filled > 0 { _ = body(UnsafeRawBufferPointer(rebasing: scratch[0..<filled])) }
        }
    }

    private static func nextBackslash(in text: UnsafeRawBufferPointer, from start: Int) -> Int {
        var index = start
        let ones: UInt64 = 0x0101_0101_0101_0101
        while index + 8 <= text.count {
            let word = UInt64(littleEndian: text.loadUnaligned(fromByteOffset: index, as: UInt64.self)) ^ (ones &* 0x5C)
            let found = (word &- ones) & ~word & (ones &* 0x80)
            if found != 0 { return index + found.trailingZeroBitCount / 8 }
            index += 8
        }
        while index < text.count, text[index] != UInt8(ascii: "\\") { index += 1 }
        return index
    }

    /// Writes a code point's UTF-8 (a lone surrogate as U+FFFD, as a decoder reads it) and
    /// returns its length.
    static func encodeUTF8(_ code: UInt32, into bytes: UnsafeMutableRawBufferPointer) -> Int {
        let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
        var length = 0
        UTF8.encode(scalar) { unit in
            bytes[length] = unit
            length += 1
        }
        return length
    }

    /// A code point's UTF-8; a lone surrogate becomes U+FFFD, as a decoder would read it.
    static func appendUTF8(_ code: UInt32, to bytes: inout [UInt8]) {
        var utf8: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        let length = withUnsafeMutableBytes(of: &utf8) { encodeUTF8(code, into: $0) }
        withUnsafeBytes(of: utf8) { bytes.append(contentsOf: $0[0..<length]) }
    }

    private static func hex4(_ text: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for position in offset..<min(offset + 4, text.count) {
            let byte = text[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: digit = byte &- UInt8(ascii: "A") &+ 10
            }
            value = value << 4 | UInt32(digit & 0xF)
        }
        return value
    }

    /// Bytes a string scan must stop at: `"`, `\` and control characters.
    @inline(__always)
    static func isSpecial(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20
    }

    /// The high bit set in every byte of `word` (little-endian) that `isSpecial`, exact for the
    /// lowest such byte (borrows may mark bytes above it): the classic has-zero-byte test, for
    /// `"` and `\` after an XOR and for bytes below 0x20 directly.
    @inline(__always)
    static func specialBytes(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let zeroQuote = (quote &- ones) & ~quote
        let zeroBackslash = (backslash &- ones) & ~backslash
        let control = (word &- ones &* 0x20) & ~word
        return (zeroQuote | zeroBackslash | control) & (ones &* 0x80)
    }
}
