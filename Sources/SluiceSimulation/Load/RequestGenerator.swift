/// Turns a workload mix into requests, one at a time.
public struct RequestGenerator<Generator: RandomNumberGenerator & Sendable>: Sendable {
    private struct Session: Sendable {
        var id: String
        var systemPrompt: Int
        /// The session's document (empty when the workload has none).
        var document = ""
        var turn = 0
        /// The conversation so far, as JSON message objects.
        var messages: [String] = []
        /// The same turns' texts (what the replica joins into its prompt).
        var contents: [String] = []
    }

    public let mix: [WeightedWorkload]
    public let tenants: [LoadTenant]
    private var generator: Generator
    private var sessions: [Int: [Session]] = [:]
    private var sessionCounter = 0
    private let systemPromptTexts: [Int: [String]]

    public init(mix: [WeightedWorkload], tenants: [LoadTenant] = [], generator: Generator) {
        precondition(!mix.isEmpty && mix.allSatisfy { $0.weight >= 0 } && mix.contains { $0.weight > 0 })
        self.mix = mix
        self.tenants = tenants
        self.generator = generator
        var prompts: [Int: [String]] = [:]
        for (index, entry) in mix.enumerated() {
            if case .chat(let chat) = entry.workload {
                prompts[index] = (0..<max(1, chat.systemPrompts)).map { Self.words(chat.systemPromptWords, seed: UInt64(index) << 32 | UInt64($0)) }
            }
        }
        self.systemPromptTexts = prompts
    }

    public mutating func next() -> PlannedRequest {
        let index = pick(mix.map(\.weight))
        let tenant = tenants.isEmpty ? nil : tenants[pick(tenants.map(\.weight))]
        var request: PlannedRequest
        switch mix[index].workload {
        case .chat(let chat):
            request = nextChat(chat, mixIndex: index)
        case .embeddings(let embeddings):
            let inputs = (0..<max(1, embeddings.inputs)).map { _ in "\"" + Self.words(embeddings.wordsPerInput, seed: generator.next()) + "\"" }
            request = PlannedRequest(
                path: "/v1/embeddings", headers: [("content-type", "application/json")],
                body: "{\"model\":\"\(embeddings.model)\",\"input\":[\(inputs.joined(separator: ","))]}",
                stream: false, workload: "embeddings")
        case .infer(let infer):
            let rows = max(1, infer.rows)
            let columns = max(1, infer.columns)
            let data = (0..<(rows * columns)).map { _ in String(Double(generator.next() % 1000) / 10) }
            request = PlannedRequest(
                path: "/v2/models/\(infer.model)/infer", headers: [("content-type", "application/json")],
                body: "{\"inputs\":[{\"name\":\"input-0\",\"shape\":[\(rows),\(columns)],\"datatype\":\"FP64\",\"data\":[\(data.joined(separator: ","))]}]}",
                stream: false, workload: "infer")
        }
        if let tenant {
            request.headers.append(("authorization", "Bearer \(tenant.apiKey)"))
            request.tenant = tenant.name
        }
        return request
    }

    private mutating func nextChat(_ chat: Workload.Chat, mixIndex: Int) -> PlannedRequest {
        let users = max(1, chat.users)
        if sessions[mixIndex] == nil { sessions[mixIndex] = [] }
        let user = Int(generator.next() % UInt64(users))
        while sessions[mixIndex]!.count <= user { sessions[mixIndex]!.append(newSession(chat)) }
        var session = sessions[mixIndex]![user]
        if session.turn >= max(1, chat.turns) {
            if chat.restartSameSession {
                session.turn = 0
                session.messages = []
                session.contents = []
            } else {
                session = newSession(chat)
            }
        }
        let question = Self.words(chat.userWords, seed: generator.next())
        let system = systemPromptTexts[mixIndex]![session.systemPrompt]
        let opening = [system] + (session.document.isEmpty ? [] : [session.document])
        let messages = ["{\"role\":\"system\",\"content\":\"\(system)\"}"]
            + (session.document.isEmpty ? [] : ["{\"role\":\"user\",\"content\":\"\(session.document)\"}"])
            + session.messages
            + ["{\"role\":\"user\",\"content\":\"\(question)\"}"]
        let stream = Double(generator.next() % 1_000_000) / 1_000_000 < chat.streamFraction
        let body = "{\"model\":\"\(chat.model)\",\"max_tokens\":\(chat.maxTokens),\"stream\":\(stream),\"messages\":[\(messages.joined(separator: ","))]}"
        // The next turn carries this exchange: the question and the simulator's answer to the
        // prompt as the replica sees it (the messages' contents, one per line).
        session.contents.append(question)
        let answer = SimReply.text(prompt: (opening + session.contents).joined(separator: "\n"), count: chat.maxTokens)
        session.contents.append(answer)
        session.messages.append("{\"role\":\"user\",\"content\":\"\(question)\"}")
        session.messages.append("{\"role\":\"assistant\",\"content\":\"\(answer)\"}")
        session.turn += 1
        sessions[mixIndex]![user] = session
        return PlannedRequest(
            path: "/v1/chat/completions",
            headers: [("content-type", "application/json")] + (chat.sessionHeader ? [("x-session-id", session.id)] : []),
            body: body, stream: stream, workload: "chat")
    }

    private mutating func newSession(_ chat: Workload.Chat) -> Session {
        sessionCounter += 1
        let id = "s\(sessionCounter)-" + String(generator.next() & 0xFFFF_FFFF, radix: 16)
        let systemPrompt = Int(generator.next() % UInt64(max(1, chat.systemPrompts)))
        let document = chat.documentWords > 0 ? Self.words(chat.documentWords, seed: generator.next()) : ""
        return Session(id: id, systemPrompt: systemPrompt, document: document)
    }

    /// An index drawn in proportion to `weights`.
    private mutating func pick(_ weights: [Double]) -> Int {
        let total = weights.reduce(0, +)
        var point = Double(generator.next() >> 11) / Double(1 << 53) * total
        for (index, weight) in weights.enumerated() {
            point -= weight
            if point < 0 { return index }
        }
        return weights.lastIndex { $0 > 0 } ?? 0
    }

    /// `count` pseudo-words of 2-8 letters from a seed: JSON-safe, deterministic.
    static func words(_ count: Int, seed: UInt64) -> String {
        let syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "da", "ri", "mo", "su", "te", "na", "go"]
        var state = seed | 1
        var words: [String] = []
        words.reserveCapacity(count)
        for _ in 0..<max(0, count) {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            let parts = Int(state % 3) + 1
            var word = ""
            for part in 0..<parts { word += syllables[Int((state >> (8 + 4 * UInt64(part))) & 15)] }
            words.append(word)
        }
        return words.joined(separator: " ")
    }
}
