/// A prompt as a chain of block hashes, the way a prefix cache sees it: block `i`'s hash covers
/// every byte from the start of the prompt to the end of block `i`, so two prompts share block
/// `i`'s hash exactly when they share that whole prefix (as vLLM's and SGLang's caches key
/// blocks). `PromptIndex` matches prompts against what each replica was sent by these hashes.
///
/// Bytes rather than tokens, because the gateway has no tokenizer: 128 bytes is about 32
/// tokens of English, twice vLLM's 16-token block. Blocks grow with depth: 128 bytes for the
/// first 4 KiB, then sixteen blocks of each doubled size (256 B to 8 KiB, 512 B to 16 KiB, ...),
/// so where two prompts part is known to within 1/16 of its depth and the chain stays short:
/// a 220 KB prompt is 122 hashes, a 1 MiB one 160. The index's work per prompt is the chain's
/// length, not the prompt's.
///
/// The anchor names the conversation: a hash of its opening (for chat, the messages through the
/// first user message: the system prompt and the document or first question), which every
/// later turn repeats unchanged, so every gateway instance computes the same anchor from any
/// turn. A bare `prompt` has no such structure: its first KiB is the anchor, so prompts shorter
/// than that change anchors as they grow (their turns are followed by the prompt index alone).
public struct PromptChain: Sendable, Equatable {
    /// The first blocks' size.
    public static let blockBytes = 128
    /// How many `blockBytes` blocks come before sizes start doubling (4 KiB).
    public static let smallBlocks = 32
    /// How many blocks of each doubled size follow.
    public static let blocksPerSize = 16
    /// The anchor's length when the caller knows no message structure (a bare `prompt`).
    public static let defaultAnchorBytes = 1024

    public let blocks: [UInt64]
    /// The prompt's length in bytes (UTF-8).
    public let byteCount: Int
    public let anchor: UInt64

    public init(blocks: [UInt64], byteCount: Int, anchor: UInt64) {
        self.blocks = blocks
        self.byteCount = byteCount
        self.anchor = anchor
    }

    /// `anchorLength`: how many leading bytes identify the conversation (nil: the first
    /// `defaultAnchorBytes`).
    public init(_ text: String, anchorLength: Int? = nil) {
        var text = text
        self = text.withUTF8 { bytes in
            var hasher = PromptHasher()
            let raw = UnsafeRawBufferPointer(bytes)
            if let anchorLength {
                let opening = min(max(0, anchorLength), raw.count)
                hasher.feed(UnsafeRawBufferPointer(rebasing: raw[..<opening]))
                hasher.markOpening()
                hasher.feed(UnsafeRawBufferPointer(rebasing: raw[opening...]))
            } else {
                hasher.feed(raw)
            }
            return hasher.chain()
        }
    }

    /// Block `index`'s size in bytes.
    @inline(__always)
    public static func blockSize(at index: Int) -> Int {
        index < smallBlocks ? blockBytes : (2 * blockBytes) << ((index - smallBlocks) / blocksPerSize)
    }

    /// How many complete blocks a prompt of `bytes` bytes has.
    public static func blockCount(forBytes bytes: Int) -> Int {
        var count = 0
        var covered = 0
        while covered + blockSize(at: count) <= bytes {
            covered += blockSize(at: count)
            count += 1
        }
        return count
    }

    /// How many bytes the first `count` blocks cover.
    public static func bytes(inBlocks count: Int) -> Int {
        guard count > smallBlocks else { return count * blockBytes }
        let doublings = (count - smallBlocks) / blocksPerSize
        let rest = (count - smallBlocks) % blocksPerSize
        // Each run of doubled blocks covers as much as everything before it.
        return (smallBlocks * blockBytes) << doublings + rest * blockSize(at: count - 1)
    }
}
