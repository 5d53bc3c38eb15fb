import Foundation
import NIOCore

/// What a request asks of a model, read from its JSON body for token limits: the model, an
/// estimate of its tokens, and whether it streams (and asked for the usage chunk itself).
///
/// The prompt estimate is OpenAI's rule of thumb, one token per 4 bytes of text (token-id
/// inputs count exactly); the settlement with the replica's `usage` corrects it, so only the
/// admission decision rests on the estimate.
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

    /// Reads `body`; nil when it is not a JSON object.
    static func read(_ body: ByteBuffer, defaultMaxTokens: Int) -> RequestCost? {
        guard let object = body.withUnsafeReadableBytes({ (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any] }) else {
            return nil
        }
        var prompt = 0
        var completion = false
        if let messages = object["messages"] as? [[String: Any]] {
            completion = true
            for message in messages {
                if let text = message["content"] as? String {
                    prompt += textTokens(text)
                } else if let parts = message["content"] as? [[String: Any]] {
                    for part in parts { if let text = part["text"] as? String { prompt += textTokens(text) } }
                }
                // Role and framing tokens, as chat templates add (about 4 per message).
                prompt += 4
            }
        } else if let value = object["prompt"] {
            completion = true
            prompt = inputTokens(value)
        } else if let value = object["input"] {
            prompt = inputTokens(value)
        }
        var completionTokens = 0
        if completion {
            let limit = integer(object["max_completion_tokens"]) ?? integer(object["max_tokens"]) ?? defaultMaxTokens
            completionTokens = max(0, limit) * max(1, integer(object["n"]) ?? 1)
        }
        let options = object["stream_options"] as? [String: Any]
        return RequestCost(
            model: object["model"] as? String, promptTokens: prompt, completionTokens: completionTokens,
            stream: (object["stream"] as? Bool) ?? false,
            clientAskedUsage: (options?["include_usage"] as? Bool) ?? false,
            hasStreamOptions: object["stream_options"] != nil)
    }

    static func textTokens(_ text: String) -> Int {
        (text.utf8.count + 3) / 4
    }

    /// A prompt or embeddings input: a string, a list of strings, token ids, or lists of ids.
    static func inputTokens(_ value: Any) -> Int {
        if let text = value as? String { return textTokens(text) }
        if let items = value as? [Any] {
            return items.reduce(0) { sum, item in
                if let text = item as? String { return sum + textTokens(text) }
                if let ids = item as? [Any] { return sum + ids.count }
                return sum + 1  // one token id
            }
        }
        return 0
    }

    static func integer(_ value: Any?) -> Int? {
        // JSONSerialization gives NSNumbers, and a boolean one casts to Int too: it is told
        // apart by its encoding ("c").
        guard let value else { return nil }
        if let number = value as? NSNumber, String(cString: number.objCType) == "c" { return nil }
        if let number = value as? Int { return number }
        if let number = value as? Double, number.isFinite, abs(number) < 1e15 { return Int(number) }
        return nil
    }

    /// `body` asking the replica for the usage chunk of a stream (`stream_options.include_usage`),
    /// so a streamed request can be settled: the field is inserted after the opening brace and
    /// the rest forwarded byte for byte; a body with its own `stream_options` is re-encoded with
    /// the flag set (duplicate keys would leave the choice to the replica's parser).
    static func askingUsage(_ body: ByteBuffer, hasStreamOptions: Bool, allocator: ByteBufferAllocator) -> ByteBuffer? {
        if !hasStreamOptions {
            guard let open = body.readableBytesView.firstIndex(of: UInt8(ascii: "{")) else { return nil }
            var out = allocator.buffer(capacity: body.readableBytes + 40)
            out.writeImmutableBuffer(body.getSlice(at: body.readerIndex, length: open - body.readerIndex + 1)!)
            out.writeStaticString(#""stream_options":{"include_usage":true},"#)
            out.writeImmutableBuffer(body.getSlice(at: open + 1, length: body.writerIndex - open - 1)!)
            return out
        }
        guard var object = body.withUnsafeReadableBytes({ (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any] }),
              var options = object["stream_options"] as? [String: Any]
        else { return nil }
        options["include_usage"] = true
        object["stream_options"] = options
        guard let data = try? JSONSerialization.data(withJSONObject: object) else { return nil }
        var out = allocator.buffer(capacity: data.count)
        out.writeBytes(data)
        return out
    }
}
