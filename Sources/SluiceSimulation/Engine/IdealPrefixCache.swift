/// The prefix-cache hit rate no router can beat on a workload: every prompt looked up in one
/// cache that never evicts and already holds every block any earlier request sent or was
/// answered with, as if the whole fleet were one replica of unbounded memory. Counted as
/// `BatchEngine` counts (`vllm:prefix_cache_hits`): whole leading blocks, at most the prompt
/// less one token. The tokens it misses are the ones no replica has ever seen, such as each
/// turn's new question. A router whose fleet hit rate equals this has lost nothing to routing.
public struct IdealPrefixCache: Sendable {
    public let blockSize: Int
    private var seen: Set<UInt64> = []
    public private(set) var queriedTokens = 0
    public private(set) var hitTokens = 0

    public init(blockSize: Int = 16) {
        precondition(blockSize > 0)
        self.blockSize = blockSize
    }

    public var hitRate: Double { queriedTokens == 0 ? 0 : Double(hitTokens) / Double(queriedTokens) }

    /// Looks `prompt` up, then keeps its blocks and those of `answer` (`SimReply`'s answer to it).
    public mutating func serve(prompt: String, answer: String) {
        let tokens = SimTokenizer.tokens(prompt)
        let blocks = SimTokenizer.blockHashes(tokens, blockSize: blockSize)
        let hitBlocks = blocks.firstIndex { !seen.contains($0) } ?? blocks.count
        queriedTokens += tokens.count
        hitTokens += max(0, min(hitBlocks * blockSize, tokens.count - 1))
        seen.formUnion(blocks)
        seen.formUnion(SimReply.answerBlockHashes(promptTokens: tokens, answer: answer, blockSize: blockSize))
    }
}
