import SluiceCore

/// Deterministic output for the simulator: text and vectors that depend only on the prompt, so
/// runs are reproducible (tokens are counted by `SimTokenizer`).
public enum SimulatedText {
    private static let vocabulary = [
        "the", "model", "replica", "answers", "with", "a", "steady", "stream", "of", "tokens",
        "while", "sluice", "routes", "batches", "and", "limits", "every", "request", "it", "sees",
    ]

    /// FNV-1a, stable across runs and platforms (unlike `Hasher`).
    public static func stableHash(_ text: String) -> UInt64 {
        SimTokenizer.fnv1a(text.utf8)
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
