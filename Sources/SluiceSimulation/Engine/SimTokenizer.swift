import SluiceCore

/// The simulator's tokenizer: deterministic, documented, and cheap enough to run in the load
/// generator too, so both sides count the same tokens.
///
/// Text is split on whitespace (space, tab, newline, carriage return) into words, and each word
/// into pieces of up to 4 characters (Unicode characters, not bytes); each piece is one token.
/// A token's id is the FNV-1a hash of its UTF-8 bytes, so equal text gives equal ids. Real
/// tokenizers give about 0.75 words per token for English; this one gives about 1 token per 4
/// characters of a word, which is close enough for load shapes.
public enum SimTokenizer {
    public static func isSeparator(_ character: Character) -> Bool {
        character == " " || character == "\n" || character == "\t" || character == "\r"
    }

    public static func count(_ text: String) -> Int {
        text.split(whereSeparator: isSeparator).reduce(0) { $0 + ($1.count + 3) / 4 }
    }

    /// Token ids, in order.
    public static func tokens(_ text: String) -> [UInt32] {
        var ids: [UInt32] = []
        ids.reserveCapacity(text.utf8.count / 4 + 1)
        for word in text.split(whereSeparator: isSeparator) {
            var piece = word.startIndex
            while piece < word.endIndex {
                let end = word.index(piece, offsetBy: 4, limitedBy: word.endIndex) ?? word.endIndex
                ids.append(UInt32(truncatingIfNeeded: fnv1a(word[piece..<end].utf8)))
                piece = end
            }
        }
        return ids
    }

    /// FNV-1a (`FNV1a.hash`): token ids and block hashes the load generator computes alike.
    public static func fnv1a(_ bytes: some Sequence<UInt8>, seed: UInt64 = FNV1a.offsetBasis) -> UInt64 {
        FNV1a.hash(bytes, seed: seed)
    }

    /// Hashes of the prompt's full blocks of `blockSize` tokens, each chained to the one before
    /// (as vLLM's prefix cache does), so a block's hash names the whole prefix up to it.
    public static func blockHashes(_ tokens: [UInt32], blockSize: Int) -> [UInt64] {
        precondition(blockSize > 0)
        var hashes: [UInt64] = []
        hashes.reserveCapacity(tokens.count / blockSize)
        var previous: UInt64 = 0x9E37_79B9_7F4A_7C15
        var start = 0
        while start + blockSize <= tokens.count {
            var hash = previous
            for token in tokens[start..<(start + blockSize)] {
                withUnsafeBytes(of: token.littleEndian) { hash = fnv1a($0, seed: hash) }
            }
            hashes.append(hash)
            previous = hash
            start += blockSize
        }
        return hashes
    }
}
