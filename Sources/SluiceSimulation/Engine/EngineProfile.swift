/// The cost model of a simulated LLM replica (one GPU running a vLLM-like engine).
///
/// A step runs every decoding sequence for one token and up to `maxBatchedTokens` tokens of
/// prefill in all; it takes `stepBase + decodePerSequence × decoding + prefillPerToken ×
/// prefilled`. So time to first token is queue wait + prefill of the *uncached* prompt tokens,
/// and time per output token grows with the number of running sequences. The defaults and their
/// sources are in `configs/replicas/*.yaml`.
public struct EngineProfile: Sendable, Equatable {
    /// Most sequences running at once (vLLM `max_num_seqs`); more wait in a FIFO queue.
    public var maxRunning: Int
    /// Token budget of one step, decodes and prefill chunks together (`max_num_batched_tokens`).
    public var maxBatchedTokens: Int
    /// Tokens per KV-cache block (vLLM `block_size`).
    public var blockSize: Int
    /// KV-cache blocks on the GPU: running sequences reserve them; the rest hold cached prefixes.
    public var kvBlocks: Int
    public var stepBase: Duration
    public var decodePerSequence: Duration
    public var prefillPerToken: Duration

    public init(
        maxRunning: Int = 256, maxBatchedTokens: Int = 2048, blockSize: Int = 16, kvBlocks: Int = 27_000,
        stepBase: Duration = .milliseconds(12), decodePerSequence: Duration = .microseconds(120),
        prefillPerToken: Duration = .microseconds(100)
    ) {
        self.maxRunning = maxRunning
        self.maxBatchedTokens = maxBatchedTokens
        self.blockSize = blockSize
        self.kvBlocks = kvBlocks
        self.stepBase = stepBase
        self.decodePerSequence = decodePerSequence
        self.prefillPerToken = prefillPerToken
    }

    /// Every delay multiplied by `factor` (`time_scale`).
    public func scaled(by factor: Double) -> EngineProfile {
        var copy = self
        copy.stepBase = stepBase * factor
        copy.decodePerSequence = decodePerSequence * factor
        copy.prefillPerToken = prefillPerToken * factor
        return copy
    }
}
