import Foundation
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Membership changes while serving: admin add/remove/drain and config reloads swap the pool's
/// snapshot; a request already sent finishes on its replica.
@Suite(.serialized) struct MembershipTests {
    /// The replicas that answered `count` plain requests.
    static func answering(_ h: GatewayHarness, count: Int = 8) async throws -> [String] {
        var ids: [String] = []
        for _ in 0..<count {
            let response = try await h.request("/v1/chat/completions", body: chatBody())
            #expect(response.status == 200)
            ids.append(response.header("x-replica-id") ?? "?")
        }
        return ids
    }

    @Test func addAndRemoveReplicasWhileAStreamRuns() async throws {
        let replicas = [GatewayHarness.slowReplica(interTokenDelay: .milliseconds(10)), ReplicaConfiguration(id: "r2")]
        try await GatewayHarness.run(replicas: replicas, configure: { config, ids in
            config.pools[0].replicas = [ids[0]]
        }) { h in
            let slow = h.replicaIDs[0].description
            let second = h.replicaIDs[1].description
            #expect(Set(try await Self.answering(h, count: 3)) == ["slow"])

            let added = try await h.adminRequest("/admin/pools/chat/replicas", method: .POST, body: #"{"replica": "\#(second)"}"#)
            #expect(added.status == 201)
            #expect(added.text.contains(#""generation" : 2"#))
            #expect(Set(try await Self.answering(h)) == ["slow", "r2"])

            // Bad input: a clear error each, and nothing changes.
            #expect(try await h.adminRequest("/admin/pools/chat/replicas", method: .POST, body: #"{"replica": "\#(second)"}"#).status == 409)
            let invalid = try await h.adminRequest("/admin/pools/chat/replicas", method: .POST, body: #"{"replica": "no-port"}"#)
            #expect(invalid.status == 400)
            #expect(invalid.text.contains("invalid_replica"))
            #expect(try await h.adminRequest("/admin/pools/chat/replicas", method: .POST, body: "{").status == 400)
            #expect(try await h.adminRequest("/admin/pools/nope/replicas", method: .POST, body: #"{"replica": "\#(second)"}"#).status == 404)
            #expect(try await h.adminRequest("/admin/pools/chat/replicas/127.0.0.1:1", method: .DELETE).status == 404)
            #expect(h.gateway.runtime.pools[0].snapshot.generation == 2)

            // A stream on the slow replica, then the slow replica is removed mid-stream: the
            // stream still ends with every token, and new requests go to the other replica only.
            var tokens = 0
            var done = false
            var removed = false
            for _ in 0..<8 {
                let result = try await Self.stream(h, maxTokens: 30, from: "slow") { chunk in
                    tokens += chunk.components(separatedBy: "\"content\"").count - 1
                    if chunk.contains("[DONE]") { done = true }
                    if !removed, tokens == 3 {
                        removed = true
                        let response = try await h.adminRequest("/admin/pools/chat/replicas/\(slow)", method: .DELETE)
                        #expect(response.status == 200)
                        #expect(!response.text.contains(slow))
                        #expect(Set(try await Self.answering(h, count: 4)) == ["r2"])
                    }
                }
                if result { break }
            }
            #expect(removed)
            #expect(done)
            #expect(tokens == 30)
            #expect(Set(try await Self.answering(h)) == ["r2"])
            // The removed replica's requests have all ended: nothing is left counted in flight.
            #expect(h.gateway.runtime.pools[0].snapshot.poolLoad?.inFlight == 0)
        }
    }

    /// Streams a chat completion; when `replica` answered, hands each body chunk to `chunk` and
    /// returns true, else reads the answer to its end and returns false.
    static func stream(
        _ h: GatewayHarness, maxTokens: Int, from replica: String, _ chunk: (String) async throws -> Void
    ) async throws -> Bool {
        let connection = try await TestHTTPConnection.connect(to: h.data, group: h.group)
        return try await connection.channel.executeThenClose { inbound, outbound in
            try await outbound.writeRequest(.POST, "/v1/chat/completions", headers: [("content-type", "application/json")],
                                            body: ByteBuffer(string: chatBody(stream: true, maxTokens: maxTokens)))
            var iterator = inbound.makeAsyncIterator()
            guard case .head(let head) = try await iterator.next() else { return false }
            let mine = head.headers.first(name: "x-replica-id") == replica
            while let part = try await iterator.next() {
                switch part {
                case .body(let buffer): if mine { try await chunk(String(buffer: buffer)) }
                case .end: return mine
                case .head: return false
                }
            }
            return false
        }
    }

    @Test func drainTakesAReplicaOutOfRotationUntilUndrained() async throws {
        try await GatewayHarness.run(replicas: [ReplicaConfiguration(id: "r1"), ReplicaConfiguration(id: "r2")]) { h in
            let first = h.replicaIDs[0].description
            let drained = try await h.adminRequest("/admin/pools/chat/replicas/\(first)/drain", method: .POST)
            #expect(drained.status == 200)
            #expect(drained.text.contains(#""draining" : true"#))
            #expect(Set(try await Self.answering(h)) == ["r2"])
            #expect(try await h.adminRequest("/admin/pools/chat/replicas/\(first)/drain", method: .DELETE).status == 200)
            #expect(Set(try await Self.answering(h)) == ["r1", "r2"])
        }
    }

    static func yaml(replicas: [ReplicaID], policy: String = "round-robin", replicaText: String? = nil) -> String {
        """
        listen: "127.0.0.1:0"
        admin: { listen: "127.0.0.1:0" }
        pools:
          - name: chat
            match: { paths: ["/v1/*"] }
            replicas: \(replicaText ?? "[" + replicas.map { "\"\($0)\"" }.joined(separator: ", ") + "]")
            routing: { policy: \(policy) }
        """
    }

    @Test func reloadSwapsMembershipAndRefusesEverythingElse() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-reload-\(UUID()).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        func write(_ text: String) throws { try text.write(toFile: path, atomically: true, encoding: .utf8) }
        try await GatewayHarness.run(
            replicas: [ReplicaConfiguration(id: "r1"), ReplicaConfiguration(id: "r2")], configurationPath: path,
            configure: { config, ids in
                try! write(Self.yaml(replicas: [ids[0]]))
                config = try! GatewayConfiguration.decode(yaml: Self.yaml(replicas: [ids[0]]))
            }
        ) { h in
            #expect(Set(try await Self.answering(h, count: 3)) == ["r1"])
            // Unchanged file: nothing to do.
            let same = try await h.adminRequest("/admin/reload", method: .POST)
            #expect(same.status == 200)
            #expect(same.text.contains(#""changed" : {"#))
            #expect(h.gateway.runtime.pools[0].snapshot.generation == 1)

            try write(Self.yaml(replicas: h.replicaIDs))
            let grown = try await h.adminRequest("/admin/reload", method: .POST)
            #expect(grown.status == 200)
            #expect(grown.text.contains(h.replicaIDs[1].description))
            #expect(Set(try await Self.answering(h)) == ["r1", "r2"])

            // A file that does not validate: the error names the key path and line; nothing changes.
            try write(Self.yaml(replicas: [], replicaText: #"["127.0.0.1:99999"]"#))
            let invalid = try await h.adminRequest("/admin/reload", method: .POST)
            #expect(invalid.status == 400)
            #expect(invalid.text.contains("reload_rejected"))
            #expect(invalid.text.contains("pools[0].replicas[0]"))
            #expect(invalid.text.contains("line 6"))
            // A change beyond membership: refused whole, naming the key, replicas untouched too.
            try write(Self.yaml(replicas: [h.replicaIDs[1]], policy: "least-queue"))
            let refused = try await h.adminRequest("/admin/reload", method: .POST)
            #expect(refused.status == 400)
            #expect(refused.text.contains("pools[0].routing"))
            #expect(Set(try await Self.answering(h)) == ["r1", "r2"])
            #expect(h.gateway.runtime.pools[0].snapshot.generation == 2)

            // Shrinking by reload.
            try write(Self.yaml(replicas: [h.replicaIDs[1]]))
            #expect(try await h.adminRequest("/admin/reload", method: .POST).status == 200)
            #expect(Set(try await Self.answering(h)) == ["r2"])
        }
    }

    @Test func reloadWithoutAFileSaysSo() async throws {
        try await GatewayHarness.run { h in
            let response = try await h.adminRequest("/admin/reload", method: .POST)
            #expect(response.status == 409)
            #expect(response.text.contains("reload_unavailable"))
        }
    }

    @Test func reloadPlanNamesEveryRefusedKey() throws {
        let base = try GatewayConfiguration.decode(yaml: Self.yaml(replicas: [ReplicaID(host: "10.0.0.1", port: 80)]))
        var changed = base
        changed.listen = ReplicaID(host: "127.0.0.1", port: 1)
        changed.pools[0].timeouts.connect = .seconds(9)
        changed.pools[0].replicas = [ReplicaID(host: "10.0.0.2", port: 80)]
        guard case .failure(let error) = ReloadPlan.make(running: base, new: changed) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(error.issues.map(\.path) == ["listen", "pools[0].timeouts"])
        var renamed = base
        renamed.pools[0].name = "other"
        guard case .failure(let renameError) = ReloadPlan.make(running: base, new: renamed) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(renameError.issues.map(\.path) == ["pools"])
        var members = base
        members.pools[0].replicas = [ReplicaID(host: "10.0.0.2", port: 80), ReplicaID(host: "10.0.0.3", port: 80)]
        #expect(ReloadPlan.make(running: base, new: members) == .success(ReloadPlan(membership: ["chat": members.pools[0].replicas])))
        #expect(ReloadPlan.make(running: base, new: base) == .success(ReloadPlan(membership: [:])))
    }
}
