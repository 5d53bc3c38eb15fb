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
    /// `followPrompt` (cache-aware pools), a prompt key comes with the prompt's block chain,
    /// which the policy matches against what each replica was sent, and the key is the chain's
    /// anchor (the prompt's opening) instead of its first `prefixTokens` tokens; `streams` says
    /// whether the answer streams (its first byte then marks the end of prefill).
    static func fromBody(
        _ body: ByteBuffer, head: HTTP1Head?, sources: [RoutingKeySource], prefixTokens: Int, followPrompt: Bool = false
    ) -> (key: String?, prompt: PromptChain?, streams: Bool) {
        // Parsed at most once, and only if a body source is reached.
        var object: JSONValue??
        func json() -> JSONValue? {
            if object == nil { object = .some(try? JSONValue.parse(Array(body.readableBytesView))) }
            return object!
        }
        for source in sources {
            switch source {
            case .header, .tenant:
                if let head, case .key(let key?) = fromHead(head, sources: [source]) { return (key, nil, false) }
            case .bodyUser:
                if let user = json()?["user"]?.string, !user.isEmpty { return ("u:" + user, nil, false) }
            case .prefix:
                if let (text, opening) = prompt(json()) {
                    guard followPrompt else { return ("p:" + prefixKey(text, tokens: prefixTokens), nil, false) }
                    let chain = PromptChain(text, anchorLength: opening)
                    let streams = json()?["stream"] == .bool(true)
                    return ("p:" + String(chain.anchor, radix: 16), chain, streams)
                }
            }
        }
        return (nil, nil, false)
    }

    /// The prompt as the model reads it: chat messages' text joined in order, or `prompt`.
    static func promptText(_ object: JSONValue?) -> String? {
        prompt(object)?.text
    }

    /// The prompt's text, and for chat the length in bytes of its opening: the messages
    /// through the first user message (the system prompt and the first question or document),
    /// which every later turn of the conversation repeats.
    static func prompt(_ object: JSONValue?) -> (text: String, opening: Int?)? {
        guard let object else { return nil }
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
        if let prompts = object["prompt"]?.array {
            let texts = prompts.compactMap(\.string)
            return texts.count == prompts.count ? (texts.joined(separator: "\n"), nil) : nil
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
