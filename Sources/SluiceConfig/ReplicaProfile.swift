import SluiceSimulation

/// A simulated replica's behaviour, read from `configs/replicas/*.yaml`: the engine's cost model
/// and limits, the batch costs of embeddings and infer, and `time_scale`. Every key is optional;
/// an absent `engine` section means the fixed clock (`fixed.time_to_first_token`,
/// `fixed.inter_token_delay`). See the files for each default's public source.
public struct ReplicaProfile: Sendable, Equatable {
    public var model = "sim-7b"
    public var timeScale = 1.0
    public var defaultMaxTokens = 16
    public var engine: EngineProfile?
    public var timeToFirstToken: Duration = .milliseconds(20)
    public var interTokenDelay: Duration = .milliseconds(10)
    public var embeddingDimensions = 8
    public var embeddingBatchBase: Duration = .milliseconds(2)
    public var embeddingPerInput: Duration = .microseconds(500)
    public var inferBatchBase: Duration = .microseconds(1500)
    public var inferPerRow: Duration = .microseconds(20)

    public init() {}

    /// Parses and validates YAML text; every problem is reported with its key path and line.
    public static func decode(yaml: String) throws(ConfigError) -> ReplicaProfile {
        let root = try composeYAML(yaml)
        var profile = ReplicaProfile()
        let top = ["model", "time_scale", "default_max_tokens", "engine", "fixed", "embeddings", "infer"]
        if let keys = root.mapping(allowed: top) {
            if let value = keys["model"]?.string() { profile.model = value }
            if let value = keys["time_scale"]?.double(in: 0.000_001...1_000) { profile.timeScale = value }
            if let value = keys["default_max_tokens"]?.int(in: 1...100_000) { profile.defaultMaxTokens = value }
            if let node = keys["engine"] { profile.engine = decodeEngine(node) }
            if let node = keys["fixed"], let fixed = node.mapping(allowed: ["time_to_first_token", "inter_token_delay"]) {
                if let value = fixed["time_to_first_token"]?.duration() { profile.timeToFirstToken = value }
                if let value = fixed["inter_token_delay"]?.duration() { profile.interTokenDelay = value }
            }
            if let node = keys["embeddings"], let embeddings = node.mapping(allowed: ["dimensions", "batch_base", "per_input"]) {
                if let value = embeddings["dimensions"]?.int(in: 1...65_536) { profile.embeddingDimensions = value }
                if let value = embeddings["batch_base"]?.duration() { profile.embeddingBatchBase = value }
                if let value = embeddings["per_input"]?.duration() { profile.embeddingPerInput = value }
            }
            if let node = keys["infer"], let infer = node.mapping(allowed: ["batch_base", "per_row"]) {
                if let value = infer["batch_base"]?.duration() { profile.inferBatchBase = value }
                if let value = infer["per_row"]?.duration() { profile.inferPerRow = value }
            }
        }
        if !root.diagnostics.issues.isEmpty { throw ConfigError(issues: root.diagnostics.issues) }
        return profile
    }

    private static func decodeEngine(_ node: NodeReader) -> EngineProfile? {
        let allowed = ["max_running", "max_batched_tokens", "block_size", "kv_blocks", "step_base", "decode_per_sequence", "prefill_per_token"]
        guard let keys = node.mapping(allowed: allowed) else { return nil }
        var engine = EngineProfile()
        if let value = keys["max_running"]?.int(in: 1...100_000) { engine.maxRunning = value }
        if let value = keys["max_batched_tokens"]?.int(in: 1...10_000_000) { engine.maxBatchedTokens = value }
        if let value = keys["block_size"]?.int(in: 1...1024) { engine.blockSize = value }
        if let value = keys["kv_blocks"]?.int(in: 1...100_000_000) { engine.kvBlocks = value }
        if let value = keys["step_base"]?.duration() { engine.stepBase = value }
        if let value = keys["decode_per_sequence"]?.duration() { engine.decodePerSequence = value }
        if let value = keys["prefill_per_token"]?.duration() { engine.prefillPerToken = value }
        if engine.maxBatchedTokens < engine.maxRunning {
            node.report("max_batched_tokens (\(engine.maxBatchedTokens)) must be at least max_running (\(engine.maxRunning)): every running sequence decodes one token per step")
        }
        return engine
    }
}

extension ReplicaProfile {
    /// `configs/replicas/fast.yaml`, built in (the demo uses it and needs no file; a test keeps
    /// the two equal).
    public static var fast: ReplicaProfile {
        var profile = ReplicaProfile()
        profile.model = "sim-7b"
        profile.timeScale = 0.05
        profile.defaultMaxTokens = 16
        profile.engine = EngineProfile(
            maxRunning: 8, maxBatchedTokens: 512, blockSize: 16, kvBlocks: 512,
            stepBase: .milliseconds(12), decodePerSequence: .microseconds(120), prefillPerToken: .microseconds(100))
        profile.embeddingDimensions = 8
        profile.embeddingBatchBase = .milliseconds(2)
        profile.embeddingPerInput = .microseconds(500)
        profile.inferBatchBase = .microseconds(1500)
        profile.inferPerRow = .microseconds(20)
        return profile
    }
}
