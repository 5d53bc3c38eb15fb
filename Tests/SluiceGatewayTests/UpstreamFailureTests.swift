import Foundation
import NIOCore
import NIOPosix
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Replicas failing through a running gateway: passive ejection (a replica that fails
/// `eject_after` times in a row gets nothing until `eject_for` ends, then is tried again), the
/// connect timeout (a replica that takes no connection), and the idle timeout (a replica that
/// goes silent mid-answer).
@Suite(.serialized) struct UpstreamFailureTests {
    /// The admin view (`/admin/pools`) of one replica of the first pool.
    static func replicaView(_ h: GatewayHarness, _ id: ReplicaID) async throws -> [String: Any]? {
        let text = try await h.adminRequest("/admin/pools").text
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        let replicas = ((object?["pools"] as? [[String: Any]])?.first?["replicas"] as? [[String: Any]]) ?? []
        return replicas.first { $0["id"] as? String == id.description }
    }

    /// `sluice_upstream_connects{result="failed"}` for one replica of the pool `chat`.
    static func failedConnects(_ h: GatewayHarness, _ id: ReplicaID) async throws -> Int? {
        let prefix = #"sluice_upstream_connects{pool="chat",replica="\#(id)",result="failed"} "#
        let line = try await h.adminRequest("/metrics").text.split(separator: "\n").first { $0.hasPrefix(prefix) }
        // (A gauge: Prometheus text writes it as a float.)
        return line.flatMap { Double($0.dropFirst(prefix.count)) }.map { Int($0) }
    }

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    @Test func aReplicaThatKeepsClosingBeforeAnsweringIsEjectedForEjectForThenTakenBack() async throws {
        var failing = ReplicaConfiguration(id: "failing")
        failing.faults.closeConnections = true
        try await GatewayHarness.run(replicas: [ReplicaConfiguration(id: "steady"), failing], configure: { config, _ in
            config.pools[0].ejection = EjectionPolicy(consecutiveFailures: 3, duration: 2_000_000_000)
        }) { h in
            try await Self.ejectionCycle(h)
        }
    }

    static func ejectionCycle(_ h: GatewayHarness) async throws {
        let failing = try #require(h.gateway.runtime.pools[0].snapshot.replicas.first { $0.id == h.replicaIDs[1] })
        // Round-robin: every other request goes to the failing replica, which reads it and closes
        // the connection; a request already sent is not retried, so each of those is a 502.
        var failures = 0
        var sent = 0
        while sent < 12, !failing.isEjected(at: now()) {
            let response = try await h.request("/v1/chat/completions", body: chatBody())
            sent += 1
            if response.status == 502 {
                failures += 1
                #expect(response.text.contains("closed the connection before answering"), "\(response.text)")
            } else {
                #expect(response.status == 200 && response.header("x-replica-id") == "steady")
            }
        }
        #expect(failing.isEjected(at: now()), "ejected after \(sent) requests")
        #expect(failures == 3, "eject_after is 3; the replica failed \(failures) times before it was ejected")

        // Out of rotation, as the admin view and the metrics say.
        let ejected = try #require(try await Self.replicaView(h, failing.id))
        #expect(ejected["available"] as? Bool == false)
        #expect((ejected["ejected_for_ms"] as? Int ?? 0) > 0, "\(ejected)")
        let metrics = try await h.adminRequest("/metrics").text
        #expect(metrics.contains(#"sluice_replica_available{pool="chat",replica="\#(failing.id)"} 0"#))
        #expect(metrics.contains(#"sluice_replica_available{pool="chat",replica="\#(h.replicaIDs[0])"} 1"#))

        // While it is out, nothing is sent to it (a request that reached it would be a 502). The
        // loop stops while half a second of the ejection is left, so no request races its end.
        var whileEjected = 0
        while whileEjected < 10, failing.ejectedUntil > now() + 500_000_000 {
            let response = try await h.request("/v1/chat/completions", body: chatBody())
            #expect(response.status == 200 && response.header("x-replica-id") == "steady", "\(response.status) \(response.text)")
            whileEjected += 1
        }
        #expect(whileEjected >= 2, "only \(whileEjected) requests were sent while it was out")

        // Healed, it is back in rotation once eject_for has passed, and gets requests again.
        h.replicas[1].faults.closeConnections = false
        let back = await eventually(timeout: .seconds(6)) {
            (try? await Self.replicaView(h, failing.id))?["available"] as? Bool == true
        }
        #expect(back, "back in rotation after eject_for")
        var seen: Set<String> = []
        for _ in 0..<4 {
            let response = try await h.request("/v1/chat/completions", body: chatBody())
            #expect(response.status == 200)
            seen.insert(response.header("x-replica-id") ?? "")
        }
        #expect(seen == ["steady", "failing"])
    }

    @Test func refusedConnectionsEjectAReplicaAndNoMoreConnectsAreTried() async throws {
        try await GatewayHarness.run { h in
            let dead = ReplicaID(host: "127.0.0.1", port: try await GatewayHarness.closedPort(group: h.group))
            h.gateway.runtime.pools[0].setMembers([dead, h.replicaIDs[0]])
            // Each request that meets the refusing replica is retried on the other: all 200.
            for _ in 0..<10 {
                let response = try await h.request("/v1/chat/completions", body: chatBody())
                #expect(response.status == 200 && response.header("x-replica-id") == "r1")
            }
            // Three refusals (eject_after) and then not one more attempt, though round-robin
            // would have sent it half of the ten.
            #expect(try await Self.failedConnects(h, dead) == 3)
            let view = try #require(try await Self.replicaView(h, dead))
            #expect(view["available"] as? Bool == false && (view["ejected_for_ms"] as? Int ?? 0) > 0, "\(view)")
        }
    }
}

/// A listening socket that takes no connection: it never accepts (it is never read), and its
/// accept queue (backlog 0, which Linux takes as room for one) holds one connection that is
/// never taken, so the kernel drops every further SYN and a connect waits until its timeout.
final class BlackHole: Sendable {
    let listener: any Channel
    let filler: any Channel
    var id: ReplicaID { ReplicaID(host: "127.0.0.1", port: listener.localAddress!.port!) }

    private init(listener: any Channel, filler: any Channel) {
        self.listener = listener
        self.filler = filler
    }

    static func open() async throws -> BlackHole {
        let group = MultiThreadedEventLoopGroup.singleton
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 0)
            .serverChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        let filler = try await ClientBootstrap(group: group).connect(to: listener.localAddress!).get()
        return BlackHole(listener: listener, filler: filler)
    }

    func close() async {
        try? await filler.close()
        try? await listener.close()
    }
}

extension UpstreamFailureTests {
    @Test func aReplicaThatTakesNoConnectionFailsAtTheConnectTimeoutAndAnotherAnswers() async throws {
        let hole = try await BlackHole.open()
        try await GatewayHarness.run(configure: { config, _ in
            config.pools[0].timeouts.connect = .milliseconds(400)
            config.pools[0].timeouts.responseHeader = .seconds(30)
        }) { h in
            try await Self.connectTimeouts(h, hole: hole)
        }
        await hole.close()
    }

    static func connectTimeouts(_ h: GatewayHarness, hole: BlackHole) async throws {
        // Alone in its pool: no other replica to retry on, so the client is told once the
        // connect timeout (400 ms) has passed, long before the response_header timeout (30 s).
        h.gateway.runtime.pools[0].setMembers([hole.id])
        let clock = ContinuousClock()
        let start = clock.now
        let alone = try await h.request("/v1/chat/completions", body: chatBody())
        let waited = clock.now - start
        #expect(alone.status == 502 && alone.text.contains(#""code":"replica_failed""#), "\(alone.status) \(alone.text)")
        #expect(alone.text.contains("could not connect") && alone.text.contains("Connect timeout"), "\(alone.text)")
        #expect(waited >= .milliseconds(400) && waited < .seconds(30), "answered after \(waited)")
        #expect(try await Self.failedConnects(h, hole.id) == 1)

        // Beside a replica that answers: a request that meets the hole first goes there once
        // the connect has timed out.
        h.gateway.runtime.pools[0].setMembers([hole.id, h.replicaIDs[0]])
        for _ in 0..<4 {
            let response = try await h.request("/v1/chat/completions", body: chatBody())
            #expect(response.status == 200 && response.header("x-replica-id") == "r1", "\(response.status) \(response.text)")
        }
        let failed = try await Self.failedConnects(h, hole.id) ?? 0
        #expect(failed >= 2, "round-robin sent some of the four to the hole first (\(failed - 1) did)")
    }

    @Test func aClientThatLeavesMidStreamCancelsTheReplicasRequestAtOnce() async throws {
        let replica = try await ScriptedServer.start { _, _ in .headThenSilence(firstChunk: "data: {}\n\n") }
        try await GatewayHarness.run(replicas: [], configure: { config, _ in
            config.pools[0].replicas = [ReplicaID(host: "127.0.0.1", port: replica.port)]
        }) { h in
            try await h.withChatStream(maxTokens: 5) { iterator in
                guard case .head = try await iterator.next() else {
                    Issue.record("expected a head")
                    return
                }
                #expect(replica.openConnections == 1)
            }
            // The client's connection is closed: the replica's closes with it, not at a timeout.
            let left = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(3)) { replica.openConnections == 0 })
            #expect(ContinuousClock.now - left < .seconds(1))
            #expect(await eventually { h.inFlight() == 0 })
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_upstream_cancelled_total{pool="chat"} 1"#))
        }
        try await replica.stop()
    }

    @Test func aReplicaSilentMidAnswerIsCutAfterTheIdleTimeout() async throws {
        // The first token at once, the next 2 s later: a silence past the idle timeout (300 ms).
        try await GatewayHarness.run(replicas: [GatewayHarness.slowReplica(interTokenDelay: .seconds(2))], configure: { config, _ in
            config.pools[0].timeouts.idle = .milliseconds(300)
        }) { h in
            try await Self.idleCut(h)
        }
    }

    static func idleCut(_ h: GatewayHarness) async throws {
        try await h.withChatStream(maxTokens: 3) { iterator in
            guard case .head(let head) = try await iterator.next() else {
                Issue.record("expected a head")
                return
            }
            #expect(head.status == .ok)
            var text = ""
            var ended = false
            do {
                while let part = try await iterator.next() {
                    if case .body(let chunk) = part { text += String(buffer: chunk) }
                    if case .end = part {
                        ended = true
                        break
                    }
                }
            } catch {
                // A chunked body cut short is an error to the client's parser: what a cut looks like.
            }
            // What came before the silence arrived; then the stream ends with an error event
            // naming the idle timeout, and its proper end (no [DONE]: it did not finish).
            #expect(text.contains("data: {"), "\(text)")
            #expect(ended && !text.contains("[DONE]"), "\(text)")
            #expect(text.hasSuffix("event: error\ndata: {\"error\":{\"message\":\"The model replica did not answer within its idle timeout, in the middle of the stream.\",\"type\":\"server_error\",\"code\":\"replica_timeout\"}}\n\n"), "\(text)")
        }
        // The replica's request was closed and the counts released; counted as a 504.
        #expect(await eventually { h.inFlight() == 0 })
        #expect(await eventually { h.replicas[0].requestsRunning == 0 })
        let metrics = try await h.adminRequest("/metrics").text
        #expect(metrics.contains(#"sluice_requests_total{pool="chat",status="504"} 1"#))
    }
}
