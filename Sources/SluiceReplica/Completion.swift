import SluiceSimulation

/// One parsed chat or text completion request and the answer the simulator gives it, built
/// token by token: the same bytes whether tokens come from a fixed clock or from the engine.
struct Completion: Sendable {
    let chat: Bool
    let id: String
    let model: String
    let prompt: String
    let promptTokens: Int
    let maxTokens: Int
    let stream: Bool
    let includeUsage: Bool
    let tokens: [String]

    init(chat: Bool, prompt: String, model: String, maxTokens: Int, stream: Bool, includeUsage: Bool) {
        self.chat = chat
        self.prompt = prompt
        self.model = model
        self.maxTokens = maxTokens
        self.stream = stream
        self.includeUsage = includeUsage
        promptTokens = SimTokenizer.count(prompt)
        let hash = SimReply.promptHash(prompt)
        tokens = (0..<maxTokens).map { SimReply.token($0, promptHash: hash) }
        id = (chat ? "chatcmpl-" : "cmpl-") + String(hash &+ UInt64(promptTokens), radix: 16)
    }

    var usage: String {
        "{\"prompt_tokens\":\(promptTokens),\"completion_tokens\":\(maxTokens),\"total_tokens\":\(promptTokens + maxTokens)}"
    }

    /// The whole answer as one JSON object (`stream: false`).
    var json: String {
        let text = tokens.joined()
        let choice = chat
            ? "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\(quoted(text))},\"finish_reason\":\"length\"}"
            : "{\"index\":0,\"text\":\(quoted(text)),\"finish_reason\":\"length\"}"
        let object = chat ? "chat.completion" : "text_completion"
        return "{\"id\":\"\(id)\",\"object\":\"\(object)\",\"created\":0,\"model\":\(quoted(model)),\"choices\":[\(choice)],\"usage\":\(usage)}"
    }

    private func chunk(_ choice: String, usage: String = "null") -> String {
        let object = chat ? "chat.completion.chunk" : "text_completion"
        return "{\"id\":\"\(id)\",\"object\":\"\(object)\",\"created\":0,\"model\":\(quoted(model)),\"choices\":[\(choice)]\(includeUsage ? ",\"usage\":\(usage)" : "")}"
    }

    /// The server-sent event for output token `index`, terminated; the last one carries the
    /// usage chunk (when asked for) and `[DONE]`.
    func event(_ index: Int) -> String {
        let last = index == tokens.count - 1
        let finish = last ? "\"length\"" : "null"
        var data: String
        if chat {
            let delta = index == 0 ? "{\"role\":\"assistant\",\"content\":\(quoted(tokens[index]))}" : "{\"content\":\(quoted(tokens[index]))}"
            data = chunk("{\"index\":0,\"delta\":\(delta),\"finish_reason\":\(finish)}")
        } else {
            data = chunk("{\"index\":0,\"text\":\(quoted(tokens[index])),\"finish_reason\":\(finish)}")
        }
        if last {
            if includeUsage { data += "\n\ndata: " + chunk("", usage: usage) }
            data += "\n\ndata: [DONE]"
        }
        return "data: \(data)\n\n"
    }

    /// What the engine schedules for this request.
    func engineRequest(id: Int, blockSize: Int) -> BatchEngine.Request {
        let ids = SimTokenizer.tokens(prompt)
        return BatchEngine.Request(
            id: id, promptTokens: ids.count, blockHashes: SimTokenizer.blockHashes(ids, blockSize: blockSize), maxTokens: maxTokens,
            answerBlockHashes: SimReply.answerBlockHashes(promptTokens: ids, answer: tokens.joined(), blockSize: blockSize))
    }
}
