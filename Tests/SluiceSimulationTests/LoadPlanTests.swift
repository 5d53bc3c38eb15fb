import Foundation
import Testing
import SluiceCore
@testable import SluiceSimulation

@Suite struct ArrivalPlanTests {
    static func times(_ phases: [ArrivalPlan.Phase], seed: UInt64 = 1) -> [Double] {
        var schedule = ArrivalSchedule(plan: ArrivalPlan(phases: phases), generator: SplitMix64(seed: seed))
        var times: [Double] = []
        while let next = schedule.next(), times.count < 1_000_000 { times.append(next.seconds) }
        return times
    }

    @Test func uniformConstantSendsAtExactIntervals() {
        let times = Self.times([.init(shape: .constant(rate: 10), duration: .seconds(2), process: .uniform)])
        #expect(times.count == 20)
        for (index, time) in times.enumerated() {
            #expect(abs(time - Double(index) * 0.1) < 0.001, "send \(index) at \(time)")
        }
    }

    @Test func everyShapeSendsWhatItsRateIntegratesTo() {
        let cases: [(ArrivalPlan.Shape, Double)] = [
            (.ramp(from: 0, to: 10), 10),  // 2 s, mean 5/s
            (.step(from: 5, to: 15, at: .seconds(1)), 20),
            (.sine(mean: 10, amplitude: 5, period: .seconds(2)), 20),
        ]
        for (shape, expected) in cases {
            let phase = ArrivalPlan.Phase(shape: shape, duration: .seconds(2), process: .uniform)
            #expect(abs(phase.expectedCount - expected) < 0.01)
            let times = Self.times([phase])
            #expect(abs(Double(times.count) - expected) <= 1, "\(shape): \(times.count)")
            #expect(times == times.sorted() && times.allSatisfy { $0 >= 0 && $0 < 2 })
        }
        // A step: 5/s in the first second, 15/s in the second.
        let step = Self.times([.init(shape: .step(from: 5, to: 15, at: .seconds(1)), duration: .seconds(2), process: .uniform)])
        #expect(abs(step.filter { $0 < 1 }.count - 5) <= 1 && abs(step.filter { $0 >= 1 }.count - 15) <= 1)
        // A sine peaks in its first half-period.
        let sine = Self.times([.init(shape: .sine(mean: 100, amplitude: 80, period: .seconds(2)), duration: .seconds(2), process: .uniform)])
        #expect(sine.filter { $0 < 1 }.count > 3 * sine.filter { $0 >= 1 }.count)
    }

    @Test func poissonIsRandomButSeededAndAverageRight() {
        let phase = ArrivalPlan.Phase(shape: .constant(rate: 100), duration: .seconds(10), process: .poisson)
        let first = Self.times([phase], seed: 7)
        #expect(first == Self.times([phase], seed: 7))
        #expect(first != Self.times([phase], seed: 8))
        #expect(abs(first.count - 1000) < 100)  // σ ≈ 32
        // Gaps are exponential: their coefficient of variation is about 1 (uniform gives 0).
        let gaps = zip(first.dropFirst(), first).map { $0 - $1 }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        let sd = (gaps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gaps.count)).squareRoot()
        #expect(abs(sd / mean - 1) < 0.15)
        // A Poisson ramp (thinning) still follows the rate.
        let ramp = Self.times([.init(shape: .ramp(from: 0, to: 200), duration: .seconds(10))], seed: 3)
        #expect(abs(ramp.count - 1000) < 100)
        #expect(ramp.filter { $0 >= 5 }.count > 2 * ramp.filter { $0 < 5 }.count)
    }

    @Test func phasesFollowEachOther() {
        let times = Self.times([
            .init(shape: .constant(rate: 10), duration: .seconds(1), process: .uniform),
            .init(shape: .constant(rate: 0), duration: .seconds(1), process: .uniform),
            .init(shape: .constant(rate: 20), duration: .seconds(1), process: .uniform),
        ])
        #expect(times.count == 30)
        #expect(times.filter { $0 >= 1 && $0 < 2 }.isEmpty)
        #expect(abs(times[10] - 2.0) < 0.001)
        #expect(ArrivalPlan(phases: [.init(shape: .constant(rate: 1), duration: .seconds(3))]).duration == .seconds(3))
    }

    @Test func mathWithoutFoundation() {
        for x in stride(from: 0.0, through: 3, by: 0.05) {
            #expect(abs(sin2pi(x) - Foundation.sin(2 * Double.pi * x)) < 1e-9)
        }
        for x in [1e-12, 1e-3, 0.5, 1, 2, 10, 12345.678] {
            #expect(abs(SluiceSimulation.log(x) - Foundation.log(x)) < 1e-9)
        }
    }
}

@Suite struct RequestGeneratorTests {
    @Test func chatSessionsGrowAndShareSystemPrompts() {
        var chat = Workload.Chat()
        chat.users = 1
        chat.turns = 3
        chat.systemPrompts = 1
        chat.streamFraction = 0
        var generator = RequestGenerator(mix: [.init(weight: 1, workload: .chat(chat))], generator: SplitMix64(seed: 1))
        let requests = (0..<4).map { _ in generator.next() }
        let sessions = requests.map { request in request.headers.first { $0.0 == "x-session-id" }!.1 }
        // One user: three turns in one session, then a new session.
        #expect(sessions[0] == sessions[1] && sessions[1] == sessions[2] && sessions[3] != sessions[0])
        let counts = requests.map { $0.body.components(separatedBy: "\"role\":").count - 1 }
        #expect(counts == [2, 4, 6, 2])  // system + user, then +user +assistant per turn
        // Every session starts with the same (only) system prompt: a shared prefix.
        let prefix = { (body: String) in String(body[body.range(of: "\"messages\":[")!.upperBound...].prefix(200)) }
        #expect(prefix(requests[0].body) == prefix(requests[3].body))
        #expect(requests.allSatisfy { !$0.stream && $0.path == "/v1/chat/completions" })
        // The history carries the simulator's answer to the previous turn's prompt (the
        // messages' contents joined by newlines, as the replica reads them).
        let contents = { (body: String) -> [String] in
            body.components(separatedBy: "\"content\":\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
        }
        let first = contents(requests[0].body)
        let second = contents(requests[1].body)
        #expect(second.count == 4 && Array(second.prefix(2)) == first)
        #expect(second[2] == SimReply.text(prompt: first.joined(separator: "\n"), count: chat.maxTokens))
    }

    @Test func aDocumentOpensEveryTurnAndASessionStartsOverOnIt() {
        var chat = Workload.Chat()
        chat.users = 1
        chat.turns = 2
        chat.documentWords = 40
        chat.restartSameSession = true
        chat.streamFraction = 0
        var generator = RequestGenerator(mix: [.init(weight: 1, workload: .chat(chat))], generator: SplitMix64(seed: 2))
        let requests = (0..<3).map { _ in generator.next() }
        let contents = { (body: String) -> [String] in
            body.components(separatedBy: "\"content\":\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
        }
        let turns = requests.map { contents($0.body) }
        // System, document, question; then the answer (to system + document + question) and more.
        #expect(turns.map(\.count) == [3, 5, 3])
        #expect(turns[0][1].split(separator: " ").count == 40)
        #expect(turns[1][3] == SimReply.text(prompt: turns[0].joined(separator: "\n"), count: chat.maxTokens))
        // After two turns the same session starts over: same id, same document, history gone.
        let sessions = requests.map { request in request.headers.first { $0.0 == "x-session-id" }!.1 }
        #expect(Set(sessions).count == 1)
        #expect(turns[2][0] == turns[0][0] && turns[2][1] == turns[0][1] && turns[2][2] != turns[0][2])
    }

    @Test func mixesAndTenantsFollowTheirWeights() {
        var embeddings = Workload.Embeddings()
        embeddings.inputs = 3
        var infer = Workload.Infer()
        infer.rows = 2
        infer.columns = 2
        var generator = RequestGenerator(
            mix: [.init(weight: 3, workload: .embeddings(embeddings)), .init(weight: 1, workload: .infer(infer))],
            tenants: [.init(name: "a", apiKey: "ka", weight: 1), .init(name: "b", apiKey: "kb", weight: 9)],
            generator: SplitMix64(seed: 5))
        let requests = (0..<4000).map { _ in generator.next() }
        let embeddingShare = Double(requests.filter { $0.workload == "embeddings" }.count) / 4000
        #expect(abs(embeddingShare - 0.75) < 0.03)
        let tenantB = Double(requests.filter { $0.tenant == "b" }.count) / 4000
        #expect(abs(tenantB - 0.9) < 0.03)
        let first = requests.first { $0.workload == "embeddings" }!
        let object = try? JSONSerialization.jsonObject(with: Data(first.body.utf8)) as? [String: Any]
        #expect((object?["input"] as? [String])?.count == 3)
        #expect(first.headers.contains { $0 == ("authorization", "Bearer kb") || $0 == ("authorization", "Bearer ka") })
        let inferRequest = requests.first { $0.workload == "infer" }!
        #expect(inferRequest.path == "/v2/models/sim-7b/infer" && inferRequest.body.contains("\"shape\":[2,2]"))
        // Same seed, same requests.
        var again = RequestGenerator(
            mix: [.init(weight: 3, workload: .embeddings(embeddings)), .init(weight: 1, workload: .infer(infer))],
            tenants: [.init(name: "a", apiKey: "ka", weight: 1), .init(name: "b", apiKey: "kb", weight: 9)],
            generator: SplitMix64(seed: 5))
        #expect((0..<4000).map { _ in again.next() } == requests)
    }
}
