import Testing
@testable import SluiceCore

@Suite struct VersionSplitTests {
    static let sessions = (0..<10_000).map { "session-\($0)" }

    func shares(_ split: VersionSplit, model: String = "llama") -> [Double] {
        var counts = [Int](repeating: 0, count: split.weights.count)
        for key in Self.sessions { counts[split.version(forKey: key, model: model)] += 1 }
        return counts.map { Double($0) / Double(Self.sessions.count) }
    }

    @Test func aTenPercentCanaryTakesTenPercentOfSessions() throws {
        let split = try #require(VersionSplit(weights: [90, 10]))
        let canary = shares(split)[1]
        #expect(abs(canary - 0.10) < 0.01, "\(canary)")
        #expect(split.share(of: 1) == 0.1)
        // Three versions, weights not summing to 100.
        let three = shares(try #require(VersionSplit(weights: [2, 1, 1])))
        #expect(abs(three[0] - 0.5) < 0.015 && abs(three[1] - 0.25) < 0.015 && abs(three[2] - 0.25) < 0.015, "\(three)")
    }

    @Test func aSessionStaysOnItsVersionAndGrowingTheCanaryOnlyMovesSessionsToIt() throws {
        let before = try #require(VersionSplit(weights: [90, 10]))
        let after = try #require(VersionSplit(weights: [80, 20]))
        var moved = 0
        for key in Self.sessions {
            let first = before.version(forKey: key, model: "llama")
            #expect(before.version(forKey: key, model: "llama") == first)
            let second = after.version(forKey: key, model: "llama")
            if first != second {
                #expect(first == 0 && second == 1)
                moved += 1
            }
        }
        #expect(abs(Double(moved) / Double(Self.sessions.count) - 0.10) < 0.01, "\(moved)")
    }

    @Test func modelsSplitTheirSessionsIndependently() throws {
        let split = try #require(VersionSplit(weights: [50, 50]))
        let same = Self.sessions.filter { split.version(forKey: $0, model: "a") == split.version(forKey: $0, model: "b") }.count
        // Independent halves agree about half the time, not always.
        #expect(abs(Double(same) / Double(Self.sessions.count) - 0.5) < 0.02, "\(same)")
    }

    @Test func zeroWeightsAreNeverChosenAndBadWeightsMakeNoSplit() throws {
        let split = try #require(VersionSplit(weights: [0, 1, 0]))
        #expect(Self.sessions.allSatisfy { split.version(forKey: $0, model: "m") == 1 })
        var random = SystemRandomNumberGenerator()
        #expect((0..<1_000).allSatisfy { _ in split.version(using: &random) == 1 })
        #expect(split.version(at: 0) == 1)
        #expect(split.version(at: 0.999_999) == 1)
        #expect(VersionSplit(weights: []) == nil)
        #expect(VersionSplit(weights: [0, 0]) == nil)
        #expect(VersionSplit(weights: [1, -1]) == nil)
        #expect(VersionSplit(weights: [1, .infinity]) == nil)
    }

    @Test func keylessRequestsFollowTheWeights() throws {
        let split = try #require(VersionSplit(weights: [3, 1]))
        var random = SplitMix64(seed: 7)
        let canary = (0..<20_000).filter { _ in split.version(using: &random) == 1 }.count
        #expect(abs(Double(canary) / 20_000 - 0.25) < 0.015, "\(canary)")
    }
}
