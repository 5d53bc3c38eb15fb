/// xoshiro256** seeded once from the system generator. One per event loop (never shared), so
/// request IDs cost no syscall and no lock on the request path.
public struct FastRandom: RandomNumberGenerator, Sendable {
    @usableFromInline var state: (UInt64, UInt64, UInt64, UInt64)

    public init() {
        var system = SystemRandomNumberGenerator()
        state = (system.next(), system.next(), system.next(), system.next())
        if state == (0, 0, 0, 0) { state.0 = 1 }
    }

    /// Inlinable: the gateway draws one per request from its own module.
    @inlinable
    public mutating func next() -> UInt64 {
        let result = Self.rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = Self.rotl(state.3, 45)
        return result
    }

    @inlinable
    static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// `count` random bytes as lowercase hex.
    public mutating func hex(bytes count: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: count * 2) { buffer in
            var index = 0
            var word: UInt64 = 0
            for byte in 0..<count {
                if byte % 8 == 0 { word = next() }
                let value = UInt8(truncatingIfNeeded: word >> (UInt64(byte % 8) * 8))
                buffer[index] = digits[Int(value >> 4)]
                buffer[index + 1] = digits[Int(value & 0x0F)]
                index += 2
            }
            return index
        }
    }
}
