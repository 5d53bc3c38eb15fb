/// How a model's traffic divides among its versions (a canary): each version owns a slice of
/// [0, 1) in proportion to its weight, in the configured order, and a key's slot in [0, 1) is a
/// hash of the key and the model name. So a session lands on the same version on every turn and
/// on every gateway instance, with no state shared. Raising a canary's weight from 10 to 20
/// grows its slice at the boundary: the sessions that move are the ones between 0.8 and 0.9,
/// all towards the canary, and no session moves between versions whose weights did not change
/// relative to their neighbours. A request without a key draws its slot at random.
public struct VersionSplit: Sendable, Equatable {
    /// One per version, in order; not negative, summing to more than zero.
    public let weights: [Double]
    /// Upper ends of the versions' slices (the last is 1).
    private let bounds: [Double]

    /// Nil when `weights` is empty, holds a negative or non-finite weight, or sums to zero.
    public init?(weights: [Double]) {
        guard !weights.isEmpty, weights.allSatisfy({ $0 >= 0 && $0.isFinite }) else { return nil }
        let total = weights.reduce(0, +)
        guard total > 0 else { return nil }
        self.weights = weights
        var running = 0.0
        var bounds = weights.map { weight in
            running += weight
            return running / total
        }
        bounds[bounds.count - 1] = 1
        self.bounds = bounds
    }

    /// The share of traffic of version `index` (its weight over the total).
    public func share(of index: Int) -> Double {
        weights[index] / weights.reduce(0, +)
    }

    /// The version whose slice holds `slot` (in [0, 1)); a zero-weight version never does.
    public func version(at slot: Double) -> Int {
        for (index, bound) in bounds.enumerated() where slot < bound && weights[index] > 0 { return index }
        // (Only a slot of 1 or more gets here.)
        return weights.lastIndex { $0 > 0 }!
    }

    /// The version for a sticky key of model `model`.
    public func version(forKey key: String, model: String) -> Int {
        version(at: Self.slot(key: key, model: model))
    }

    /// The version for a request without a key.
    public func version(using random: inout some RandomNumberGenerator) -> Int {
        version(at: Double.random(in: 0..<1, using: &random))
    }

    /// A key's place in [0, 1) for `model`: FNV-1a over both, mixed by one SplitMix64 step (so
    /// close keys spread), its top 53 bits as a fraction. Stable across processes.
    public static func slot(key: String, model: String) -> Double {
        var hash = FNV1a.hash(model.utf8)
        hash = FNV1a.hash(CollectionOfOne(0), seed: hash)
        hash = FNV1a.hash(key.utf8, seed: hash)
        var mixer = SplitMix64(seed: hash)
        return Double(mixer.next() >> 11) / Double(1 << 53)
    }
}
