import NIOCore
import NIOHTTP1
import SluiceConfig
import SluiceCore
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Which failed requests go to a replica again: one a replica read and then closed on goes
/// again only when its method or its pool says repeating it changes nothing, and only within the
/// retry budget; each retry is counted.
@Suite(.serialized) struct RetryTests {
    /// A replica that reads its first request and closes without answering, then answers 200.
    static func closingOnce() async throws -> ScriptedServer {
        try await ScriptedServer.start { _, index in index == 0 ? .close : .status(200, body: #"{"object":"list","data":[]}"#) }
    }

    static func run(_ replica: ScriptedServer, _ body: (GatewayHarness) async throws -> Void) async throws {
        try await run(replica, configure: { _ in }, body)
    }

    static func run(_ replica: ScriptedServer, configure: @escaping (inout PoolConfiguration) -> Void, _ body: (GatewayHarness) async throws -> Void) async throws {
        try await GatewayHarness.run(replicas: [], configure: { config, _ in
            config.pools[0].replicas = [ReplicaID(host: "127.0.0.1", port: replica.port)]
            configure(&config.pools[0])
        }, body)
        try await replica.stop()
    }

    @Test func aPOSTAReplicaReadIsNotSentAgain() async throws {
        let replica = try await Self.closingOnce()
        try await Self.run(replica) { h in
            #expect(try await h.request("/v1/chat/completions", body: chatBody()).status == 502)
            try await Task.sleep(for: .milliseconds(100))
            #expect(replica.requests.count == 1)
        }
    }

    @Test func aPOSTToAnIdempotentPoolGoesAgainOnceAndIsCounted() async throws {
        let replica = try await Self.closingOnce()
        try await Self.run(replica, configure: { $0.retry.idempotent = true }) { h in
            let answer = try await h.request("/v1/chat/completions", body: chatBody())
            #expect(answer.status == 200)
            #expect(replica.requests.count == 2)
            #expect(replica.requests.map(\.body) == [chatBody(), chatBody()])
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_upstream_retries_total{pool="chat"} 1"#))
        }
    }

    @Test func aGETGoesAgainByItsMethod() async throws {
        let replica = try await Self.closingOnce()
        try await Self.run(replica) { h in
            let answer = try await h.request(HTTPMethod.GET, "/v1/models")
            #expect(answer.status == 200)
            #expect(replica.requests.count == 2)
        }
    }

    @Test func anEmptyBudgetSendsNothingAgain() async throws {
        let replica = try await Self.closingOnce()
        try await Self.run(replica, configure: { $0.retry = RetryPolicy(budgetPercent: 0, minRetries: 0) }) { h in
            let answer = try await h.request(HTTPMethod.GET, "/v1/models")
            #expect(answer.status == 502)
            #expect(replica.requests.count == 1)
        }
    }

    /// Reads a streamed chat answer through the gateway whole: its status, its text, and whether
    /// it ended (the terminating chunk came) rather than being cut.
    static func stream(_ h: GatewayHarness) async throws -> (status: Int, text: String, ended: Bool) {
        var status = 0
        var text = ""
        var ended = false
        try await h.withChatStream(maxTokens: 3) { iterator in
            do {
                while let part = try await iterator.next() {
                    switch part {
                    case .head(let head): status = Int(head.status.code)
                    case .body(let chunk): text += String(buffer: chunk)
                    case .end: ended = true
                    }
                    if ended { break }
                }
            } catch {
                // A cut stream is an error to the client's parser.
            }
        }
        return (status, text, ended)
    }

    @Test func aStreamWhoseReplicaDiesMidStreamEndsWithAnErrorEventAndItsEnd() async throws {
        let replica = try await ScriptedServer.start { _, _ in .streamThenClose(chunks: ["data: {\"n\":1}\n\n"]) }
        try await Self.run(replica) { h in
            let (status, text, ended) = try await Self.stream(h)
            #expect(status == 200)
            #expect(ended, "cut instead of ended: \(text)")
            #expect(text.hasPrefix("data: {\"n\":1}\n\nevent: error\ndata: {\"error\":"), "\(text)")
            #expect(text.contains(#""code":"replica_failed""#))
        }
    }

    @Test func aStreamWhoseReplicaFailsBeforeItsFirstEventIsAnsweredOrRetriedNeverStartedEmpty() async throws {
        // Not idempotent: the client gets a plain 502, not a 200 head with nothing behind it.
        let failing = try await ScriptedServer.start { _, _ in .streamThenClose(chunks: []) }
        try await Self.run(failing) { h in
            let (status, text, _) = try await Self.stream(h)
            #expect(status == 502 && text.contains(#""code":"replica_failed""#), "\(status) \(text)")
        }
        // Idempotent: sent again, and the client sees only the answer that worked.
        let once = try await ScriptedServer.start { _, index in
            index == 0 ? .streamThenClose(chunks: []) : .chunked(200, parts: ["data: {\"n\":1}\n\n", "data: [DONE]\n\n"])
        }
        try await Self.run(once, configure: { $0.retry.idempotent = true }) { h in
            let (status, text, ended) = try await Self.stream(h)
            #expect(status == 200 && ended && text == "data: {\"n\":1}\n\ndata: [DONE]\n\n", "\(status) \(text)")
            #expect(once.requests.count == 2)
        }
    }
}
