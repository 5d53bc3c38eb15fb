import Testing
@testable import SluiceSimulation

@Suite struct BatchEngineTests {
    static let profile = EngineProfile(
        maxRunning: 4, maxBatchedTokens: 256, blockSize: 16, kvBlocks: 200,
        stepBase: .milliseconds(10), decodePerSequence: .milliseconds(1), prefillPerToken: .microseconds(100))

    /// `count` words of 4 letters (one token each), different for each salt.
    static func text(words count: Int, salt: String = "") -> String {
        (0..<count).map { index in
            var hash = SimTokenizer.fnv1a("\(salt)#\(index)".utf8)
            return String((0..<4).map { _ in
                defer { hash /= 26 }
                return Character(Unicode.Scalar(UInt8(ascii: "a") + UInt8(hash % 26)))
            })
        }.joined(separator: " ")
    }

    static func request(_ id: Int, words: Int, salt: String = "", maxTokens: Int = 4) -> BatchEngine.Request {
        let tokens = SimTokenizer.tokens(text(words: words, salt: salt))
        return .init(id: id, promptTokens: tokens.count, blockHashes: SimTokenizer.blockHashes(tokens, blockSize: 16), maxTokens: maxTokens)
    }

    /// Runs until idle; returns when each request got its first token and finished.
    static func run(_ engine: inout BatchEngine) -> (first: [Int: Duration], done: [Int: Duration]) {
        var now = Duration.zero
        var first: [Int: Duration] = [:]
        var done: [Int: Duration] = [:]
        var steps = 0
        while let step = engine.step(), steps < 10_000 {
            now += step.duration
            steps += 1
            for event in step.events {
                switch event {
                case .token(let id, 0): first[id] = now
                case .token: break
                case .finished(let id): done[id] = now
                }
            }
        }
        return (first, done)
    }

    @Test func theTokenizerIsDocumentedAndStable() {
        #expect(SimTokenizer.count("hello world") == 4)  // hell·o worl·d
        #expect(SimTokenizer.count("a bb ccc dddd eeeee") == 6)
        #expect(SimTokenizer.tokens("abcdefgh abcd") == SimTokenizer.tokens("abcd efgh\nabcd"))
        #expect(SimTokenizer.tokens("abcd") == SimTokenizer.tokens("  abcd \t"))
        #expect(SimTokenizer.tokens("hello world").count == SimTokenizer.count("hello world"))
        let tokens = SimTokenizer.tokens(String(repeating: "word ", count: 40))
        #expect(SimTokenizer.blockHashes(tokens, blockSize: 16).count == 2)  // 40 tokens: two full blocks
        // Chained: a block's hash depends on everything before it.
        let other = SimTokenizer.tokens("x " + String(repeating: "word ", count: 40))
        #expect(SimTokenizer.blockHashes(other, blockSize: 16)[1] != SimTokenizer.blockHashes(tokens, blockSize: 16)[1])
    }

    @Test func aFinishedAnswerStaysCachedForTheNextTurn() {
        // Turn 1: a 100-token prompt and a 40-token answer; 140 tokens = 8 full blocks, of
        // which the prompt's own are 6.
        let prompt = Self.text(words: 100, salt: "turn1")
        let answer = SimReply.text(prompt: prompt, count: 40)
        #expect(SimTokenizer.count(answer) == 40)  // one token per answer word
        let promptIDs = SimTokenizer.tokens(prompt)
        let answerBlocks = SimReply.answerBlockHashes(promptTokens: promptIDs, answer: answer, blockSize: 16)
        #expect(answerBlocks.count == 2)
        var engine = BatchEngine(profile: Self.profile)
        engine.submit(.init(
            id: 1, promptTokens: promptIDs.count, blockHashes: SimTokenizer.blockHashes(promptIDs, blockSize: 16),
            maxTokens: 40, answerBlockHashes: answerBlocks))
        _ = Self.run(&engine)
        #expect(engine.cache.cachedBlocks == 8)
        #expect(engine.cache.reserved == 0)
        // Turn 2 carries the answer and a new question: everything up to the answer's last full
        // block is a hit.
        let next = SimTokenizer.tokens([prompt, answer, Self.text(words: 30, salt: "turn2")].joined(separator: "\n"))
        engine.submit(.init(id: 2, promptTokens: next.count, blockHashes: SimTokenizer.blockHashes(next, blockSize: 16), maxTokens: 1))
        _ = Self.run(&engine)
        #expect(engine.lastAdmittedCachedTokens == 128)
        // Without the answer's blocks (a different answer in the history), only the prompt's.
        var other = BatchEngine(profile: Self.profile)
        other.submit(Self.request(1, words: 100, salt: "turn1", maxTokens: 40))
        _ = Self.run(&other)
        other.submit(.init(id: 2, promptTokens: next.count, blockHashes: SimTokenizer.blockHashes(next, blockSize: 16), maxTokens: 1))
        _ = Self.run(&other)
        #expect(other.lastAdmittedCachedTokens == 96)
    }

    @Test func aCachedPrefixPrefillsFaster() {
        var engine = BatchEngine(profile: Self.profile)
        engine.submit(Self.request(1, words: 640, maxTokens: 1))
        let cold = Self.run(&engine).first[1]!
        #expect(engine.lastAdmittedCachedTokens == 0)
        engine.submit(Self.request(2, words: 640, maxTokens: 1))
        let warm = Self.run(&engine).first[2]!
        // 640 tokens: 3 steps of 256-token chunks cold; warm, all but one token come from the cache.
        #expect(cold == .milliseconds(10) * 3 + .microseconds(100) * 640)
        #expect(engine.lastAdmittedCachedTokens == 639)
        #expect(warm == .milliseconds(10) + .microseconds(100))
        #expect(engine.cache.queriedTokens == 1280 && engine.cache.hitTokens == 639)
        // A different prompt shares nothing.
        engine.submit(Self.request(3, words: 640, salt: "z", maxTokens: 1))
        _ = Self.run(&engine)
        #expect(engine.lastAdmittedCachedTokens == 0)
    }

    @Test func aDecodeStepGrowsWithRunningSequences() {
        for running in 1...4 {
            var engine = BatchEngine(profile: Self.profile)
            for id in 0..<running { engine.submit(Self.request(id, words: 16, salt: "\(id)", maxTokens: 8)) }
            let prefill = engine.step()!
            #expect(prefill.prefilled == 16 * running && prefill.decoding == 0)
            let decode = engine.step()!
            #expect(decode.decoding == running)
            #expect(decode.duration == .milliseconds(10) + .milliseconds(1) * running)
        }
    }

    @Test func requestsQueueOnceRunningSequencesHitTheCap() {
        var engine = BatchEngine(profile: Self.profile)
        for id in 0..<6 { engine.submit(Self.request(id, words: 16, salt: "\(id)", maxTokens: 3)) }
        _ = engine.step()
        #expect(engine.runningCount == 4 && engine.waitingCount == 2)
        let times = Self.run(&engine)
        #expect(times.done.count == 6)
        // The two that waited got their first token only after the first four finished.
        let lastOfFirstFour = (0..<4).map { times.done[$0]! }.max()!
        #expect(times.first[4]! > lastOfFirstFour && times.first[5]! > lastOfFirstFour)
        #expect(engine.isIdle && engine.cache.reserved == 0)
    }

    @Test func kvBlocksLimitAdmissionAndEvictLeastRecentlyUsedPrefixes() {
        var profile = Self.profile
        profile.kvBlocks = 10
        var engine = BatchEngine(profile: profile)
        // Each needs (64 + 16) / 16 = 5 blocks: two fit, the third waits for room.
        for id in 0..<3 { engine.submit(Self.request(id, words: 64, salt: "\(id)", maxTokens: 16)) }
        _ = engine.step()
        #expect(engine.runningCount == 2 && engine.waitingCount == 1)
        _ = Self.run(&engine)
        #expect(engine.isIdle)
        // Only the most recent prompts' blocks survive in a 10-block cache.
        let newest = SimTokenizer.blockHashes(SimTokenizer.tokens(Self.text(words: 64, salt: "2")), blockSize: 16)
        #expect(newest.allSatisfy { engine.cache.contains($0) })
        #expect(engine.cache.cachedBlocks <= 10)
    }

    @Test func aRequestThatCanNeverFitIsRefusedNotQueuedForever() {
        var profile = Self.profile
        profile.kvBlocks = 10
        var engine = BatchEngine(profile: profile)
        // (160 + 16) / 16 = 11 blocks: more than the GPU has.
        let refused = engine.submit(Self.request(1, words: 160, maxTokens: 16))
        let accepted = engine.submit(Self.request(2, words: 16, maxTokens: 16))
        #expect(!refused && accepted)
        _ = Self.run(&engine)
        #expect(engine.isIdle)
    }

    @Test func cachedPromptBlocksAreSharedNotReservedAgain() {
        // 12 blocks: a 64-token prompt (4 full blocks) is cached. The same prompt with room for
        // 128 output tokens needs 12 blocks: its 4 cached ones are shared, 8 more reserved, so it
        // fits exactly (a model that reserved its whole prompt again would need 16).
        var profile = Self.profile
        profile.kvBlocks = 12
        var engine = BatchEngine(profile: profile)
        engine.submit(Self.request(1, words: 64, maxTokens: 1))
        _ = Self.run(&engine)
        #expect(engine.cache.cachedBlocks == 4 && engine.cache.usage == 0)
        engine.submit(Self.request(2, words: 64, maxTokens: 128))
        _ = engine.step()
        #expect(engine.runningCount == 1 && engine.lastAdmittedCachedTokens == 63)
        #expect(engine.cache.usage == 1 && engine.cache.reserved == 8)
        // Two sequences on one prompt hold its blocks once; the blocks stay cached after both.
        var shared = BatchEngine(profile: Self.profile)
        shared.submit(Self.request(3, words: 64, maxTokens: 4))
        shared.submit(Self.request(4, words: 64, maxTokens: 4))
        _ = Self.run(&shared)
        #expect(shared.cache.cachedBlocks == 4 && shared.cache.reserved == 0 && shared.cache.usage == 0)
        // A different prompt needing every block evicts the idle cached ones.
        var evicting = BatchEngine(profile: profile)
        evicting.submit(Self.request(5, words: 64, maxTokens: 1))
        _ = Self.run(&evicting)
        evicting.submit(Self.request(6, words: 64, salt: "other", maxTokens: 128))
        _ = evicting.step()
        #expect(evicting.runningCount == 1 && evicting.lastAdmittedCachedTokens == 0)
        #expect(!SimTokenizer.blockHashes(SimTokenizer.tokens(Self.text(words: 64)), blockSize: 16).contains { evicting.cache.contains($0) })
    }

    @Test func cancelFreesBlocks() {
        var engine = BatchEngine(profile: Self.profile)
        engine.submit(Self.request(1, words: 64, maxTokens: 100))
        engine.submit(Self.request(2, words: 64, salt: "b", maxTokens: 100))
        _ = engine.step()
        #expect(engine.cache.reserved > 0)
        engine.cancel(id: 1)
        engine.cancel(id: 2)
        #expect(engine.isIdle && engine.cache.reserved == 0)
        #expect(engine.step() == nil)
    }
}
