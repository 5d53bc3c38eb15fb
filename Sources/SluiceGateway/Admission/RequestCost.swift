import NIOCore
import SluiceCore

/// What a request asks of a model, read from its JSON body for token limits: the model, an
/// estimate of its tokens, and whether it streams (and asked for the usage chunk itself).
///
/// The prompt estimate is OpenAI's rule of thumb, one token per 4 bytes of text as sent
/// (token-id inputs count exactly); the settlement with the replica's `usage` corrects it, so
/// only the admission decision rests on the estimate.
struct RequestCost: Equatable {
    var model: String?
    var promptTokens: Int
    /// `n × (max_completion_tokens ?? max_tokens ?? default)` for completions; 0 otherwise.
    var completionTokens: Int
    var stream: Bool
    /// The client set `stream_options.include_usage: true`.
    var clientAskedUsage: Bool
    /// The body has a `stream_options` object (so asking for usage means rewriting it).
    var hasStreamOptions: Bool

    var tokens: Int { promptTokens + completionTokens }

    /// `body` asking the replica for the usage chunk of a stream (`stream_options.include_usage`),
    /// so a streamed request can be settled: the field is inserted after the opening brace and
    /// the rest forwarded byte for byte; a body with its own `stream_options` is re-encoded with
    /// the flag set (duplicate keys would leave the choice to the replica's parser), through
    /// `JSONValue`, so nothing else in it changes.
    static func askingUsage(_ body: ByteBuffer, hasStreamOptions: Bool, allocator: ByteBufferAllocator) -> ByteBuffer? {
        if !hasStreamOptions {
            guard let open = body.readableBytesView.firstIndex(of: UInt8(ascii: "{")) else { return nil }
            var out = allocator.buffer(capacity: body.readableBytes + 40)
            out.writeImmutableBuffer(body.getSlice(at: body.readerIndex, length: open - body.readerIndex + 1)!)
            out.writeStaticString(#""stream_options":{"include_usage":true},"#)
            out.writeImmutableBuffer(body.getSlice(at: open + 1, length: body.writerIndex - open - 1)!)
            return out
        }
        guard let object = try? JSONValue.parse(Array(body.readableBytesView)),
              let options = object["stream_options"], case .object = options
        else { return nil }
        // JSONValue keeps every other key's order and every number's text as sent.
        let data = object.setting("stream_options", to: options.setting("include_usage", to: .bool(true))).serialized
        var out = allocator.buffer(capacity: data.count)
        out.writeBytes(data)
        return out
    }
}

extension RequestCost {
    /// The cost of a request from its body's facts (`JSONFieldScanner.completionFacts`). Numbers
    /// are clamped, so no request can make the arithmetic overflow.
    init(_ facts: CompletionRequestFacts, defaultMaxTokens: Int) {
        // One token per 4 bytes of text; 4 more per chat message (role and template framing).
        let prompt = (facts.textBytes + 3) / 4 + facts.tokenIDs + 4 * facts.messages
        var completion = 0
        if facts.hasMessages || facts.hasPrompt {
            let limit = min(max(0, facts.maxCompletionTokens ?? facts.maxTokens ?? defaultMaxTokens), 1 << 31)
            completion = limit * min(max(1, facts.n ?? 1), 1 << 10)
        }
        self.init(
            model: facts.model, promptTokens: prompt, completionTokens: completion, stream: facts.stream,
            clientAskedUsage: facts.includeUsage, hasStreamOptions: facts.hasStreamOptions)
    }
}
