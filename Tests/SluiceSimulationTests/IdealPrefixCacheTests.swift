import Testing
@testable import SluiceSimulation

@Suite struct IdealPrefixCacheTests {
    @Test func theCeilingMissesOnlyWhatNoReplicaHasSeen() {
        var cache = IdealPrefixCache(blockSize: 16)
        let first = (1...40).map { "w\($0)" }.joined(separator: " ")
        let answer = SimReply.text(prompt: first, count: 16)
        cache.serve(prompt: first, answer: answer)
        #expect(cache.queriedTokens == 40 && cache.hitTokens == 0)
        // The next turn: the first prompt, its answer (40 + 16 tokens: three full blocks, all
        // seen) and a new question of 20 tokens (never seen).
        let second = first + "\n" + answer + "\n" + (1...20).map { "q\($0)" }.joined(separator: " ")
        cache.serve(prompt: second, answer: SimReply.text(prompt: second, count: 16))
        #expect(cache.queriedTokens == 116 && cache.hitTokens == 48)
        // The first prompt again: its two full blocks.
        cache.serve(prompt: first, answer: answer)
        #expect(cache.hitTokens == 80)
        #expect(abs(cache.hitRate - 80.0 / 156.0) < 1e-12)
    }
}
