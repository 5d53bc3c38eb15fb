/// A prompt as a chain of block hashes, the way a prefix cache sees it: block `i`'s hash covers
/// every byte from the start of the prompt to the end of block `i`, so two prompts share block
/// `i`'s hash exactly when they share that whole prefix (as vLLM's and SGLang's caches key
/// blocks). Only complete blocks count: a partial last block is not yet a reusable prefix.
///
/// Bytes rather than tokens, because the gateway has no tokenizer; 128 bytes is about 32
/// tokens of English, twice vLLM's 16-token block, fine enough that one chat turn (a question
/// and an answer) always completes a new block.
public enum PromptBlocks {
    public static let blockBytes = 128
    /// Prompts longer than this many blocks (128 KiB) are indexed up to it: enough to tell
    /// conversations apart, and it bounds the cost per request.
    public static let maxBlocks = 1024

    public static func chain(_ text: String) -> [UInt64] {
        var text = text
        return text.withUTF8 { chain(UnsafeRawBufferPointer($0)) }
    }

    public static func chain(_ bytes: UnsafeRawBufferPointer) -> [UInt64] {
        let count = min(bytes.count / blockBytes, maxBlocks)
        guard count > 0 else { return [] }
        var blocks: [UInt64] = []
        blocks.reserveCapacity(count)
        // A seed of its own, so block hashes never equal `HashRing.hash` of a key.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for index in 0..<count {
            state = SimTokenizer.fnv1a(UnsafeRawBufferPointer(rebasing: bytes[(index * blockBytes)..<((index + 1) * blockBytes)]), seed: state)
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            blocks.append(z ^ (z >> 31))
        }
        return blocks
    }
}
