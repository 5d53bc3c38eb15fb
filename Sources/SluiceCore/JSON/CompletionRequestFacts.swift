/// The facts of an OpenAI completion, chat or embeddings request that routing and token limits
/// need, read in one validating pass over the body: no tree, and no copies but the short strings
/// (`model`, `user`); the prompt's text is located, not copied.
public struct CompletionRequestFacts: Equatable, Sendable {
    public var model: String?
    public var user: String?
    /// A `messages` array, a `prompt` or an `input` was present.
    public var hasMessages = false
    public var hasPrompt = false
    public var hasInput = false
    public var messages = 0
    /// Bytes of prompt text as sent (escapes counted as written): messages' `content` strings
    /// and `text` parts, `prompt` and `input` strings.
    public var textBytes = 0
    /// Token ids given directly (`prompt` / `input` as integer arrays).
    public var tokenIDs = 0
    public var maxTokens: Int?
    public var maxCompletionTokens: Int?
    public var n: Int?
    public var stream = false
    public var hasStreamOptions = false
    public var includeUsage = false
    /// The prompt's strings in the order the model reads them, joined by "\n": each chat
    /// message's `content` string, or its parts' `text` strings (a content array without text
    /// is one empty string); without `messages`, `prompt`'s string or strings (none when it
    /// holds token ids). One span per string, so memory grows with messages, not text.
    public var promptStrings: [JSONStringSpan] = []
    /// How many of `promptStrings` make the conversation's opening: the messages through the
    /// first user message. Nil without a user message.
    public var openingStrings: Int?

    public init() {}
}

extension JSONFieldScanner {
    /// Reads `CompletionRequestFacts` from a JSON request body; throws when it is not a JSON
    /// object.
    public static func completionFacts(in bytes: UnsafeRawBufferPointer) throws(Failure) -> CompletionRequestFacts {
        var cursor = Cursor(bytes: bytes)
        var facts = CompletionRequestFacts()
        facts.promptStrings.reserveCapacity(8)  // one allocation for an ordinary chat
        var promptField: [JSONStringSpan]?
        try cursor.fields(depth: 1) { (cursor, key) throws(Failure) in
            let document = cursor.bytes
            func named(_ literal: StaticString) -> Bool { key.matches(literal, in: document) }
            let isString = cursor.peek() == UInt8(ascii: "\"")
            switch true {
            case named("model") where isString:
                facts.model = try cursor.string(decode: true)
            case named("user") where isString:
                facts.user = try cursor.string(decode: true)
            case named("messages") where cursor.peek() == UInt8(ascii: "["):
                facts.hasMessages = true
                try cursor.array(depth: 2) { (cursor) throws(Failure) in
                    guard cursor.peek() == UInt8(ascii: "{") else { return try cursor.value(depth: 3) }
                    facts.messages += 1
                    try cursor.message(depth: 3, into: &facts)
                }
            case named("prompt"), named("input"):
                let isPrompt = named("prompt")
                // Only a completion's prompt is routed on: an embeddings `input` is not located.
                var strings: [JSONStringSpan]? = isPrompt ? [] : nil
                if isPrompt { facts.hasPrompt = true } else { facts.hasInput = true }
                let (text, ids) = try cursor.promptSize(depth: 2, strings: &strings)
                facts.textBytes += text
                facts.tokenIDs += ids
                if isPrompt { promptField = strings }
            case named("max_tokens"): facts.maxTokens = try cursor.integerOrSkip(depth: 2)
            case named("max_completion_tokens"): facts.maxCompletionTokens = try cursor.integerOrSkip(depth: 2)
            case named("n"): facts.n = try cursor.integerOrSkip(depth: 2)
            case named("stream"): facts.stream = try cursor.boolOrSkip(depth: 2) ?? false
            case named("stream_options") where cursor.peek() == UInt8(ascii: "{"):
                facts.hasStreamOptions = true
                try cursor.fields(depth: 2) { (cursor, key) throws(Failure) in
                    if key.matches("include_usage", in: cursor.bytes) {
                        facts.includeUsage = try cursor.boolOrSkip(depth: 3) ?? false
                    } else {
                        try cursor.value(depth: 3)
                    }
                }
            default:
                try cursor.value(depth: 1)
            }
        }
        cursor.skipWhitespace()
        guard cursor.index == bytes.count else {
            throw Failure(offset: cursor.index, reason: "unexpected data after the JSON object")
        }
        if !facts.hasMessages { facts.promptStrings = promptField ?? [] }
        return facts
    }
}

extension JSONFieldScanner.Cursor {
    /// A string's contents located (quotes excluded), not decoded.
    mutating func stringSpan() throws(Failure) -> JSONStringSpan {
        let open = index
        let before = escapes
        _ = try string(decode: false)
        return JSONStringSpan(start: open + 1, end: index - 1, escaped: escapes != before)
    }

    /// One chat message: its text counted and located, and the opening marked after the
    /// first user message with text (its `role` may come before or after its `content`).
    mutating func message(depth: Int, into facts: inout CompletionRequestFacts) throws(Failure) {
        var hasText = false
        var isUser = false
        try fields(depth: depth) { (cursor, key) throws(Failure) in
            let document = cursor.bytes
            let isContent = key.matches("content", in: document)
            switch cursor.peek() {
            case UInt8(ascii: "\"") where key.matches("role", in: document):
                isUser = try cursor.stringMatches("user")
            case UInt8(ascii: "\"") where isContent:
                let span = try cursor.stringSpan()
                facts.textBytes += span.end - span.start
                facts.promptStrings.append(span)
                hasText = true
            case UInt8(ascii: "[") where isContent:
                let first = facts.promptStrings.count
                try cursor.array(depth: depth + 1) { (cursor) throws(Failure) in
                    guard cursor.peek() == UInt8(ascii: "{") else { return try cursor.value(depth: depth + 2) }
                    try cursor.fields(depth: depth + 2) { (cursor, key) throws(Failure) in
                        guard cursor.peek() == UInt8(ascii: "\""), key.matches("text", in: cursor.bytes) else { return try cursor.value(depth: depth + 3) }
                        let span = try cursor.stringSpan()
                        facts.textBytes += span.end - span.start
                        facts.promptStrings.append(span)
                    }
                }
                if facts.promptStrings.count == first {
                    facts.promptStrings.append(JSONStringSpan(start: cursor.index, end: cursor.index, escaped: false))
                }
                hasText = true
            default:
                try cursor.value(depth: depth + 1)
            }
        }
        if hasText, isUser, facts.openingStrings == nil { facts.openingStrings = facts.promptStrings.count }
    }

    /// A `prompt` / `input`: a string, or an array of strings, token ids, or arrays of ids.
    /// `strings` gets its strings, or nil when it holds anything else.
    mutating func promptSize(depth: Int, strings: inout [JSONStringSpan]?) throws(Failure) -> (text: Int, ids: Int) {
        if peek() == UInt8(ascii: "\"") {
            let span = try stringSpan()
            strings?.append(span)
            return (span.end - span.start, 0)
        }
        guard peek() == UInt8(ascii: "[") else {
            strings = nil
            try value(depth: depth)
            return (0, 0)
        }
        var text = 0
        var ids = 0
        try array(depth: depth + 1) { (cursor) throws(Failure) in
            switch cursor.peek() {
            case UInt8(ascii: "\""):
                let span = try cursor.stringSpan()
                strings?.append(span)
                text += span.end - span.start
            case UInt8(ascii: "["):
                strings = nil
                try cursor.array(depth: depth + 2) { (cursor) throws(Failure) in
                    ids += 1
                    try cursor.value(depth: depth + 3)
                }
            default:
                strings = nil
                ids += 1
                try cursor.value(depth: depth + 2)
            }
        }
        return (text, ids)
    }
}

extension CompletionRequestFacts {
    /// Feeds the prompt's text to `hasher` as the model reads it (strings decoded, joined by
    /// "\n"), read in place from `body` (the document these facts were read from), marking the
    /// opening; stops once the hasher has all it reads.
    public func feedPrompt(from body: UnsafeRawBufferPointer, into hasher: inout PromptHasher) {
        for (index, span) in promptStrings.enumerated() {
            if hasher.isFull { return }
            if index > 0 { hasher.feed(byte: 0x0A) }
            span.forEachDecodedChunk(in: body) { chunk in
                hasher.feed(chunk)
                return !hasher.isFull
            }
            if index + 1 == openingStrings { hasher.markOpening() }
        }
    }
}
