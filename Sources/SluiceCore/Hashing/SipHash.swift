/// SipHash-2-4 (Aumasson and Bernstein), a keyed hash: without the 128-bit key nobody can find
/// two inputs with the same hash, or an input for a given hash. API keys are looked up by it
/// under a key drawn at start, so the gateway keeps no key in the clear after loading and a
/// client cannot craft a key that lands on another tenant (FNV or `Hasher` offer neither).
public struct SipHash: Sendable {
    public let k0: UInt64
    public let k1: UInt64

    public init(k0: UInt64, k1: UInt64) {
        self.k0 = k0
        self.k1 = k1
    }

    public func hash(_ bytes: some Collection<UInt8>) -> UInt64 {
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ k0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ k1
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ k0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ k1
        func round() {
            v0 = v0 &+ v1; v1 = (v1 << 13) | (v1 >> 51); v1 ^= v0; v0 = (v0 << 32) | (v0 >> 32)
            v2 = v2 &+ v3; v3 = (v3 << 16) | (v3 >> 48); v3 ^= v2
            v0 = v0 &+ v3; v3 = (v3 << 21) | (v3 >> 43); v3 ^= v0
            v2 = v2 &+ v1; v1 = (v1 << 17) | (v1 >> 47); v1 ^= v2; v2 = (v2 << 32) | (v2 >> 32)
        }
        var word: UInt64 = 0
        var filled = 0
        for byte in bytes {
            word |= UInt64(byte) << (8 * UInt64(filled))
            filled += 1
            if filled == 8 {
                v3 ^= word; round(); round(); v0 ^= word
                word = 0
                filled = 0
            }
        }
        word |= UInt64(truncatingIfNeeded: bytes.count) << 56
        v3 ^= word; round(); round(); v0 ^= word
        v2 ^= 0xff
        round(); round(); round(); round()
        return v0 ^ v1 ^ v2 ^ v3
    }
}
