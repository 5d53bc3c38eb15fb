/// FNV-1a over bytes: stable across runs and platforms (unlike `Hasher`), for the hash ring's
/// points and the simulator's token ids. Short inputs only; prompts go through `PromptHasher`.
public enum FNV1a {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325

    public static func hash(_ bytes: some Sequence<UInt8>, seed: UInt64 = offsetBasis) -> UInt64 {
        var hash = seed
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}
