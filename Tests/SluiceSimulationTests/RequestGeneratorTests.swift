import Foundation
import Testing
import SluiceCore
@testable import SluiceSimulation

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
