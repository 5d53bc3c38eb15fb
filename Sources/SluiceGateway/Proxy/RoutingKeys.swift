import NIOCore
import SluiceConfig
import SluiceCore

/// Finds a request's routing key from the pool's key sources, in order; the first present wins.
enum RoutingKeys {
    enum Outcome {
        case key(String?)
        /// A body source comes before any present head source: the body must be read.
        case needsBody
    }

    /// From the head alone: a header, or the API key.
    static func fromHead(_ head: HTTP1Head, sources: [RoutingKeySource]) -> Outcome {
        for source in sources {
            switch source {
            case .header(let name):
                if let field = head.fields.first(where: { field in
                    head.bytes.withUnsafeReadableBytes { HTTP1Bytes.equalsLowercase($0[field.name], runtimeName: name) }
                }), !field.value.isEmpty {
                    return .key("h:" + head.value(field))
                }
            case .tenant:
                if let field = head.first("authorization") {
                    let value = head.value(field)
                    if value.lowercased().hasPrefix("bearer "), value.count > 7 {
                        return .key("t:" + value.dropFirst(7).trimmingCharacters(in: .whitespaces))
                    }
                }
            case .bodyUser, .prefix:
                return .needsBody
            }
        }
        return .key(nil)
    }

    /// From the head and the body (JSON), for pools whose sources include the body. With
    /// `followPrompt` (cache-aware pools), a prompt-prefix key comes with the prompt's block
    /// chain, which the policy follows past the prefix.
    static func fromBody(
        _ body: ByteBuffer, head: HTTP1Head?, sources: [RoutingKeySource], prefixTokens: Int, followPrompt: Bool = false
    ) -> (key: String?, prompt: PromptChain?) {
        // Parsed at most once, and only if a body source is reached.
        var object: JSONValue??
        func json() -> JSONValue? {
            if object == nil { object = .some(try? JSONValue.parse(Array(body.readableBytesView))) }
            return object!
        }
        for source in sources {
            switch source {
            case .header, .tenant:
                if let head, case .key(let key?) = fromHead(head, sources: [source]) { return (key, nil) }
            case .bodyUser:
                if let user = json()?["user"]?.string, !user.isEmpty { return ("u:" + user, nil) }
            case .prefix:
                if let text = promptText(json()) {
                    return ("p:" + prefixKey(text, tokens: prefixTokens), followPrompt ? PromptChain(text) : nil)
                }
            }
        }
        return (nil, nil)
    }

    /// The prompt as the model reads it: chat messages' text joined in order, or `prompt`.
    static func promptText(_ object: JSONValue?) -> String? {
        guard let object else { return nil }
        if let messages = object["messages"]?.array {
            let parts = messages.compactMap { message -> String? in
                if let text = message["content"]?.string { return text }
                if let parts = message["content"]?.array {
                    return parts.compactMap { $0["text"]?.string }.joined(separator: "\n")
                }
                return nil
            }
            return parts.isEmpty ? nil : parts.joined(separator: "\n")
        }
        if let prompt = object["prompt"]?.string { return prompt }
        if let prompts = object["prompt"]?.array {
            let texts = prompts.compactMap(\.string)
            return texts.count == prompts.count ? texts.joined(separator: "\n") : nil
        }
        return nil
    }

    /// A hash of the first `tokens` tokens (the simulator's tokenizer: whitespace, then
    /// 4-character pieces): prompts that share that prefix share the key.
    static func prefixKey(_ text: String, tokens: Int) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for token in SimTokenizer.tokens(text).prefix(tokens) {
            withUnsafeBytes(of: token.littleEndian) { hash = SimTokenizer.fnv1a($0, seed: hash) }
        }
        return String(hash, radix: 16)
    }
}
