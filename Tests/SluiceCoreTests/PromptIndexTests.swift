import Testing
@testable import SluiceCore

@Suite struct PromptIndexTests {
    static let system = String(repeating: "You answer questions about returns. ", count: 10)  // 360 bytes
    static func text(_ n: Int, bytes: Int) -> String {
        String(String(repeating: "conversation \(n) goes on and on: ", count: bytes / 20 + 1).prefix(bytes))
    }

    @Test func theLongestMatchIsTheDeepestBlockHeldAndItsHolders() {
        let index = PromptIndex()
        let a = PromptChain(Self.system + Self.text(1, bytes: 1_000))
        let b = PromptChain(Self.system + Self.text(2, bytes: 1_000))
        index.record(a, replica: 1)
        index.record(b, replica: 2)
        // a's own continuation: all of a's blocks, held by 1.
        let next = PromptChain(Self.system + Self.text(1, bytes: 1_000) + "\nand more")
        #expect(index.longestMatch(next) == PromptIndex.Match(blocks: a.blocks.count, bytes: a.blocks.count * 128, replicas: [1], anchor: a.anchor))
        // A third conversation matches the system prompt's two whole blocks, held by both (the
        // most recent first).
        let c = PromptChain(Self.system + Self.text(3, bytes: 500))
        #expect(index.longestMatch(c) == PromptIndex.Match(blocks: 2, bytes: 256, replicas: [2, 1], anchor: a.anchor))
        #expect(index.longestMatch(PromptChain(Self.text(4, bytes: 900))) == nil)
        #expect(index.count == a.blocks.count + b.blocks.count - 2)
    }

    @Test func eachReplicaKeepsItsBudgetLeastRecentlySentFirst() {
        // capacity 64 over the replicas seen: 32 blocks each with two, never under 16.
        let index = PromptIndex(capacity: 64, minimumPerReplica: 16)
        let old = PromptChain(Self.text(1, bytes: 20 * 128))
        index.record(old, replica: 1)
        index.record(PromptChain(Self.text(9, bytes: 4 * 128)), replica: 2)
        #expect(index.blocks(heldBy: 1) == 20)
        let newer = PromptChain(Self.text(2, bytes: 20 * 128))
        index.record(newer, replica: 1)
        // 40 > 32: the oldest prompt's deepest blocks went first; its prefix is still matched.
        #expect(index.blocks(heldBy: 1) == 32)
        #expect(index.longestMatch(old)?.blocks == 12)
        #expect(index.longestMatch(newer)?.blocks == 20)
        // Replica 2's blocks were not touched by replica 1's traffic.
        #expect(index.blocks(heldBy: 2) == 4)
        // Sending the old prompt again makes it the most recent: the newer one loses blocks.
        index.record(old, replica: 1)
        #expect(index.longestMatch(old)?.blocks == 20)
        #expect(index.longestMatch(newer)!.blocks < 20)
    }

    @Test func aBlockKeepsItsFourMostRecentHolders() {
        let index = PromptIndex()
        let shared = PromptChain(Self.system)
        for replica in 1...6 { index.record(shared, replica: UInt64(replica)) }
        #expect(index.longestMatch(shared)?.replicas == [6, 5, 4, 3])
        // The holders pushed out no longer count the block.
        #expect(index.blocks(heldBy: 1) == 0 && index.blocks(heldBy: 6) == 2)
    }

    @Test func replicasThatLeftAreForgotten() {
        let index = PromptIndex()
        let prompt = PromptChain(Self.system + Self.text(1, bytes: 400))
        index.record(prompt, replica: 1)
        index.record(prompt, replica: 2)
        index.retain(generation: 2) { [2] }
        #expect(index.longestMatch(prompt)?.replicas == [2])
        index.retain(generation: 3) { [] }
        #expect(index.longestMatch(prompt) == nil && index.count == 0)
    }

    @Test func memoryStaysBoundedUnderManyConversations() {
        let index = PromptIndex(capacity: 4_096, minimumPerReplica: 256)
        var generator = SplitMix64(seed: 5)
        for n in 0..<3_000 {
            index.record(PromptChain(Self.text(n, bytes: 2_000)), replica: generator.next() % 4)
        }
        #expect(index.count <= 4_096)
        for replica in 0..<4 { #expect(index.blocks(heldBy: UInt64(replica)) <= 1_024) }
    }
}

@Suite struct PromptChainTests {
    @Test func aPromptsChainExtendsItsPrefixesChain() {
        let first = String(repeating: "a system prompt that many conversations share. ", count: 10)
        let longer = first + String(repeating: "and then a question. ", count: 20)
        let a = PromptChain(first)
        let b = PromptChain(longer)
        #expect(a.blocks.count == first.utf8.count / PromptChain.blockBytes)
        #expect(a.byteCount == first.utf8.count)
        #expect(Array(b.blocks.prefix(a.blocks.count)) == a.blocks)
        #expect(b.blocks.count > a.blocks.count)
        // One byte changed early changes every later block, none before it.
        var bytes = Array(longer.utf8)
        bytes[200] = UInt8(ascii: "X")
        let changed = PromptChain(String(decoding: bytes, as: UTF8.self))
        #expect(changed.blocks[0] == b.blocks[0] && zip(changed.blocks.dropFirst(), b.blocks.dropFirst()).allSatisfy { $0 != $1 })
        #expect(PromptChain(String(repeating: "x", count: PromptChain.blockBytes - 1)).blocks.isEmpty)
    }

    @Test func blocksDoubleInSizeWithDepthSoALongPromptIsAShortChain() {
        // 128-byte blocks to 4 KiB, then sixteen of each doubled size.
        #expect((0..<34).map(PromptChain.blockSize(at:)) == Array(repeating: 128, count: 32) + [256, 256])
        #expect(PromptChain.blockSize(at: 48) == 512 && PromptChain.blockSize(at: 112) == 8_192)
        var covered = 0
        for count in 0..<200 {
            #expect(PromptChain.bytes(inBlocks: count) == covered)
            #expect(PromptChain.blockCount(forBytes: covered) == count && PromptChain.blockCount(forBytes: covered + PromptChain.blockSize(at: count) - 1) == count)
            covered += PromptChain.blockSize(at: count)
        }
        let body = String(repeating: "y", count: 220_000)
        let chain = PromptChain(body)
        #expect(chain.blocks.count == 122 && PromptChain.blockCount(forBytes: 1 << 20) == 160)
        // Two long prompts that differ only far in are told apart there, not before.
        var other = Array(body.utf8)
        other[200_000] = UInt8(ascii: "z")
        let differing = PromptChain(String(decoding: other, as: UTF8.self))
        let parting = PromptChain.blockCount(forBytes: 200_000)
        #expect(differing.blocks.prefix(parting) == chain.blocks.prefix(parting) && differing.blocks[parting] != chain.blocks[parting])
    }

    @Test func theAnchorIsTheOpeningAndDoesNotChangeWithLaterTurns() {
        let opening = "system prompt\nmy document, all of it"
        let turn1 = PromptChain(opening + "\nfirst question", anchorLength: opening.utf8.count)
        let turn2 = PromptChain(opening + "\nfirst question\nan answer\nsecond question", anchorLength: opening.utf8.count)
        #expect(turn1.anchor == turn2.anchor)
        #expect(PromptChain("system prompt\nanother document\nq", anchorLength: 31).anchor != turn1.anchor)
        // Without an opening, the first 1 KiB.
        let long = String(repeating: "z", count: 2_000)
        #expect(PromptChain(long).anchor == PromptChain(long + "more").anchor)
        #expect(PromptChain("short").anchor != PromptChain("short, longer").anchor)
    }
}
