import Foundation
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// A versioned model's shadow: copies of a share of its requests reach the candidate pool, are
/// counted beside the versions, and change nothing the clients get; a slow candidate holds at
/// most `max_in_flight` copies and the rest are skipped.
@Suite struct ShadowTests {
    static func run(
        candidate: ReplicaConfiguration, shadow: String, _ body: (GatewayHarness, ShadowMirror) async throws -> Void
    ) async throws {
        try await GatewayHarness.run(
            replicas: [ReplicaConfiguration(id: "r1"), candidate],
            configure: { config, ids in
                config = try! GatewayConfiguration.decode(yaml: """
                listen: "127.0.0.1:0"
                admin: { listen: "127.0.0.1:0" }
                pools:
                  - name: stable
                    match: { paths: ["/v1/*"] }
                    replicas: ["\(ids[0])"]
                  - name: candidate
                    match: { paths: ["/v1/*"], models: [candidate-only] }
                    replicas: ["\(ids[1])"]
                models:
                  - name: sim-7b
                    versions: [{ pool: stable }]
                    shadow: \(shadow)
                """)
            }
        ) { h in
            try await body(h, h.gateway.runtime.versions.models[0].shadow!)
        }
    }

    static func ask(_ h: GatewayHarness, count: Int) async throws -> [String] {
        try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<count {
                group.addTask {
                    let response = try await h.request("/v1/chat/completions", body: chatBody(prompt: "question \(index)"))
                    return response.status == 200 ? response.header("x-replica-id") ?? "?" : "status \(response.status)"
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    @Test func copiesReachTheCandidateAndAreCountedWhileClientsGetTheVersionsAnswers() async throws {
        try await Self.run(candidate: ReplicaConfiguration(id: "candidate"), shadow: "{ pool: candidate, share: 1, max_in_flight: 32 }") { h, shadow in
            let answered = try await Self.ask(h, count: 20)
            #expect(answered == [String](repeating: "r1", count: 20))
            #expect(await eventually(timeout: .seconds(5)) { shadow.stats.duration.count == 20 })
            #expect(shadow.stats.succeeded == 20)
            #expect(shadow.stats.tokens.value > 0)
            #expect(shadow.skipped == 0)
            let view = try await h.adminRequest("/admin/versions").text
            #expect(view.contains(#""shadow" : {"#))
            #expect(view.contains(#""pool" : "candidate""#))
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_version_responses_total{model="sim-7b",pool="candidate",role="shadow",class="2xx"} 20"#))
        }
    }

    @Test func aSlowCandidateHoldsAtMostMaxInFlightCopiesAndDelaysNoClient() async throws {
        var slow = GatewayHarness.slowReplica(interTokenDelay: .milliseconds(500))
        slow.id = "candidate"
        try await Self.run(candidate: slow, shadow: "{ pool: candidate, share: 1, max_in_flight: 2 }") { h, shadow in
            let answered = try await Self.ask(h, count: 10)
            #expect(answered == [String](repeating: "r1", count: 10))
            // Every client has its answer while the copies are still being answered.
            #expect(shadow.stats.duration.count == 0)
            #expect(shadow.skipped == 8)
            #expect(await eventually(timeout: .seconds(10)) { shadow.stats.duration.count == 2 })
        }
    }

    @Test func aCandidateThatFailsChangesNothingForClients() async throws {
        var failing = ReplicaConfiguration(id: "candidate")
        failing.faults.errorRate = 1
        try await Self.run(candidate: failing, shadow: "{ pool: candidate, share: 1 }") { h, shadow in
            let answered = try await Self.ask(h, count: 10)
            #expect(answered == [String](repeating: "r1", count: 10))
            #expect(await eventually(timeout: .seconds(5)) { shadow.stats.duration.count == 10 })
            #expect(shadow.stats.failed == 10)
        }
    }

    @Test func aShadowIsAPoolThatIsNotAVersion() {
        let yaml = """
        listen: "127.0.0.1:8080"
        admin: { listen: "127.0.0.1:9090" }
        pools: [{ name: a, match: { paths: ["/v1/*"] }, replicas: ["127.0.0.1:9001"] }]
        models: [{ name: m, versions: [{ pool: a }], shadow: { pool: a, share: 2 } }]
        """
        do {
            _ = try GatewayConfiguration.decode(yaml: yaml)
            Issue.record("accepted")
        } catch {
            let found = error.issues.map { "\($0.path): \($0.message)" }
            #expect(found.contains { $0.hasPrefix("models[0].shadow.share") }, "\(found)")
        }
        let second = yaml.replacingOccurrences(of: "share: 2", with: "share: 0.5")
        do {
            _ = try GatewayConfiguration.decode(yaml: second)
            Issue.record("accepted")
        } catch {
            let found = error.issues.map { "\($0.path): \($0.message)" }
            #expect(found.contains { $0.hasPrefix("models[0].shadow.pool") && $0.contains("is a version of m") }, "\(found)")
        }
    }
}
