import Testing
@testable import SluiceCore

/// Reading a prompt from a request body's bytes: the validating scan locates the prompt's
/// strings, and the hasher reads them in place. Checked against a parser (`JSONValue`) on
/// generated bodies full of escapes, and for independence from how the bytes arrive.
@Suite struct PromptScanTests {
    /// Characters a prompt may hold, the awkward ones over-represented.
    static let alphabet: [Unicode.Scalar] = ["a", "b", " ", "\n", "\t", "\"", "\\", "/", "\u{01}", "\u{1F}", "é", "€", "😀", "z", "."]

    /// A JSON string literal for `text`, each character written plainly or as an escape
    /// (short or `\u`, astral characters as surrogate pairs), as the generator chooses.
    static func literal(_ text: String, _ generator: inout SplitMix64) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            let mustEscape = scalar == "\"" || scalar == "\\" || scalar.value < 0x20
            switch (mustEscape, generator.next() % 3) {
            case (_, 0):
                if scalar.value > 0xFFFF {
                    let value = scalar.value - 0x10000
                    out += hex(0xD800 + (value >> 10)) + hex(0xDC00 + (value & 0x3FF))
                } else {
                    out += hex(scalar.value)
                }
            case (true, _):
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                default: out += hex(scalar.value)
                }
            default:
                out += scalar == "/" && generator.next() % 2 == 0 ? "\\/" : String(scalar)
            }
        }
        return out + "\""
    }

    static func facts(_ bytes: [UInt8]) throws(JSONFieldScanner.Failure) -> CompletionRequestFacts {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(JSONFieldScanner.Failure) -> CompletionRequestFacts in try JSONFieldScanner.completionFacts(in: raw) }
        }.get()
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: value % 2 == 0)
        return "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
    }

    static func text(_ generator: inout SplitMix64, maxLength: Int) -> String {
        let length = Int(generator.next() % UInt64(maxLength + 1))
        return String(String.UnicodeScalarView((0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }))
    }

    /// The prompt as the gateway read it before, from a parsed tree: messages' text joined by
    /// newlines (parts' text joined too), the opening through the first user message; or
    /// `prompt`'s string(s).
    static func reference(_ object: JSONValue) -> (text: String, opening: Int?)? {
        if let messages = object["messages"]?.array {
            var parts: [String] = []
            var opening: Int?
            var length = 0
            for message in messages {
                let text: String
                if let content = message["content"]?.string {
                    text = content
                } else if let content = message["content"]?.array {
                    text = content.compactMap { $0["text"]?.string }.joined(separator: "\n")
                } else {
                    continue
                }
                length += (parts.isEmpty ? 0 : 1) + text.utf8.count
                parts.append(text)
                if opening == nil, message["role"]?.string == "user" { opening = length }
            }
            return parts.isEmpty ? nil : (parts.joined(separator: "\n"), opening)
        }
        if let prompt = object["prompt"]?.string { return (prompt, nil) }
        if let prompts = object["prompt"]?.array, !prompts.isEmpty, prompts.allSatisfy({ $0.string != nil }) {
            return (prompts.compactMap(\.string).joined(separator: "\n"), nil)
        }
        return nil
    }

    /// A chat or completion body: messages with string, part-array or null content and roles in
    /// any order, or a prompt; whitespace between tokens as the generator chooses.
    static func body(_ generator: inout SplitMix64) -> String {
        func space() -> String { ["", " ", "\n  ", "\t"][Int(generator.next() % 4)] }
        var members: [String] = [#""model""# + space() + ":" + space() + literal("m-\(generator.next() % 9)", &generator)]
        if generator.next() % 4 == 0 {
            members.append(#""prompt":"# + literal(text(&generator, maxLength: 300), &generator))
        } else {
            var messages: [String] = []
            for _ in 0..<Int(generator.next() % 6) {
                let role = #""role":"# + space() + literal(["system", "user", "assistant"][Int(generator.next() % 3)], &generator)
                let content: String
                switch generator.next() % 5 {
                case 0: content = "null"
                case 1:
                    let parts = (0..<Int(generator.next() % 3)).map { _ in
                        generator.next() % 4 == 0 ? #"{"type":"image_url","image_url":{"url":"x"}}"#
                            : #"{"type":"text","text":"# + literal(text(&generator, maxLength: 200), &generator) + "}"
                    }
                    content = "[" + parts.joined(separator: "," + space()) + "]"
                default: content = literal(text(&generator, maxLength: 400), &generator)
                }
                let fields = generator.next() % 2 == 0 ? [role, #""content":"# + content] : [#""content":"# + content, role]
                messages.append("{" + space() + fields.joined(separator: "," + space()) + space() + "}")
            }
            members.append(#""messages":["# + messages.joined(separator: ",") + "]")
        }
        if generator.next() % 2 == 0 { members.append(#""user":"# + literal(text(&generator, maxLength: 12), &generator)) }
        if generator.next() % 2 == 0 { members.append(#""stream":true"#) }
        return "{" + space() + members.shuffled(using: &generator).joined(separator: "," + space()) + space() + "}"
    }

    @Test func thePromptReadFromTheBytesIsThePromptAParserReads() throws {
        var generator = SplitMix64(seed: 21)
        var escapedStrings = 0
        for _ in 0..<2_000 {
            let body = Self.body(&generator)
            let bytes = Array(body.utf8)
            let object = try JSONValue.parse(bytes)
            let facts = try Self.facts(bytes)
            escapedStrings += facts.promptStrings.filter(\.escaped).count
            #expect(facts.model == object["model"]?.string && facts.user == object["user"]?.string, "\(body)")
            #expect(facts.stream == (object["stream"] == .bool(true)))
            guard let (text, opening) = Self.reference(object) else {
                #expect(facts.promptStrings.isEmpty, "\(body)")
                continue
            }
            var hasher = PromptHasher()
            bytes.withUnsafeBytes { facts.feedPrompt(from: $0, into: &hasher) }
            #expect(hasher.chain() == PromptChain(text, anchorLength: opening), "\(body)")
            // A `prefix` key reads only its first bytes, and agrees with the text's.
            var prefix = PromptHasher(prefix: 64)
            bytes.withUnsafeBytes { facts.feedPrompt(from: $0, into: &prefix) }
            var direct = PromptHasher(prefix: 64)
            Array(text.utf8).withUnsafeBytes { direct.feed($0) }
            #expect(prefix.prefixHash() == direct.prefixHash() && prefix.count == min(64, text.utf8.count))
        }
        #expect(escapedStrings > 1_000)
    }

    @Test func theChainDependsOnTheBytesNotOnHowTheyArrive() {
        var generator = SplitMix64(seed: 5)
        for round in 0..<200 {
            let length = Int(generator.next() % 40_000)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let opening = Int(generator.next() % UInt64(length + 1))
            var whole = PromptHasher()
            bytes.withUnsafeBytes { raw in
                whole.feed(UnsafeRawBufferPointer(rebasing: raw[..<opening]))
                whole.markOpening()
                whole.feed(UnsafeRawBufferPointer(rebasing: raw[opening...]))
            }
            var pieces = PromptHasher()
            var offset = 0
            while offset < length {
                // Pieces from one byte to several blocks, crossing stripes and blocks anywhere.
                let size = min(length - offset, Int(generator.next() % (round % 2 == 0 ? 40 : 5_000)) + 1)
                if offset < opening, offset + size > opening {
                    bytes.withUnsafeBytes { pieces.feed(UnsafeRawBufferPointer(rebasing: $0[offset..<opening])) }
                    pieces.markOpening()
                    bytes.withUnsafeBytes { pieces.feed(UnsafeRawBufferPointer(rebasing: $0[opening..<(offset + size)])) }
                } else {
                    if offset == opening { pieces.markOpening() }
                    bytes.withUnsafeBytes { pieces.feed(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + size)])) }
                }
                offset += size
            }
            if opening == length { pieces.markOpening() }
            #expect(whole.chain() == pieces.chain())
            #expect(whole.chain().blocks.count == PromptChain.blockCount(forBytes: length))
        }
    }

    @Test func theStringScanStopsAtTheFirstQuoteBackslashOrControlByte() {
        var generator = SplitMix64(seed: 9)
        let interesting: [UInt8] = [0x22, 0x5C, 0x00, 0x1F, 0x20, 0x21, 0x5B, 0x5D, 0x7F, 0x80, 0xA2, 0xDC, 0xFF, 0x61]
        for _ in 0..<100_000 {
            let bytes = (0..<8).map { _ in generator.next() % 3 == 0 ? UInt8(truncatingIfNeeded: generator.next()) : interesting[Int(generator.next() % UInt64(interesting.count))] }
            let word = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            let mask = JSONStringSpan.specialBytes(word)
            let first = bytes.firstIndex(where: JSONStringSpan.isSpecial) ?? 8
            #expect((mask == 0 ? 8 : mask.trailingZeroBitCount / 8) == first, "\(bytes)")
        }
    }

    @Test func aFaultAnywhereInALongStringIsRefused() {
        let prose = String(repeating: "plain words and more plain words ", count: 40)
        for position in stride(from: 0, to: prose.utf8.count, by: 7) {
            var text = Array(prose.utf8)
            for fault: [UInt8] in [[0x0A], [0x01], [0x5C, 0x78], [0x5C, 0x75, 0x31, 0x32]] {
                text.replaceSubrange(position..<(position + 1), with: fault)
                let body = Array(#"{"messages":[{"role":"user","content":""#.utf8) + text + Array(#""}]}"#.utf8)
                #expect(throws: JSONFieldScanner.Failure.self) { try Self.facts(body) }
                text = Array(prose.utf8)
            }
            // Cut short inside the string.
            let cut = Array(#"{"prompt":""#.utf8) + Array(prose.utf8.prefix(position))
            #expect(throws: JSONFieldScanner.Failure.self) { try Self.facts(cut) }
        }
    }
}
