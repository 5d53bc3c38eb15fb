/// What a load run sends: a weighted mix of workloads and tenants, turned into concrete requests
/// by `RequestGenerator` from a seeded random source (the same seed gives the same requests).
public enum Workload: Sendable, Equatable {
    /// Multi-turn chat: `users` concurrent sessions. Each session starts with one of
    /// `systemPrompts` shared system prompts (so sessions share prefixes, as real apps do) and
    /// grows by the user's question and the model's answer per request, for `turns` requests;
    /// then that user starts a new session. The answer carried into the history is the one a
    /// `sluice-replica` gives (`SimReply`, `maxTokens` tokens: the simulator's answer is a
    /// function of the prompt), as a real client sends the model's answer back; against other
    /// servers it is plain text. The session id goes in `x-session-id` unless `sessionHeader`
    /// is false (clients that name no session, as the OpenAI SDKs by default).
    case chat(Chat)
    /// `/v1/embeddings` with `inputs` texts per request.
    case embeddings(Embeddings)
    /// Open Inference Protocol V2 `infer` with `rows` × `columns` FP64 values per request.
    case infer(Infer)

    public struct Chat: Sendable, Equatable {
        public var model = "sim-7b"
        public var users = 50
        public var systemPrompts = 4
        public var systemPromptWords = 200
        public var userWords = 30
        public var turns = 5
        /// Fraction of requests sent with `stream: true`.
        public var streamFraction = 1.0
        public var maxTokens = 32
        /// Whether requests carry `x-session-id`.
        public var sessionHeader = true
        /// Words of a document of the session's own, sent as the first user message of every
        /// turn (RAG context, a file under discussion); 0 sends none.
        public var documentWords = 0
        /// What a user does after `turns`: start a new session (false), or start the same one
        /// over (true: the same session id and document, the history dropped), as a user who
        /// opens a fresh chat about the same file.
        public var restartSameSession = false

        public init() {}
    }

    public struct Embeddings: Sendable, Equatable {
        public var model = "sim-7b"
        public var inputs = 1
        public var wordsPerInput = 20

        public init() {}
    }

    public struct Infer: Sendable, Equatable {
        public var model = "sim-7b"
        public var rows = 1
        public var columns = 4

        public init() {}
    }

    public var name: String {
        switch self {
        case .chat: "chat"
        case .embeddings: "embeddings"
        case .infer: "infer"
        }
    }
}
