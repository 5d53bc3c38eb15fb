import NIOCore
import NIOHTTP1
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

@Suite(.serialized) struct ErrorTests {
    func expectOpenAIError(_ response: TestResponse, status: Int, code: String) {
        #expect(response.status == status)
        #expect(response.header("content-type") == "application/json")
        #expect(response.text.hasPrefix(#"{"error":{"message":"#))
        #expect(response.text.contains(#""code":"\#(code)""#))
    }

    @Test func noRouteIs404() async throws {
        try await GatewayHarness.run { h in
            expectOpenAIError(try await h.request(.GET, "/nothing/here"), status: 404, code: "no_route")
        }
    }

    @Test func bodyOverTheLimitIs413() async throws {
        try await GatewayHarness.run(configure: { config, _ in config.limits.maxBodyBytes = 1024 }) { h in
            let big = String(repeating: "x", count: 2048)
            expectOpenAIError(try await h.request("/v1/echo", headers: [("content-type", "text/plain")], body: big), status: 413, code: "request_too_large")
            // Without a content-length the limit is enforced while streaming.
            let connection = try await TestHTTPConnection.connect(to: h.data, group: h.group)
            let response: TestResponse? = try await connection.channel.executeThenClose { inbound, outbound in
                // Not the echo route: it would start answering before the limit is reached.
                var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions")
                head.headers.add(name: "transfer-encoding", value: "chunked")
                try await outbound.write(.head(head))
                // The gateway may answer and close while these are still going out: writes may fail.
                for _ in 0..<4 { try? await outbound.write(.body(.byteBuffer(ByteBuffer(string: String(repeating: "y", count: 512))))) }
                try? await outbound.write(.end(nil))
                var iterator = inbound.makeAsyncIterator()
                return try await iterator.readResponse()
            }
            expectOpenAIError(try #require(response), status: 413, code: "request_too_large")
            #expect(await eventually { h.inFlight() == 0 })
        }
    }

    @Test func headersOverTheLimitAre431() async throws {
        try await GatewayHarness.run { h in
            let response = try await h.request(.GET, "/v1/models", headers: [("x-big", String(repeating: "h", count: 20_000))])
            expectOpenAIError(response, status: 431, code: "headers_too_large")
        }
    }

    @Test func refusedConnectionIs502() async throws {
        try await GatewayHarness.run(configure: { config, _ in config.pools[0].replicas = [] }) { h in
            let port = try await GatewayHarness.closedPort(group: h.group)
            h.gateway.runtime.pools[0].setMembers([ReplicaID(host: "127.0.0.1", port: port)])
            let response = try await h.request("/v1/chat/completions", body: chatBody())
            expectOpenAIError(response, status: 502, code: "replica_failed")
            #expect(response.text.contains("could not connect"))
            #expect(h.inFlight() == 0)
        }
    }

    @Test func connectFailureRetriesAnotherReplica() async throws {
        try await GatewayHarness.run { h in
            let port = try await GatewayHarness.closedPort(group: h.group)
            let dead = ReplicaID(host: "127.0.0.1", port: port)
            h.gateway.runtime.pools[0].setMembers([dead, h.replicaIDs[0]])
            for _ in 0..<4 {
                let response = try await h.request("/v1/chat/completions", body: chatBody())
                #expect(response.status == 200)
            }
        }
    }

    @Test func stallingReplicaIs504() async throws {
        var stalled = ReplicaConfiguration(id: "stalled")
        stalled.stall = true
        try await GatewayHarness.run(replicas: [stalled], configure: { config, _ in
            config.pools[0].timeouts.responseHeader = .milliseconds(300)
        }) { h in
            let response = try await h.request("/v1/chat/completions", body: chatBody())
            expectOpenAIError(response, status: 504, code: "replica_timeout")
            #expect(h.inFlight() == 0)
        }
    }

    @Test func noAvailableReplicaIs503() async throws {
        try await GatewayHarness.run { h in
            h.gateway.runtime.pools[0].snapshot.replicas[0].setDraining(true)
            expectOpenAIError(try await h.request("/v1/chat/completions", body: chatBody()), status: 503, code: "no_healthy_replica")
            let ready = try await h.adminRequest("/readyz")
            #expect(ready.status == 503)
        }
    }

    @Test func clientDisconnectMidStreamReleasesInFlightAndCancelsUpstream() async throws {
        try await GatewayHarness.run(replicas: [GatewayHarness.slowReplica(interTokenDelay: .milliseconds(100))]) { h in
            try await h.withChatStream(maxTokens: 100) { iterator in
                _ = try await iterator.next()
                _ = try await iterator.next()
                #expect(h.inFlight() == 1)
                #expect(h.replicas[0].requestsRunning == 1)
            }
            // The client is gone: the gateway releases its count and closes the upstream request.
            #expect(await eventually { h.inFlight() == 0 })
            #expect(await eventually { h.replicas[0].requestsRunning == 0 })
            let metrics = try await h.adminRequest("/metrics")
            #expect(metrics.text.contains(#"sluice_upstream_cancelled_total{pool="chat"} 1"#))
        }
    }

    @Test func gracefulShutdownFinishesAnInFlightStream() async throws {
        try await GatewayHarness.run(replicas: [GatewayHarness.slowReplica(interTokenDelay: .milliseconds(50))], grace: .seconds(10)) { h in
            try await h.withChatStream(maxTokens: 20) { iterator in
                guard case .head(let head) = try await iterator.next() else {
                    Issue.record("expected a head")
                    return
                }
                #expect(head.status == .ok)
                let shutdown = Task { await h.stop() }
                var text = ""
                while let part = try await iterator.next() {
                    if case .body(let chunk) = part { text += String(buffer: chunk) }
                    if case .end = part { break }
                }
                #expect(text.hasSuffix("data: [DONE]\n\n"), "the stream ran to its end")
                await shutdown.value
            }
            // The listener is closed: new connections are refused.
            await #expect(throws: (any Error).self) {
                _ = try await TestHTTPConnection.connect(to: h.data, group: h.group)
            }
        }
    }
}
