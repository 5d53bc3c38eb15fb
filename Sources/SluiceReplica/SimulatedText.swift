/// Deterministic text for the simulator: a tokenizer anyone can reimplement and output that
/// depends only on the prompt, so runs are reproducible.
public enum SimulatedText {
    /// Whitespace-separated words, each split into pieces of up to 4 characters.
    public static func tokenCount(_ text: String) -> Int {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).reduce(0) { total, word in
            total + (word.count + 3) / 4
        }
    }

    private static let vocabulary = [
        "the", "model", "replica", "answers", "with", "a", "steady", "stream", "of", "tokens",
        "while", "sluice", "routes", "batches", "and", "limits", "every", "request", "it", "sees",
    ]

    /// FNV-1a, stable across runs and platforms (unlike `Hasher`).
    public static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// The `index`-th output token for a prompt (with its leading space, except the first).
    public static func token(_ index: Int, promptHash: UInt64) -> String {
        let word = vocabulary[Int((promptHash &+ UInt64(index) &* 7919) % UInt64(vocabulary.count))]
        return index == 0 ? word : " " + word
    }

    /// A unit vector derived from the text.
    public static func embedding(_ text: String, dimensions: Int) -> [Float] {
        var state = stableHash(text) | 1
        var values: [Float] = []
        values.reserveCapacity(dimensions)
        for _ in 0..<dimensions {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            values.append(Float(Int64(bitPattern: state) % 10_000) / 10_000)
        }
        let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? values.map { $0 / norm } : values
    }
}
