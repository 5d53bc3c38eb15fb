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
        // 16 bytes of slack: a whole word is stored before the backslash in it is found.
        withUnsafeTemporaryAllocation(byteCount: Self.chunkBytes + 16, alignment: 16) { scratch in
            let out = scratch.baseAddress!
            var filled = 0
            var index = 0
            while index < text.count {
                if filled + 16 > Self.chunkBytes {
                    guard body(UnsafeRawBufferPointer(rebasing: scratch[0..<filled])) else { return }
                    filled = 0
                }
                // Copied while looking for the next backslash, eight bytes at a time.
                if index + 8 <= text.count {
                    let word = text.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    out.storeBytes(of: word, toByteOffset: filled, as: UInt64.self)
                    let backslash = Self.zeroBytes(UInt64(littleEndian: word) ^ 0x5C5C_5C5C_5C5C_5C5C)
                    guard backslash != 0 else {
                        filled += 8
                        index += 8
                        continue
                    }
                    let plain = backslash.trailingZeroBitCount / 8
                    filled += plain
                    index += plain
                } else if text[index] != UInt8(ascii: "\\") {
                    out.storeBytes(of: text[index], toByteOffset: filled, as: UInt8.self)
                    filled += 1
                    index += 1
                    continue
                }
                // At a backslash (valid: the document was scanned).
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
                if code < 0x80 {
                    out.storeBytes(of: UInt8(code), toByteOffset: filled, as: UInt8.self)
                    filled += 1
                } else {
                    filled += Self.encodeUTF8(code, into: UnsafeMutableRawBufferPointer(rebasing: scratch[filled...]))
                }
            }
            if filled > 0 { _ = body(UnsafeRawBufferPointer(rebasing: scratch[0..<filled])) }
        }
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
        zeroBytes(word ^ 0x2222_2222_2222_2222) | zeroBytes(word ^ 0x5C5C_5C5C_5C5C_5C5C) | ((word &- 0x2020_2020_2020_2020) & ~word & 0x8080_8080_8080_8080)
    }

    /// The high bit set in every zero byte of `word`, exact for the lowest one.
    @inline(__always)
    static func zeroBytes(_ word: UInt64) -> UInt64 {
        (word &- 0x0101_0101_0101_0101) & ~word & 0x8080_8080_8080_8080
    }
}
