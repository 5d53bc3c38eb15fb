/// Validates a JSON document and reads what the gateway needs from it (`completionFacts`)
/// without building a tree. The gateway forwards the original bytes unchanged; this only reads.
///
/// Single pass over the bytes, no allocation except for the extracted values. Nesting is limited
/// (`maxDepth`) so a hostile body cannot exhaust the stack.
public struct JSONFieldScanner {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "\(reason) at byte \(offset)" }
    }

    public static let maxDepth = 128
}

extension JSONFieldScanner {
    struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var index = 0
        /// Backslash escapes read so far (tells a string that needs decoding from one that does not).
        var escapes = 0

        init(bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
        }

        func peek() -> UInt8? {
            index < bytes.count ? bytes[index] : nil
        }

        mutating func next() -> UInt8? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ byte: UInt8) throws(Failure) {
            guard next() == byte else {
                throw Failure(offset: index - 1, reason: "expected '\(Character(Unicode.Scalar(byte)))'")
            }
        }

        mutating func value(depth: Int) throws(Failure) {
            guard depth <= JSONFieldScanner.maxDepth else {
                throw Failure(offset: index, reason: "nesting deeper than \(JSONFieldScanner.maxDepth)")
            }
            guard let byte = peek() else { throw Failure(offset: index, reason: "unexpected end of input") }
            switch byte {
            case UInt8(ascii: "\""):
                _ = try string(decode: false)
            case UInt8(ascii: "{"):
                index += 1
                skipWhitespace()
                if peek() == UInt8(ascii: "}") { index += 1; return }
                while true {
                    skipWhitespace()
                    _ = try string(decode: false)
                    skipWhitespace()
                    try expect(UInt8(ascii: ":"))
                    skipWhitespace()
                    try value(depth: depth + 1)
                    skipWhitespace()
                    let next = next()
                    if next == UInt8(ascii: "}") { return }
                    guard next == UInt8(ascii: ",") else {
                        throw Failure(offset: index - 1, reason: "expected ',' or '}'")
                    }
                }
            case UInt8(ascii: "["):
                index += 1
                skipWhitespace()
                if peek() == UInt8(ascii: "]") { index += 1; return }
                while true {
                    skipWhitespace()
                    try value(depth: depth + 1)
                    skipWhitespace()
                    let next = next()
                    if next == UInt8(ascii: "]") { return }
                    guard next == UInt8(ascii: ",") else {
                        throw Failure(offset: index - 1, reason: "expected ',' or ']'")
                    }
                }
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                try number()
            default:
                throw Failure(offset: index, reason: "unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws(Failure) {
            let start = index
            for expected in UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount) {
                guard next() == expected else { throw Failure(offset: start, reason: "invalid literal") }
            }
        }

        mutating func digits() -> Int {
            let start = index
            while let byte = peek(), byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { index += 1 }
            return index - start
        }

        mutating func number() throws(Failure) {
            let start = index
            if peek() == UInt8(ascii: "-") { index += 1 }
            if peek() == UInt8(ascii: "0") {
                index += 1
            } else if digits() == 0 {
                throw Failure(offset: start, reason: "invalid number")
            }
            if peek() == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw Failure(offset: start, reason: "invalid number") }
            }
            if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
                index += 1
                if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw Failure(offset: start, reason: "invalid number") }
            }
        }

        /// Reads a string starting at the opening quote. Returns its decoded text when `decode`.
        mutating func string(decode: Bool) throws(Failure) -> String? {
            let start = index
            guard next() == UInt8(ascii: "\"") else { throw Failure(offset: start, reason: "expected a string") }
            // Decoded bytes are gathered only once an escape is met: a string without one (keys,
            // roles, model names) is made straight from the document.
            var scalars: [UInt8] = []
            var run = index
            while true {
                skipPlain()
                guard let byte = next() else { throw Failure(offset: start, reason: "unterminated string") }
                switch byte {
                case UInt8(ascii: "\""):
                    guard decode else { return nil }
                    let tail = UnsafeRawBufferPointer(rebasing: bytes[run..<(index - 1)])
                    // (JSON is UTF-8: a string that is not is refused, not repaired, so what
                    // the gateway re-encodes says what the client sent.)
                    let text: String?
                    if scalars.isEmpty {
                        text = String(validating: tail, as: UTF8.self)
                    } else {
                        scalars.append(contentsOf: tail)
                        text = String(validating: scalars, as: UTF8.self)
                    }
                    guard let text else { throw Failure(offset: start, reason: "a string that is not UTF-8") }
                    return text
                case UInt8(ascii: "\\"):
                    escapes += 1
                    if decode { scalars.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[run..<(index - 1)])) }
                    defer { run = index }
                    guard let escaped = next() else { throw Failure(offset: start, reason: "unterminated string") }
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"):
                        if decode { scalars.append(escaped) }
                    case UInt8(ascii: "b"): if decode { scalars.append(0x08) }
                    case UInt8(ascii: "f"): if decode { scalars.append(0x0C) }
                    case UInt8(ascii: "n"): if decode { scalars.append(0x0A) }
                    case UInt8(ascii: "r"): if decode { scalars.append(0x0D) }
                    case UInt8(ascii: "t"): if decode { scalars.append(0x09) }
                    case UInt8(ascii: "u"):
                        var code: UInt32 = try hex4()
                        if (0xD800..<0xDC00).contains(code), peek() == UInt8(ascii: "\\") {
                            index += 1
                            guard next() == UInt8(ascii: "u") else {
                                throw Failure(offset: index - 1, reason: "invalid surrogate pair")
                            }
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else {
                                throw Failure(offset: index - 1, reason: "invalid surrogate pair")
                            }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        if decode { JSONStringSpan.appendUTF8(code, to: &scalars) }
                    default:
                        throw Failure(offset: index - 1, reason: "invalid escape")
                    }
                case 0x00..<0x20:
                    throw Failure(offset: index - 1, reason: "control character in string")
                default:
                    break  // skipPlain stops only at the cases above
                }
            }
        }

        /// Moves past bytes that need no attention in a string (not a quote, a backslash or a
        /// control character), eight at a time: a prompt is mostly such bytes.
        @inline(__always)
        mutating func skipPlain() {
            while index + 8 <= bytes.count {
                let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                let special = JSONStringSpan.specialBytes(word)
                if special != 0 {
                    index += special.trailingZeroBitCount / 8
                    return
                }
                index += 8
            }
            while index < bytes.count, !JSONStringSpan.isSpecial(bytes[index]) { index += 1 }
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let byte = next() else { throw Failure(offset: index, reason: "invalid \\u escape") }
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw Failure(offset: index - 1, reason: "invalid \\u escape")
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
    }
}

extension JSONFieldScanner.Cursor {
    typealias Failure = JSONFieldScanner.Failure

    /// Walks an object, handing each key (decoded) with the cursor at its value; `member` must
    /// consume the value.
    mutating func object(depth: Int, _ member: (inout Self, String) throws(Failure) -> Void) throws(Failure) {
        try fields(depth: depth) { (cursor, key) throws(Failure) in try member(&cursor, key.text(in: cursor.bytes)) }
    }

    /// Walks an object as `object` does, handing each key as it stands in the document: matched
    /// against literals without making a `String` (a request has a dozen keys; making each one a
    /// `String` costs more than reading a short prompt).
    mutating func fields(depth: Int, _ member: (inout Self, JSONKey) throws(Failure) -> Void) throws(Failure) {
        guard depth <= JSONFieldScanner.maxDepth else { throw Failure(offset: index, reason: "nesting deeper than \(JSONFieldScanner.maxDepth)") }
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else { throw Failure(offset: index, reason: "expected a JSON object") }
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            let key = JSONKey(span: try stringSpan())
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            try member(&self, key)
            skipWhitespace()
            guard let next = next() else { throw Failure(offset: index, reason: "unexpected end of input") }
            if next == UInt8(ascii: "}") { return }
            guard next == UInt8(ascii: ",") else { throw Failure(offset: index - 1, reason: "expected ',' or '}'") }
        }
    }

    /// A string value compared with `literal` as `JSONKey` compares keys.
    mutating func stringMatches(_ literal: StaticString) throws(Failure) -> Bool {
        JSONKey(span: try stringSpan()).matches(literal, in: bytes)
    }

    /// Walks an array, with the cursor at each element; `element` must consume it.
    mutating func array(depth: Int, _ element: (inout Self) throws(Failure) -> Void) throws(Failure) {
        guard depth <= JSONFieldScanner.maxDepth else { throw Failure(offset: index, reason: "nesting deeper than \(JSONFieldScanner.maxDepth)") }
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            guard let next = next() else { throw Failure(offset: index, reason: "unexpected end of input") }
            if next == UInt8(ascii: "]") { return }
            guard next == UInt8(ascii: ",") else { throw Failure(offset: index - 1, reason: "expected ',' or ']'") }
        }
    }

    /// A number's value as an integer: exact for an integer literal, rounded up for one with a
    /// fraction or an exponent (`1e5`; a cost estimate errs high), clamped to ±2^62; nil (the
    /// value skipped) for anything that is not a number.
    mutating func integerOrSkip(depth: Int) throws(Failure) -> Int? {
        let start = index
        try value(depth: depth)
        guard index > start else { return nil }
        let first = bytes[start]
        guard first == UInt8(ascii: "-") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else { return nil }
        let integral = (start..<index).allSatisfy { bytes[$0] >= UInt8(ascii: "0") && bytes[$0] <= UInt8(ascii: "9") || $0 == start }
        guard integral, index - start <= 18 else {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            guard let value = Double(text) else { return nil }
            return Int(min(max(value.rounded(.up), -0x1p62), 0x1p62))
        }
        var result = 0
        for position in start..<index where position != start || first != UInt8(ascii: "-") {
            result = result * 10 + Int(bytes[position] - UInt8(ascii: "0"))
        }
        return first == UInt8(ascii: "-") ? -result : result
    }

    /// `true` or `false`; nil (the value skipped) for anything else.
    mutating func boolOrSkip(depth: Int) throws(Failure) -> Bool? {
        switch peek() {
        case UInt8(ascii: "t"):
            try literal("true")
            return true
        case UInt8(ascii: "f"):
            try literal("false")
            return false
        default:
            try value(depth: depth)
            return nil
        }
    }
}

/// An object key (or short string) located in a scanned document.
struct JSONKey {
    let span: JSONStringSpan

    /// Whether it reads `literal` (escapes decoded, so `"mod\u0065l"` is `model`).
    func matches(_ literal: StaticString, in document: UnsafeRawBufferPointer) -> Bool {
        let expected = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        guard span.escaped else {
            guard span.end - span.start == expected.count else { return false }
            for offset in 0..<expected.count where document[span.start + offset] != expected[offset] { return false }
            return true
        }
        return text(in: document).utf8.elementsEqual(expected)
    }

    func text(in document: UnsafeRawBufferPointer) -> String {
        guard span.escaped else { return String(decoding: UnsafeRawBufferPointer(rebasing: document[span.start..<span.end]), as: UTF8.self) }
        var bytes: [UInt8] = []
        span.forEachDecodedChunk(in: document) { chunk in
            bytes.append(contentsOf: chunk)
            return true
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
