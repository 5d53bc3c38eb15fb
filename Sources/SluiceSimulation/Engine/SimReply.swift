/// The simulator's answer to a prompt: a function of the prompt's text alone, so a load
/// generator can know what a `sluice-replica` answered without reading the stream, and send it
/// back in the next turn's history as a real chat client sends the model's answer back.
///
/// Every word has at most four characters, so each output token is exactly one `SimTokenizer`
/// token: the answer's tokens are the KV blocks the replica computed while decoding, and a next
/// turn that carries the answer finds them in the replica's prefix cache (vLLM caches decoded
/// blocks too).
public enum SimReply {
    static let vocabulary = [
        "the", "gate", "keep", "warm", "each", "flow", "load", "fast", "and", "with",
        "a", "pool", "of", "node", "it", "sees", "then", "more", "less", "tide",
    ]

    /// The hash the answer is drawn from: FNV-1a of the prompt's UTF-8 bytes.
    public static func promptHash(_ prompt: String) -> UInt64 {
        SimTokenizer.fnv1a(prompt.utf8)
    }

    /// The `index`-th output token (with its leading space, except the first).
    public static func token(_ index: Int, promptHash: UInt64) -> String {
        let word = vocabulary[Int((promptHash &+ UInt64(index) &* 7919) % UInt64(vocabulary.count))]
        return index == 0 ? word : " " + word
    }

    /// The whole answer of `count` tokens to `prompt`.
    public static func text(prompt: String, count: Int) -> String {
        let hash = promptHash(prompt)
        var text = ""
        for index in 0..<max(0, count) { text += token(index, promptHash: hash) }
        return text
    }

    /// The chained hashes of the full KV blocks an answer adds to its prompt's: the blocks of
    /// prompt + answer past the prompt's own full blocks (the partial last prompt block is
    /// completed by the answer's first tokens). A replica caches these when the answer ends.
    public static func answerBlockHashes(promptTokens: [UInt32], answer: String, blockSize: Int) -> [UInt64] {
        let promptBlocks = promptTokens.count / blockSize
        let all = SimTokenizer.blockHashes(promptTokens + SimTokenizer.tokens(answer), blockSize: blockSize)
        return Array(all.dropFirst(promptBlocks))
    }
}
