/// Hashes a prompt's bytes as they stream past into `PromptChain`'s blocks, its anchor and its
/// prefix hash. Fed in pieces of any size (a JSON string's runs between escapes, the newline
/// between messages), the result depends on the bytes alone, read as little-endian words: every
/// instance, platform and body layout computes the same hashes for the same prompt.
///
/// Four independent lanes of multiply-rotate over 8-byte words, 32 bytes a step (the layout
/// of xxHash and wyhash), so the lanes' multiplies overlap instead of waiting on one another.
/// Each block's lanes start from the chain so far, so a block's hash names its whole prefix.
/// Not cryptographic: a client that collides its own prompts only moves its own requests.
public struct PromptHasher {
    /// Bytes past this many are not read (`prefix` keys cover only the prompt's start).
    public let limit: Int

    public private(set) var count = 0
    private var blocks: [UInt64] = []
    private var chainState: UInt64 = 0x9E37_79B9_7F4A_7C15
    private var lanes: (UInt64, UInt64, UInt64, UInt64)
    /// A stripe (32 bytes) being filled from pieces too short to read in place.
    private var stripe: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var stripeCount = 0
    private var blockFill = 0
    private var blockSize = PromptChain.blockBytes
    private var firstKiB: UInt64?
    private var opening: UInt64?

    /// A chain's hasher. `expectedBytes`: about how many bytes will be fed (room for their
    /// blocks is made at once).
    public init(expectedBytes: Int = 0) {
        limit = .max
        lanes = Self.seeded(chainState)
        blocks.reserveCapacity(PromptChain.blockCount(forBytes: expectedBytes))
    }

    /// A prefix key's hasher: the first `bytes` bytes in one run, cut into no blocks (a key is
    /// only ever compared with keys), so only `prefixHash` means anything.
    public init(prefix bytes: Int) {
        limit = max(0, bytes)
        blockSize = .max
        lanes = Self.seeded(chainState)
    }

    /// Every byte the hasher will read has been fed.
    public var isFull: Bool { count >= limit }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        let length = min(bytes.count, limit - count)
        let anchorAt = PromptChain.defaultAnchorBytes
        if firstKiB == nil, count < anchorAt, count + length >= anchorAt {
            let head = anchorAt - count
            absorb(base, head)
            firstKiB = prefixHash()
            absorb(base + head, length - head)
        } else {
            absorb(base, length)
        }
    }

    public mutating func feed(byte: UInt8) {
        withUnsafeBytes(of: byte) { feed($0) }
    }

    /// The bytes fed so far are the conversation's opening (its anchor); the first mark counts.
    public mutating func markOpening() {
        if opening == nil { opening = prefixHash() }
    }

    /// A hash of every byte fed so far (at most `limit`): prompts share it exactly when they
    /// share those bytes.
    public func prefixHash() -> UInt64 {
        var state = Self.fold(chainState ^ UInt64(blockFill), lanes)
        withUnsafeBytes(of: stripe) { pending in
            for index in 0..<stripeCount { state = (state ^ UInt64(pending[index])) &* 0x0000_0100_0000_01B3 }
        }
        return Self.mix(state ^ UInt64(count) ^ 0x51_7CC1_B727_220A)
    }

    /// The chain of what was fed: its complete blocks, its length, and its anchor (the opening
    /// when one was marked, else the first `PromptChain.defaultAnchorBytes`, else everything).
    public func chain() -> PromptChain {
        PromptChain(blocks: blocks, byteCount: count, anchor: opening ?? firstKiB ?? prefixHash())
    }

    private mutating func absorb(_ start: UnsafeRawPointer, _ length: Int) {
        var pointer = start
        var remaining = length
        count += length
        while remaining > 0 {
            if stripeCount > 0 || remaining < 32 {
                let take = min(32 - stripeCount, remaining)
                let at = stripeCount
                withUnsafeMutableBytes(of: &stripe) { $0.baseAddress!.advanced(by: at).copyMemory(from: pointer, byteCount: take) }
                stripeCount += take
                pointer += take
                remaining -= take
                if stripeCount == 32 {
                    stripeCount = 0
                    let filled = stripe
                    withUnsafeBytes(of: filled) { step(UnsafeRawPointer($0.baseAddress!), stripes: 1) }
                }
                continue
            }
            // Whole stripes read in place, up to the block's end (sizes are multiples of 32).
            let stripes = min(remaining, blockSize - blockFill) / 32
            step(pointer, stripes: stripes)
            pointer += stripes * 32
            remaining -= stripes * 32
        }
    }

    @inline(__always)
    private mutating func step(_ pointer: UnsafeRawPointer, stripes: Int) {
        var (a, b, c, d) = lanes
        var offset = 0
        for _ in 0..<stripes {
            a = Self.round(a, pointer, offset)
            b = Self.round(b, pointer, offset + 8)
            c = Self.round(c, pointer, offset + 16)
            d = Self.round(d, pointer, offset + 24)
            offset += 32
        }
        lanes = (a, b, c, d)
        blockFill += stripes * 32
        if blockFill == blockSize { finishBlock() }
    }

    private mutating func finishBlock() {
        chainState = Self.fold(chainState ^ UInt64(blockSize), lanes)
        blocks.append(Self.mix(chainState))
        blockFill = 0
        blockSize = PromptChain.blockSize(at: blocks.count)
        lanes = Self.seeded(chainState)
    }

    @inline(__always)
    private static func round(_ lane: UInt64, _ pointer: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        let word = UInt64(littleEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        let product = (lane ^ word) &* 0x9E37_79B9_7F4A_7C15
        return product << 31 | product >> 33
    }

    private static func seeded(_ state: UInt64) -> (UInt64, UInt64, UInt64, UInt64) {
        (state &+ 0x60BE_E2BE_E120_FC15, state &+ 0xA3B1_9535_4A39_B70D, state &+ 0x1B87_3593_2DD6_5A2B, state &+ 0xC2B2_AE3D_27D4_EB4F)
    }

    /// The lanes folded into the chain, each by a multiply and a xorshift (the block's hash is
    /// mixed in full once, after).
    private static func fold(_ state: UInt64, _ lanes: (UInt64, UInt64, UInt64, UInt64)) -> UInt64 {
        var state = (state ^ lanes.0) &* 0x9FB2_1C65_1E98_DF25
        state = (state ^ (state >> 32) ^ lanes.1) &* 0x9FB2_1C65_1E98_DF25
        state = (state ^ (state >> 32) ^ lanes.2) &* 0x9FB2_1C65_1E98_DF25
        state = (state ^ (state >> 32) ^ lanes.3) &* 0x9FB2_1C65_1E98_DF25
        return state ^ (state >> 29)
    }

    /// SplitMix64's finalizer.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
