import Foundation

/// What the simulator answers, decided from the request alone (no I/O), so it is easy to test.
enum ReplicaReply {
    case json(status: Int, body: String, delay: Duration)
    /// Server-sent events: the first after `firstDelay`, each next after `interval`.
    case stream(events: [String], firstDelay: Duration, interval: Duration)
    case text(status: Int, contentType: String, body: String)
    case echo
}

/// The OpenAI-compatible surface of the simulator: chat completions, completions, embeddings,
/// models. Output is deterministic in the prompt (see `SimulatedText`).
struct ReplicaAPI {
    let configuration: ReplicaConfiguration

    func reply(method: String, path: Substring, body: [UInt8], metrics: () -> String) -> ReplicaReply {
        switch (method, path) {
        case ("GET", "/health"), ("GET", "/v2/health/ready"), ("GET", "/v2/health/live"):
            return .json(status: 200, body: "{\"status\":\"ok\"}", delay: .zero)
        case ("GET", "/v1/models"):
            let model = "{\"id\":\(quoted(configuration.model)),\"object\":\"model\",\"created\":0,\"owned_by\":\"sluice-replica\"}"
            return .json(status: 200, body: "{\"object\":\"list\",\"data\":[\(model)]}", delay: .zero)
        case ("GET", "/metrics"):
            return .text(status: 200, contentType: "text/plain; version=0.0.4", body: metrics())
        case ("POST", "/v1/chat/completions"):
            return completion(body: body, chat: true)
        case ("POST", "/v1/completions"):
            return completion(body: body, chat: false)
        case ("POST", "/v1/embeddings"):
            return embeddings(body: body)
        case ("POST", "/v1/echo"):
            return .echo
        default:
            return error(404, "no route \(method) \(path)", code: "not_found")
        }
    }

    private func error(_ status: Int, _ message: String, code: String) -> ReplicaReply {
        .json(status: status, body: "{\"error\":{\"message\":\(quoted(message)),\"type\":\"invalid_request_error\",\"code\":\(quoted(code))}}", delay: .zero)
    }

    private func parse(_ body: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    private func completion(body: [UInt8], chat: Bool) -> ReplicaReply {
        guard let request = parse(body) else { return error(400, "body is not a JSON object", code: "invalid_json") }
        let prompt: String
        if chat {
            guard let messages = request["messages"] as? [[String: Any]] else {
                return error(400, "messages is required", code: "invalid_request")
            }
            prompt = messages.compactMap { $0["content"] as? String }.joined(separator: "\n")
        } else {
            guard let text = (request["prompt"] as? String) ?? (request["prompt"] as? [String])?.joined(separator: "\n") else {
                return error(400, "prompt is required", code: "invalid_request")
            }
            prompt = text
        }
        let model = (request["model"] as? String) ?? configuration.model
        let maxTokens = max(1, min((request["max_tokens"] as? Int) ?? (request["max_completion_tokens"] as? Int) ?? configuration.defaultMaxTokens, 4096))
        let promptTokens = SimulatedText.tokenCount(prompt)
        let hash = SimulatedText.stableHash(prompt)
        let tokens = (0..<maxTokens).map { SimulatedText.token($0, promptHash: hash) }
        let id = (chat ? "chatcmpl-" : "cmpl-") + String(hash &+ UInt64(promptTokens), radix: 16)
        let usage = "{\"prompt_tokens\":\(promptTokens),\"completion_tokens\":\(maxTokens),\"total_tokens\":\(promptTokens + maxTokens)}"
        let object = chat ? "chat.completion" : "text_completion"
        let stream = (request["stream"] as? Bool) ?? false
        if !stream {
            let text = tokens.joined()
            let choice = chat
                ? "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\(quoted(text))},\"finish_reason\":\"length\"}"
                : "{\"index\":0,\"text\":\(quoted(text)),\"finish_reason\":\"length\"}"
            let body = "{\"id\":\"\(id)\",\"object\":\"\(object)\",\"created\":0,\"model\":\(quoted(model)),\"choices\":[\(choice)],\"usage\":\(usage)}"
            let delay = configuration.timeToFirstToken + configuration.interTokenDelay * (maxTokens - 1)
            return .json(status: 200, body: body, delay: delay)
        }
        let includeUsage = ((request["stream_options"] as? [String: Any])?["include_usage"] as? Bool) ?? false
        let chunkObject = chat ? "chat.completion.chunk" : "text_completion"
        func chunk(_ choice: String, usage: String = "null") -> String {
            "{\"id\":\"\(id)\",\"object\":\"\(chunkObject)\",\"created\":0,\"model\":\(quoted(model)),\"choices\":[\(choice)]\(includeUsage ? ",\"usage\":\(usage)" : "")}"
        }
        var events: [String] = []
        for (index, token) in tokens.enumerated() {
            let last = index == tokens.count - 1
            let finish = last ? "\"length\"" : "null"
            if chat {
                let delta = index == 0 ? "{\"role\":\"assistant\",\"content\":\(quoted(token))}" : "{\"content\":\(quoted(token))}"
                events.append(chunk("{\"index\":0,\"delta\":\(delta),\"finish_reason\":\(finish)}"))
            } else {
                events.append(chunk("{\"index\":0,\"text\":\(quoted(token)),\"finish_reason\":\(finish)}"))
            }
        }
        if includeUsage {
            events[events.count - 1] += "\n\ndata: " + chunk("", usage: usage)
        }
        events[events.count - 1] += "\n\ndata: [DONE]"
        return .stream(events: events, firstDelay: configuration.timeToFirstToken, interval: configuration.interTokenDelay)
    }

    private func embeddings(body: [UInt8]) -> ReplicaReply {
        guard let request = parse(body) else { return error(400, "body is not a JSON object", code: "invalid_json") }
        let inputs: [String]
        switch request["input"] {
        case let text as String: inputs = [text]
        case let texts as [String]: inputs = texts
        case let tokens as [Int]: inputs = [tokens.map(String.init).joined(separator: " ")]
        case let lists as [[Int]]: inputs = lists.map { $0.map(String.init).joined(separator: " ") }
        default: return error(400, "input must be a string, a list of strings or token arrays", code: "invalid_request")
        }
        guard !inputs.isEmpty else { return error(400, "input must not be empty", code: "invalid_request") }
        let model = (request["model"] as? String) ?? configuration.model
        let base64 = (request["encoding_format"] as? String) == "base64"
        let dimensions = (request["dimensions"] as? Int).map { max(1, min($0, 4096)) } ?? configuration.embeddingDimensions
        var items: [String] = []
        var promptTokens = 0
        for (index, text) in inputs.enumerated() {
            promptTokens += SimulatedText.tokenCount(text)
            let vector = SimulatedText.embedding(text, dimensions: dimensions)
            let encoded: String
            if base64 {
                var bytes: [UInt8] = []
                for value in vector { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                encoded = quoted(Data(bytes).base64EncodedString())
            } else {
                encoded = "[" + vector.map { "\($0)" }.joined(separator: ",") + "]"
            }
            items.append("{\"object\":\"embedding\",\"index\":\(index),\"embedding\":\(encoded)}")
        }
        let body = "{\"object\":\"list\",\"data\":[\(items.joined(separator: ","))],\"model\":\(quoted(model)),\"usage\":{\"prompt_tokens\":\(promptTokens),\"total_tokens\":\(promptTokens)}}"
        return .json(status: 200, body: body, delay: configuration.timeToFirstToken)
    }
}

/// A JSON string literal.
func quoted(_ text: String) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
    let array = String(decoding: data, as: UTF8.self)
    return String(array.dropFirst().dropLast())
}
