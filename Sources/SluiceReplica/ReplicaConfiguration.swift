import SluiceConfig
import SluiceSimulation

/// How a simulated replica behaves.
///
/// Chat and text completions run on a continuous-batching engine (`engine`, see
/// `EngineProfile`) with a prefix cache; with `engine` nil they follow a fixed clock instead
/// (`timeToFirstToken`, then `interTokenDelay` per token, whatever the load), which tests use
/// when they need exact timing. Embeddings and Open Inference Protocol `infer` requests are
/// served one batch at a time, each costing `base + per item × items`. `timeScale` multiplies
/// every delay.
public struct ReplicaConfiguration: Sendable {
    /// Sent back as `x-replica-id` so tests and the demo can see where a request went.
    public var id: String
    public var model: String = "sim-7b"
    public var engine: EngineProfile?
    public var timeToFirstToken: Duration = .milliseconds(20)
    public var interTokenDelay: Duration = .milliseconds(10)
    /// Output tokens when the request gives no `max_tokens`.
    public var defaultMaxTokens = 16
    public var embeddingDimensions = 8
    public var embeddingBatchBase: Duration = .milliseconds(2)
    public var embeddingPerInput: Duration = .microseconds(500)
    public var inferBatchBase: Duration = .microseconds(1500)
    public var inferPerRow: Duration = .microseconds(20)
    public var timeScale = 1.0
    /// Seeds every random choice the replica makes (injected errors), so runs repeat.
    public var seed: UInt64 = 1
    public var faults = ReplicaFaults()

    public init(id: String) {
        self.id = id
    }

    /// Accept requests and never answer them (to exercise gateway timeouts).
    public var stall: Bool {
        get { faults.stall }
        set { faults.stall = newValue }
    }
}

/// Misbehaviour on demand, set by flags at start and changed at run time through
/// `POST /admin/faults` (JSON with any of these keys, snake_case).
public struct ReplicaFaults: Sendable, Equatable {
    /// Fraction of inference requests answered `500` at once (seeded, so reproducible).
    public var errorRate = 0.0
    /// Added before any inference request is handled.
    public var extraLatency: Duration = .zero
    /// Inference requests are accepted and never answered.
    public var stall = false
    /// Inference requests are read and their connection closed without an answer.
    public var closeConnections = false
    /// Not ready (503 on health and inference) until this long after start.
    public var slowStart: Duration = .zero

    public init() {}
}

extension ReplicaConfiguration {
    /// A replica behaving as `profile` says (see `configs/replicas/*.yaml`).
    public init(id: String, profile: ReplicaProfile) {
        self.init(id: id)
        model = profile.model
        engine = profile.engine
        timeToFirstToken = profile.timeToFirstToken
        interTokenDelay = profile.interTokenDelay
        defaultMaxTokens = profile.defaultMaxTokens
        embeddingDimensions = profile.embeddingDimensions
        embeddingBatchBase = profile.embeddingBatchBase
        embeddingPerInput = profile.embeddingPerInput
        inferBatchBase = profile.inferBatchBase
        inferPerRow = profile.inferPerRow
        timeScale = profile.timeScale
    }
}
