import SluiceSimulation

/// Deterministic vectors for the simulator's embeddings: they depend only on the text, so runs
/// are reproducible. (Completion text comes from `SimReply`.)
public enum SimulatedText {
    /// FNV-1a, stable across runs and platforms (unlike `Hasher`).
    public static func stableHash(_ text: String) -> UInt64 {
        SimTokenizer.fnv1a(text.utf8)
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
