import NIOCore
import SluiceConfig
import SluiceCore
import SluiceHTTP1

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

    /// What a `prefix` key counts a token as, in bytes: OpenAI's rule of thumb, as the token
    /// estimate (`RequestCost`) uses; the gateway has no tokenizer.
    static let bytesPerToken = 4

    /// From the head and the body, for pools whose sources include the body. `facts` reads the
    /// body (one validating pass, done at most once by the caller; nil when it is not a JSON
    /// object); the prompt is then hashed from the body's bytes in place. With `followPrompt`
    /// (cache-aware pools), a prompt key comes with the prompt's block chain, which the policy
    /// matches against what each replica was sent, and the key is the chain's anchor (the
    /// prompt's opening); otherwise the key covers the prompt's first `prefixTokens` tokens and
    /// no more is read. `streams` says whether the answer streams (its first byte then marks the
    /// end of prefill).
    static func fromBody(
        _ body: ByteBuffer, facts: () -> CompletionRequestFacts?, head: HTTP1Head?, sources: [RoutingKeySource], prefixTokens: Int,
        followPrompt: Bool = false
    ) -> (key: String?, prompt: PromptChain?, streams: Bool) {
        for source in sources {
            switch source {
            case .header, .tenant:
                if let head, case .key(let key?) = fromHead(head, sources: [source]) { return (key, nil, false) }
            case .bodyUser:
                if let user = facts()?.user, !user.isEmpty { return ("u:" + user, nil, false) }
            case .prefix:
                guard let facts = facts(), !facts.promptStrings.isEmpty else { continue }
                var hasher = followPrompt ? PromptHasher(expectedBytes: facts.textBytes) : PromptHasher(prefix: prefixTokens * bytesPerToken)
                body.withUnsafeReadableBytes { facts.feedPrompt(from: $0, into: &hasher) }
                guard followPrompt else { return ("p:" + String(hasher.prefixHash(), radix: 16), nil, false) }
                let chain = hasher.chain()
                return ("p:" + String(chain.anchor, radix: 16), chain, facts.stream)
            }
        }
        return (nil, nil, false)
    }
}
