import Foundation
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Versioned models through a running gateway: a canary takes its share of sessions and every
/// turn of a session stays on one version; an alias routes like the name; weights change through
/// the admin API and a reload; each version's outcomes are counted apart.
@Suite struct VersionTests {
    static func yaml(_ replicas: [ReplicaID], weights: (Int, Int) = (90, 10)) -> String {
        """
        listen: "127.0.0.1:0"
        admin: { listen: "127.0.0.1:0" }
        pools:
          - name: v1
            match: { paths: ["/v1/*"] }
            replicas: ["\(replicas[0])"]
          - name: v2
            match: { paths: ["/v1/*"] }
            replicas: ["\(replicas[1])"]
        models:
          - name: sim-7b
            aliases: [gpt-default]
            versions: [{ pool: v1, weight: \(weights.0) }, { pool: v2, weight: \(weights.1) }]
        """
    }

    static func run(path: String? = nil, _ body: (GatewayHarness) async throws -> Void) async throws {
        try await GatewayHarness.run(
            replicas: [ReplicaConfiguration(id: "r1"), ReplicaConfiguration(id: "r2")], configurationPath: path,
            configure: { config, ids in
                if let path { try! Self.yaml(ids).write(toFile: path, atomically: true, encoding: .utf8) }
                config = try! GatewayConfiguration.decode(yaml: Self.yaml(ids))
            }, body)
    }

    /// The replica that answered each of `sessions` turns of session `prefix-i` (with `model`).
    static func answers(_ h: GatewayHarness, sessions: Range<Int>, turns: Int = 1, model: String = "sim-7b", prefix: String = "s") async throws -> [Int: [String]] {
        try await withThrowingTaskGroup(of: (Int, [String]).self) { group in
            for session in sessions {
                group.addTask {
                    var seen: [String] = []
                    for turn in 0..<turns {
                        let response = try await h.request(
                            "/v1/chat/completions", headers: [("content-type", "application/json"), ("x-session-id", "\(prefix)-\(session)")],
                            body: chatBody(model: model, prompt: "turn \(turn)"))
                        seen.append(response.status == 200 ? response.header("x-replica-id") ?? "?" : "status \(response.status)")
                    }
                    return (session, seen)
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
    }

    static func count(of replica: String, in answers: [Int: [String]]) -> Int {
        var count = 0
        for turns in answers.values where turns.first == replica { count += 1 }
        return count
    }

    @Test func aTenPercentCanaryTakesTenPercentOfSessionsAndKeepsEachOnOneVersion() async throws {
        try await Self.run { h in
            let answers = try await Self.answers(h, sessions: 0..<500, turns: 2)
            #expect(answers.values.allSatisfy { Set($0).count == 1 }, "a session changed version")
            var canary = 0
            for turns in answers.values where turns.first == "r2" { canary += 1 }
            #expect(answers.values.allSatisfy { $0[0] == "r1" || $0[0] == "r2" })
            #expect((40...60).contains(canary), "\(canary) of 500 sessions on the canary")
            // The alias routes like the name: the same session, the same version.
            let aliased = try await Self.answers(h, sessions: 0..<50, model: "gpt-default")
            for session in 0..<50 { #expect(aliased[session] == [answers[session]![0]]) }
            // Counted per version.
            let view = try await h.adminRequest("/admin/versions")
            #expect(view.status == 200)
            let document = try JSONSerialization.jsonObject(with: Data(view.body.readableBytesView)) as! [String: Any]
            let versions = ((document["models"] as! [[String: Any]])[0]["versions"] as! [[String: Any]])
            #expect(versions.map { $0["pool"] as! String } == ["v1", "v2"])
            #expect(versions[1]["requests"] as? Int == canary * 2 + Self.count(of: "r2", in: aliased))
            #expect(versions[0]["succeeded"] as? Int == versions[0]["requests"] as? Int)
            #expect(versions[1]["p95"] as? Double != nil)
            #expect((versions[1]["tokens"] as? Int ?? 0) > 0)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_version_responses_total{model="sim-7b",pool="v2",role="version",class="2xx"} "#))
        }
    }

    @Test func weightsChangeThroughTheAdminAPIAndAReloadWithBadChangesRefused() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-versions-\(UUID()).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await Self.run(path: path) { h in
            let before = try await Self.answers(h, sessions: 0..<200)
            // All to the new version: every session moves to it.
            let set = try await h.adminRequest("/admin/versions/sim-7b", method: .PUT, body: #"{"weights": {"v1": 0, "v2": 1}}"#)
            #expect(set.status == 200, "\(set.text)")
            #expect(h.gateway.runtime.versions.weights(of: 0) == [0, 1])
            let moved = try await Self.answers(h, sessions: 0..<200)
            #expect(moved.values.allSatisfy { $0 == ["r2"] })
            // Refused, and nothing changes.
            let refusals = [
                ("/admin/versions/nope", #"{"weights": {"v1": 1}}"#, 404, "unknown_model"),
                ("/admin/versions/sim-7b", #"{"weights": {"v9": 1}}"#, 404, "unknown_version"),
                ("/admin/versions/sim-7b", #"{"weights": {"v2": 0}}"#, 400, "invalid_weights"),
                ("/admin/versions/sim-7b", #"{"weights": {"v2": -3}}"#, 400, "invalid_weights"),
                ("/admin/versions/sim-7b", #"{"weight": 3}"#, 400, "invalid_body"),
            ]
            for (uri, body, status, code) in refusals {
                let response = try await h.adminRequest(uri, method: .PUT, body: body)
                #expect(response.status == status && response.text.contains(code), "\(uri) \(body): \(response.status) \(response.text)")
            }
            #expect(h.gateway.runtime.versions.weights(of: 0) == [0, 1])
            // The file's weights come back on reload; the sessions return to where they were.
            let reloaded = try await h.adminRequest("/admin/reload", method: .POST)
            #expect(reloaded.status == 200)
            #expect(reloaded.text.contains(#""sim-7b" : {"#))
            #expect(h.gateway.runtime.versions.weights(of: 0) == [90, 10])
            #expect(try await Self.answers(h, sessions: 0..<200) == before)
            // A reload that changes more than weights is refused whole.
            try Self.yaml(h.replicaIDs, weights: (50, 50)).replacingOccurrences(of: "aliases: [gpt-default]", with: "aliases: [gpt-4]")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let refused = try await h.adminRequest("/admin/reload", method: .POST)
            #expect(refused.status == 400 && refused.text.contains("models"), "\(refused.text)")
            #expect(h.gateway.runtime.versions.weights(of: 0) == [90, 10])
        }
    }

    @Test func anAliasIsRenamedToTheModelsNameForTheReplica() async throws {
        try await Self.run { h in
            let sent = #"{"temperature":0.50,"model":"gpt-default","messages":[{"role":"user","content":"hi"}]}"#
            let response = try await h.request("/v1/echo", headers: [("content-type", "application/json")], body: sent)
            #expect(response.status == 200)
            // The replica serves the name, not the alias; nothing else in the body changed.
            #expect(response.text == #"{"temperature":0.50,"model":"sim-7b","messages":[{"role":"user","content":"hi"}]}"#, "\(response.text)")
            // By its own name, the body goes as sent.
            let named = #"{"model": "sim-7b", "messages": []}"#
            #expect(try await h.request("/v1/echo", headers: [("content-type", "application/json")], body: named).text == named)
        }
    }
}
