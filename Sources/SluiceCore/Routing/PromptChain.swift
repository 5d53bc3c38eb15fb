/// A prompt as a chain of block hashes, the way a prefix cache sees it: block `i`'s hash covers
/// every byte from the start of the prompt to the end of block `i`, so two prompts share block
/// `i`'s hash exactly when they share that whole prefix (as vLLM's and SGLang's caches key
/// blocks). `PromptIndex` matches prompts against what each replica was sent by these hashes.
///
/// Bytes rather than tokens, because the gateway has no tokenizer: 128 bytes is about 32
/// tokens of English, twice vLLM's 16-token block. The first 128 KiB go in 128-byte blocks;
/// the rest, however long, in 4 KiB blocks, so a 1 MiB prompt is 1,248 hashes and a long
/// prompt that differs only far in is still told apart.
///
/// The anchor names the conversation: a hash of its opening (for chat, the messages through the
/// first user message: the system prompt and the document or first question), which every
/// later turn repeats unchanged, so every gateway instance computes the same anchor from any
/// turn. A bare `prompt` has no such structure: its first KiB is the anchor, so prompts shorter
/// than that change anchors as they grow (their turns are followed by the prompt index alone).
public struct PromptChain: Sendable, Equatable {
    public static let blockBytes = 128
    /// How many 128-byte blocks come before the large ones (128 KiB).
    public static let smallBlocks = 1024
    public static let largeBlockBytes = 4096
    /// The anchor's length when the caller knows no message structure (a bare `prompt`).
    public static let defaultAnchorBytes = 1024

    public let blocks: [UInt64]
    /// The prompt's length in bytes (UTF-8).
    public let byteCount: Int
    public let anchor: UInt64

    /// `anchorLength`: how many leading bytes identify the conversation (nil: the first
    /// `defaultAnchorBytes`).
    public init(_ text: String, anchorLength: Int? = nil) {
        var text = text
        var blocks: [UInt64] = []
        var anchor: UInt64 = 0
        let count = text.withUTF8 { bytes -> Int in
            let raw = UnsafeRawBufferPointer(bytes)
            blocks.reserveCapacity(Self.blockCount(forBytes: raw.count))
            // A seed of its own, so block hashes never equal `HashRing.hash` of a key.
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            var offset = 0
            while true {
                let size = blocks.count < Self.smallBlocks ? Self.blockBytes : Self.largeBlockBytes
                guard offset + size <= raw.count else { break }
                state = Self.absorb(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + size)]), into: state)
                blocks.append(Self.mix(state))
                offset += size
            }
            let anchorBytes = min(max(0, anchorLength ?? Self.defaultAnchorBytes), raw.count)
            anchor = Self.mix(Self.absorb(UnsafeRawBufferPointer(rebasing: raw[0..<anchorBytes]), into: 0x51_7CC1_B727_220A))
            return raw.count
        }
        self.blocks = blocks
        self.byteCount = count
        self.anchor = anchor
    }

    /// How many complete blocks a prompt of `bytes` bytes has.
    public static func blockCount(forBytes bytes: Int) -> Int {
        let small = smallBlocks * blockBytes
        return bytes <= small ? bytes / blockBytes : smallBlocks + (bytes - small) / largeBlockBytes
    }

    /// How many bytes the first `count` blocks cover.
    public static func bytes(inBlocks count: Int) -> Int {
        count <= smallBlocks ? count * blockBytes : smallBlocks * blockBytes + (count - smallBlocks) * largeBlockBytes
    }

    /// Folds bytes into a running state eight at a time (a multiply-xorshift per word, then the
    /// length): 8× fewer steps than byte-wise FNV-1a.
    static func absorb(_ bytes: UnsafeRawBufferPointer, into state: UInt64) -> UInt64 {
        var state = state
        var offset = 0
        while offset + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            state = (state ^ word) &* 0x9E37_79B9_7F4A_7C15
            state ^= state >> 29
            offset += 8
        }
        while offset < bytes.count {
            state = (state ^ UInt64(bytes[offset])) &* 0x0000_0100_0000_01B3
            offset += 1
        }
        return (state ^ UInt64(bytes.count)) &* 0xBF58_476D_1CE4_E5B9
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
