import Foundation
import NIOCore
import NIOHTTP1
import SluiceConfig
import SluiceCore
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Gateway batching through a running gateway in front of `sluice-replica`: concurrent small
/// requests reach the replica as far fewer, and every client gets exactly what it would have
/// got alone; a malformed request is refused on its own.
@Suite(.serialized) struct BatchingTests {
    /// (`max_wait` 50 ms: requests sent at once must meet even on a busy machine, where 64
    /// "concurrent" requests can arrive spread over tens of milliseconds.)
    static func run(_ body: (GatewayHarness) async throws -> Void) async throws {
        try await GatewayHarness.run(configure: { config, _ in
            config.pools[0].paths = ["/v1/*", "/v2/*"].compactMap(PathPattern.init)
            config.pools[0].batching = BatchingConfiguration(maxBatch: 32, maxWait: .milliseconds(50), targetLatency: .milliseconds(500))
        }, body)
    }

    static func served(_ h: GatewayHarness) async throws -> Int {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: h.replicaIDs[0].port)
        let metrics = try await TestHTTPConnection.request(.GET, "/metrics", to: address, group: h.group)
        let line = metrics.text.split(separator: "\n").first { $0.hasPrefix("sluice_replica_requests_served_total ") }
        return Int(line?.split(separator: " ").last ?? "") ?? -1
    }

    static func direct(_ h: GatewayHarness, _ path: String, _ body: String) async throws -> TestResponse {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: h.replicaIDs[0].port)
        return try await TestHTTPConnection.request(.POST, path, to: address, group: h.group, headers: [("content-type", "application/json")], body: body)
    }

    static func data(_ text: String) -> JSONValue? {
        (try? JSONValue.parse(Array(text.utf8)))?["data"]
    }

    @Test func concurrentEmbeddingsReachTheReplicaAsFewerRequestsAndEachGetsItsOwnVectors() async throws {
        try await Self.run { h in
            let bodies = (0..<64).map { index in
                index % 3 == 0
                    ? #"{"model":"sim-7b","input":["text \#(index)","more \#(index)"],"encoding_format":"base64"}"#
                    : #"{"model":"sim-7b","input":"text \#(index)"}"#
            }
            var alone: [JSONValue?] = []
            for body in bodies { alone.append(Self.data(try await Self.direct(h, "/v1/embeddings", body).text)) }
            let before = try await Self.served(h)
            let answers = try await withThrowingTaskGroup(of: (Int, TestResponse).self) { group in
                for (index, body) in bodies.enumerated() {
                    group.addTask { (index, try await h.request("/v1/embeddings", body: body)) }
                }
                return try await group.reduce(into: [Int: TestResponse]()) { $0[$1.0] = $1.1 }
            }
            let upstream = try await Self.served(h) - before
            #expect(answers.values.allSatisfy { $0.status == 200 })
            for index in bodies.indices {
                #expect(Self.data(answers[index]!.text) == alone[index], "request \(index)")
            }
            #expect(upstream > 0 && upstream <= 32, "64 requests reached the replica as \(upstream)")
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_batch_members_total{pool="chat"} 64"#))
            #expect(metrics.contains(#"sluice_batch_cap{pool="chat"}"#) && metrics.contains(#"sluice_batch_wait_seconds_count{pool="chat"} 64"#))
        }
    }

    @Test func batchesOneAfterAnotherShareOneKeptAliveConnection() async throws {
        // An idle replica: each request goes at once, as a batch of one.
        let replica = try await ScriptedServer.start { _, _ in .status(200, body: Self.aloneAnswer("7")) }
        try await Self.runScripted(replica) { h in
            for _ in 0..<3 {
                let answer = try await h.request("/v1/embeddings", body: #"{"model":"sim-7b","input":"one"}"#)
                #expect(answer.status == 200 && answer.text.contains(#""embedding":[7]"#), "\(answer.text)")
            }
            #expect(Self.batches(replica).count == 3)
            #expect(replica.connectionCount == 1)
        }
        try await replica.stop()
    }

    @Test func inferBatchesGiveEveryRequestItsOwnRows() async throws {
        try await Self.run { h in
            let bodies = (0..<16).map { index in
                #"{"id":"r\#(index)","inputs":[{"name":"x","shape":[\#(index % 3 + 1),2],"datatype":"FP32","data":[\#((0..<((index % 3 + 1) * 2)).map { "\(index * 10 + $0)" }.joined(separator: ","))]}]}"#
            }
            var alone: [String] = []
            for body in bodies { alone.append(try await Self.direct(h, "/v2/models/iris/infer", body).text) }
            let answers = try await withThrowingTaskGroup(of: (Int, TestResponse).self) { group in
                for (index, body) in bodies.enumerated() {
                    group.addTask { (index, try await h.request("/v2/models/iris/infer", body: body)) }
                }
                return try await group.reduce(into: [Int: TestResponse]()) { $0[$1.0] = $1.1 }
            }
            for index in bodies.indices {
                let batched = try JSONValue.parse(Array(answers[index]!.text.utf8))
                let single = try JSONValue.parse(Array(alone[index].utf8))
                #expect(batched["outputs"] == single["outputs"] && batched["id"] == single["id"], "request \(index): \(answers[index]!.text) vs \(alone[index])")
            }
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_batch_members_total{pool="chat"} 16"#))
            let batches = metrics.split(separator: "\n").filter { $0.hasPrefix("sluice_batches_total{pool=\"chat\"") }
                .compactMap { Int($0.split(separator: " ").last ?? "") }.reduce(0, +)
            #expect(batches > 0 && batches < 16, "16 requests went as \(batches) batches")
        }
    }

    @Test func aClientThatLeavesWhileWaitingIsTakenOutOfItsBatch() async throws {
        // One replica kept busy by a slow stream, so no batch goes for being idle; max_wait 1 s.
        try await GatewayHarness.run(replicas: [GatewayHarness.slowReplica(interTokenDelay: .milliseconds(20))], configure: { config, _ in
            config.pools[0].batching = BatchingConfiguration(maxBatch: 32, maxWait: .seconds(1), targetLatency: .milliseconds(50))
        }) { h in
            let batcher = try #require(h.gateway.runtime.pools[0].batcher)
            async let stream = h.request("/v1/chat/completions", body: chatBody(stream: true, maxTokens: 40))
            try await QueueTests.waitUntil("the replica is busy") { h.inFlight() == 1 }
            let leaving = try await TestHTTPConnection.connect(to: h.data, group: h.group)
            try await leaving.channel.executeThenClose { _, outbound in
                try await outbound.writeRequest(
                    .POST, "/v1/embeddings", headers: [("content-type", "application/json")],
                    body: ByteBuffer(string: #"{"model":"sim-7b","input":"gone"}"#))
                try await QueueTests.waitUntil("it waits in a batch") { batcher.waiting == 1 }
            }
            try await QueueTests.waitUntil("it left its batch") { batcher.waiting == 0 }
            #expect(try await stream.status == 200)
            // Nothing went upstream for it; the next request is served as usual.
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_batch_members_total{pool="chat"} 0"#))
            #expect(try await h.request("/v1/embeddings", body: #"{"model":"sim-7b","input":"here"}"#).status == 200)
        }
    }

    @Test func eachMemberIsAdmittedAndChargedOnItsOwn() async throws {
        let keys = try AdmissionTests.keysFile(["sk-embed"])
        defer { try? FileManager.default.removeItem(atPath: keys) }
        try await GatewayHarness.run(configure: { config, _ in
            config.pools[0].batching = BatchingConfiguration(maxBatch: 32, maxWait: .milliseconds(5), targetLatency: .milliseconds(50))
            var tenant = AdmissionTests.tenant("embed", keysFile: keys)
            tenant.limits.tokensPerMinute = 60  // one token a second comes back: exact within the test
            tenant.limits.tokenBurst = 1_000
            config.limits.tenants = [tenant]
        }) { h in
            let headers = [("content-type", "application/json"), ("authorization", "Bearer sk-embed")]
            let inputs = (0..<8).map { #"{"model":"sim-7b","input":["one \#($0)","two words \#($0)"]}"# }
            var used = 0
            for body in inputs {
                let alone = try await Self.direct(h, "/v1/embeddings", body)
                used += (try JSONValue.parse(Array(alone.text.utf8)))["usage"]?["total_tokens"]?.int ?? 0
            }
            let answers = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for body in inputs { group.addTask { try await h.request("/v1/embeddings", headers: headers, body: body) } }
                return try await group.reduce(into: [TestResponse]()) { $0.append($1) }
            }
            #expect(answers.allSatisfy { $0.status == 200 && $0.header("x-ratelimit-limit-tokens") == "60" })
            // Each member's share of the batch's usage settled its own charge: the shares add up
            // to what the requests used alone.
            try await QueueTests.waitUntil("settled") { TokenLimitTests.tokensLeft(h) == 1_000 - used }
        }
    }

    @Test func aMalformedRequestIsRefusedAloneAndTheOthersAreServed() async throws {
        try await Self.run { h in
            async let good = h.request("/v1/embeddings", body: #"{"model":"sim-7b","input":"fine"}"#)
            async let bad = h.request("/v1/embeddings", body: #"{"model":"sim-7b"}"#)
            async let broken = h.request("/v1/embeddings", body: #"{"model":"sim-7b","input":"#)
            async let odd = h.request("/v1/embeddings", body: #"{"model":"sim-7b","input":[1,"mixed"]}"#)
            let (g, b, x, o) = try await (good, bad, broken, odd)
            #expect(g.status == 200)
            #expect(b.status == 400 && b.text.contains("needs `input`"))
            #expect(x.status == 400 && x.text.contains("invalid_json"))
            // Cannot join a batch: sent alone, and the replica's own answer comes back.
            #expect(o.status == 400 && o.header("x-replica-id") != nil)
        }
    }
}

extension BatchingTests {
    @Test func aRequestTooLargeToParseGoesAloneAndOneThatIsNotUTF8IsRefusedAlone() async throws {
        try await GatewayHarness.run(configure: { config, _ in
            config.pools[0].batching = BatchingConfiguration(maxBatch: 32, maxWait: .milliseconds(50), targetLatency: .milliseconds(500), maxValues: 16)
        }) { h in
            let many = (0..<20).map { #""text \#($0)""# }.joined(separator: ",")
            let large = try await h.request("/v1/embeddings", body: #"{"model":"sim-7b","input":[\#(many)]}"#)
            // Over max_values: not parsed, sent alone (the replica's own answer), all 20 answered.
            #expect(large.status == 200 && large.header("x-replica-id") != nil)
            #expect(Self.data(large.text)?.array?.count == 20)
            let small = try await h.request("/v1/embeddings", body: #"{"model":"sim-7b","input":"one"}"#)
            #expect(small.status == 200 && small.header("x-replica-id") == nil, "a small request is still batched")

            var body = ByteBuffer(string: #"{"model":"sim-7b","input":["a"#)
            body.writeBytes([0xC3, 0x28])
            body.writeString(#""]}"#)
            let connection = try await TestHTTPConnection.connect(to: h.data, group: h.group)
            let answer = try await connection.channel.executeThenClose { inbound, outbound in
                try await outbound.writeRequest(.POST, "/v1/embeddings", headers: [("content-type", "application/json")], body: body)
                var iterator = inbound.makeAsyncIterator()
                return try await iterator.readResponse()
            }
            #expect(answer?.status == 400)
            #expect(answer?.text.contains("not UTF-8") == true)
        }
    }
}

/// Batches whose upstream fails or times out, against a scripted replica that tells a batch
/// (it carries none of its members' headers) from a request sent alone (it carries the
/// client's `x-member`). A streamed chat answer held open keeps the replica busy, so no batch
/// goes early for an idle replica: the four members go as one batch, when it is full.
extension BatchingTests {
    enum BatchFailure: String, CaseIterable, Sendable {
        /// The batch is answered 500.
        case status500
        /// The batch's connection is closed without an answer.
        case closedWithoutAnswer
    }

    static let members = 4

    /// The gateway in front of `replica`, batching up to 4 at first (the cap starts at a
    /// quarter of `max_batch`), with `max_wait` long enough that only a full batch goes.
    static func runScripted(
        _ replica: ScriptedServer, responseHeader: Duration = .seconds(10), _ body: (GatewayHarness) async throws -> Void
    ) async throws {
        try await GatewayHarness.run(replicas: [], configure: { config, _ in
            config.pools[0].replicas = [ReplicaID(host: "127.0.0.1", port: replica.port)]
            config.pools[0].timeouts.responseHeader = responseHeader
            config.pools[0].batching = BatchingConfiguration(maxBatch: 16, maxWait: .seconds(3), targetLatency: .seconds(10))
        }, body)
    }

    /// The chat stream (held open by the replica) and, meanwhile, one embeddings request per
    /// member, `x-member: i`, input `member i`; the answers by member.
    static func membersWhileBusy(_ h: GatewayHarness) async throws -> [Int: TestResponse] {
        var answers: [Int: TestResponse] = [:]
        try await h.withChatStream(maxTokens: 1) { iterator in
            guard case .head = try await iterator.next() else {
                Issue.record("the held stream's head did not come")
                return
            }
            answers = try await Self.sendMembers(h)
        }
        return answers
    }

    static func sendMembers(_ h: GatewayHarness) async throws -> [Int: TestResponse] {
        try await withThrowingTaskGroup(of: (Int, TestResponse).self) { group in
            for member in 0..<Self.members {
                group.addTask {
                    let headers = [("content-type", "application/json"), ("x-member", String(member))]
                    return (member, try await h.request("/v1/embeddings", headers: headers, body: #"{"model":"sim-7b","input":"member \#(member)"}"#))
                }
            }
            return try await group.reduce(into: [Int: TestResponse]()) { $0[$1.0] = $1.1 }
        }
    }

    /// A one-vector embeddings answer whose vector names the member.
    static func aloneAnswer(_ member: String) -> String {
        #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[\#(member)]}],"model":"sim-7b","usage":{"prompt_tokens":2,"total_tokens":2}}"#
    }

    static func batches(_ replica: ScriptedServer) -> [ScriptedServer.Request] {
        replica.requests.filter { $0.uri == "/v1/embeddings" && $0.headers["x-member"].isEmpty }
    }

    static func alone(_ replica: ScriptedServer) -> [ScriptedServer.Request] {
        replica.requests.filter { $0.uri == "/v1/embeddings" && !$0.headers["x-member"].isEmpty }
    }

    @Test(arguments: BatchFailure.allCases)
    func aBatchWhoseUpstreamFailsSendsEachMemberAlone(_ failure: BatchFailure) async throws {
        let replica = try await ScriptedServer.start { request, _ in
            if request.uri == "/v1/chat/completions" { return .headThenSilence(firstChunk: "data: {}\n\n") }
            guard let member = request.headers.first(name: "x-member") else {
                return failure == .status500 ? .status(500, body: #"{"error":{"message":"batch failed"}}"#) : .close
            }
            return .status(200, body: Self.aloneAnswer(member))
        }
        try await Self.runScripted(replica) { h in
            let answers = try await Self.membersWhileBusy(h)
            for member in 0..<Self.members {
                let answer = try #require(answers[member])
                #expect(answer.status == 200 && answer.text.contains(#""embedding":[\#(member)]"#), "member \(member): \(answer.status) \(answer.text)")
            }
            // One batch of all four reached the replica and failed; then each member alone.
            let batches = Self.batches(replica)
            #expect(batches.count == 1, "\(batches.map(\.body))")
            #expect((0..<Self.members).allSatisfy { member in batches.first?.body.contains("member \(member)") == true })
            #expect(Set(Self.alone(replica).compactMap { $0.headers.first(name: "x-member") }) == Set((0..<Self.members).map(String.init)))
            #expect(Self.alone(replica).count == Self.members)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_batch_members_total{pool="chat"} 4"#))
        }
        try await replica.stop()
    }

    @Test func aBatchThatTimesOutAnswersEachMember504AndSendsNothingAgain() async throws {
        let replica = try await ScriptedServer.start { request, _ in
            if request.uri == "/v1/chat/completions" { return .headThenSilence(firstChunk: "data: {}\n\n") }
            guard let member = request.headers.first(name: "x-member") else { return .silence }
            return .status(200, body: Self.aloneAnswer(member))
        }
        try await Self.runScripted(replica, responseHeader: .milliseconds(500)) { h in
            let answers = try await Self.membersWhileBusy(h)
            for member in 0..<Self.members {
                let answer = try #require(answers[member])
                #expect(answer.status == 504 && answer.text.contains(#""code":"replica_timeout""#), "member \(member): \(answer.status) \(answer.text)")
                #expect(answer.text.contains("as part of a batch"), "\(answer.text)")
            }
            // The batch went once; no member was sent again on its own.
            #expect(Self.batches(replica).count == 1)
            #expect(Self.alone(replica).isEmpty, "\(Self.alone(replica).map(\.body))")
        }
        try await replica.stop()
    }
}
