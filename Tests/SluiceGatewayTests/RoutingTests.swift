import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceSimulation
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Routing policies through the gateway, to simulated replicas.
@Suite(.serialized) struct RoutingTests {
    static func chat(_ text: String = "hi", maxTokens: Int = 1, stream: Bool = false) -> String {
        #"{"model":"sim-7b","max_tokens":\#(maxTokens),"stream":\#(stream),"messages":[{"role":"user","content":"\#(text)"}]}"#
    }

    /// Sends one request per session id over one keep-alive connection; returns the replica
    /// that answered each.
    static func replicas(for sessions: [String], at address: SocketAddress, group: any EventLoopGroup) async throws -> [String] {
        let connection = try await TestHTTPConnection.connect(to: address, group: group)
        return try await connection.channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var answered: [String] = []
            for session in sessions {
                try await outbound.writeRequest(
                    .POST, "/v1/chat/completions", headers: [("content-type", "application/json"), ("x-session-id", session)],
                    body: ByteBuffer(string: chat()))
                let response = try await iterator.readResponse()
                answered.append(response?.header("x-replica-id") ?? "?")
            }
            return answered
        }
    }

    /// Cache-aware too: it places a new session on its hash home while loads tie (here each
    /// request finishes before the next), so instances agree without sharing what they learnt.
    /// Three replicas that stream a token every 20 ms: a long answer holds one for a while.
    static var streamingReplicas: [ReplicaConfiguration] {
        (1...3).map { id in
            var replica = ReplicaConfiguration(id: "r\(id)")
            replica.timeToFirstToken = .milliseconds(1)
            replica.interTokenDelay = .milliseconds(20)
            return replica
        }
    }

    /// Starts a long streamed request with `headers` and `body`, and runs `action` while its
    /// answer is still streaming; returns the replica that is streaming it.
    static func whileStreaming(
        _ body: String, headers: [(String, String)] = [], at address: SocketAddress, group: any EventLoopGroup,
        _ action: () async throws -> Void
    ) async throws -> String? {
        let connection = try await TestHTTPConnection.connect(to: address, group: group)
        return try await connection.channel.executeThenClose { inbound, outbound in
            try await outbound.writeRequest(
                .POST, "/v1/chat/completions", headers: [("content-type", "application/json")] + headers, body: ByteBuffer(string: body))
            var iterator = inbound.makeAsyncIterator()
            guard case .head(let head) = try await iterator.next() else {
                Issue.record("no head")
                return nil
            }
            try await action()
            return head.headers.first(name: "x-replica-id")
        }
    }

    @Test(arguments: [RoutingPolicyName.consistentHash])
    func twoGatewaysWithTheReplicasInAnyOrderRouteSessionsIdentically(policy: RoutingPolicyName) async throws {
        let replicas = (1...4).map { id -> ReplicaConfiguration in
            var replica = ReplicaConfiguration(id: "r\(id)")
            replica.timeToFirstToken = .zero
            return replica
        }
        try await GatewayHarness.run(replicas: replicas, configure: { config, _ in
            config.pools[0].routing.policy = policy
            config.pools[0].routing.key = [.header("x-session-id")]
        }) { h in
            // A second gateway, same replicas listed in reverse, nothing shared.
            let second = try await Self.secondGateway(h)
            let sessions = (0..<1000).map { "session-\($0)" }
            let first = try await Self.replicas(for: sessions, at: h.data, group: h.group)
            let other = try await Self.replicas(for: sessions, at: second.bound.data, group: h.group)
            await second.stop()
            #expect(first == other)
            #expect(Set(first) == ["r1", "r2", "r3", "r4"])
            // A session keeps its replica.
            #expect(try await Self.replicas(for: Array(sessions.prefix(50)), at: h.data, group: h.group) == Array(first.prefix(50)))
        }
    }

    /// Another gateway with the harness's configuration and its replicas listed in reverse
    /// order, running (the caller stops it).
    static func secondGateway(_ h: GatewayHarness) async throws -> RunningGateway {
        var configuration = h.gateway.runtime.configuration
        configuration.pools[0].replicas.reverse()
        var logger = Logger(label: "second")
        logger.logLevel = .critical
        let second = Gateway(configuration: configuration, group: h.group, adminToken: nil, logger: logger)
        return try await RunningGateway.start(second)
    }

    @Test func leastQueueSendsLessToAReplicaReportingALongQueue() async throws {
        // r1 runs one sequence at a time, slowly: requests sent straight to it queue there, and it
        // reports them in vllm:num_requests_waiting. The gateway's own in-flight counts are equal.
        var busy = ReplicaConfiguration(id: "r1")
        busy.engine = EngineProfile(
            maxRunning: 1, maxBatchedTokens: 64, blockSize: 16, kvBlocks: 4096,
            stepBase: .milliseconds(50), decodePerSequence: .zero, prefillPerToken: .zero)
        try await GatewayHarness.run(replicas: [busy, ReplicaConfiguration(id: "r2")], configure: { config, _ in
            config.pools[0].routing.policy = .leastQueue
            config.pools[0].routing.scrapeInterval = .milliseconds(100)
        }) { h in
            let direct = try SocketAddress(ipAddress: h.replicaIDs[0].host, port: h.replicaIDs[0].port)
            let backlog = Task {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    for index in 0..<5 {
                        tasks.addTask {
                            _ = try? await TestHTTPConnection.request(
                                .POST, "/v1/chat/completions", to: direct, group: h.group, body: Self.chat("q\(index)", maxTokens: 100))
                        }
                    }
                    try await tasks.waitForAll()
                }
            }
            // Wait until the gateway has read r1's queue (4 waiting behind 1 running).
            let seen = await eventually(timeout: .seconds(5)) {
                h.gateway.runtime.pools[0].snapshot.replicas[0].reportedWaiting(at: NIODeadline.now().uptimeNanoseconds, staleAfter: 1_000_000_000) >= 3
            }
            #expect(seen)
            var answered: [String] = []
            for index in 0..<20 {
                let response = try await h.request("/v1/chat/completions", body: Self.chat("x\(index)"))
                answered.append(response.header("x-replica-id") ?? "?")
            }
            #expect(answered.allSatisfy { $0 == "r2" }, "\(answered)")
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_routing_decisions_total{pool="chat",reason="least_queue"}"#))
            backlog.cancel()
        }
    }

    @Test func cacheAwareKeepsASessionHomeAndOneSpillDoesNotMoveIt() async throws {
        try await GatewayHarness.run(replicas: Self.streamingReplicas, configure: { config, _ in
            config.pools[0].routing.policy = .cacheAware
            config.pools[0].routing.key = [.header("x-session-id"), .prefix]
            // One request in flight saturates a replica: 1 slot, no queue.
            config.pools[0].routing.slots = 1
            config.pools[0].routing.maxQueue = 0
        }) { h in
            // One multi-turn session: every turn goes back to the same replica.
            let turns = try await Self.replicas(for: Array(repeating: "conversation-7", count: 12), at: h.data, group: h.group)
            #expect(Set(turns).count == 1)
            let home = turns[0]
            // Now hold a long stream on home, then send the next turn: home is saturated, so
            // the turn spills elsewhere; the session stays home (the stream ends long before
            // move_after), so the turn after goes home again.
            var overflow: [String] = []
            let streaming = try await Self.whileStreaming(
                Self.chat(maxTokens: 100, stream: true), headers: [("x-session-id", "conversation-7")], at: h.data, group: h.group
            ) {
                overflow = try await Self.replicas(for: ["conversation-7"], at: h.data, group: h.group)
            }
            #expect(streaming == home)
            #expect(overflow.first != home)
            #expect(try await Self.replicas(for: ["conversation-7"], at: h.data, group: h.group) == [home])
            // Without a session header the prompt's prefix is the key: the same prompt goes home
            // to the same replica.
            var byPrefix: Set<String> = []
            for _ in 0..<5 {
                byPrefix.insert(try await h.request("/v1/chat/completions", body: Self.chat("a long shared system prompt")).header("x-replica-id") ?? "?")
            }
            #expect(byPrefix.count == 1)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_routing_decisions_total{pool="chat",reason="cache_affinity"}"#))
            #expect(metrics.contains(#"reason="cache_spill"} 1"#))
            #expect(metrics.contains(#"reason="cache_move"} 0"#))
            // Nothing routed outside a pool is counted as a routing decision.
            #expect(!metrics.contains(#"sluice_routing_decisions_total{pool="""#))
        }
    }

    /// A conversation as a client without a session id sends it: the system prompt and every
    /// turn so far, as chat messages.
    static func conversation(_ turns: [String], system: String, maxTokens: Int = 1, stream: Bool = false) -> String {
        var messages = [#"{"role":"system","content":"\#(system)"}"#]
        for (index, text) in turns.enumerated() {
            messages.append(#"{"role":"\#(index % 2 == 0 ? "user" : "assistant")","content":"\#(text)"}"#)
        }
        return #"{"model":"sim-7b","max_tokens":\#(maxTokens),"stream":\#(stream),"messages":[\#(messages.joined(separator: ","))]}"#
    }

    @Test func aSessionSentElsewhereByTheCapFollowsItsNewReplica() async throws {
        try await GatewayHarness.run(replicas: Self.streamingReplicas, configure: { config, _ in
            config.pools[0].routing.policy = .cacheAware
            config.pools[0].routing.key = [.header("x-session-id")]
            config.pools[0].maxConcurrentPerReplica = 1
        }) { h in
            let home = try await Self.replicas(for: ["capped"], at: h.data, group: h.group)[0]
            // Hold home's one slot with a stream of the same session; the next request of the
            // session is chosen for home, but the cap sends it elsewhere. It is remembered
            // there: after the stream, the session stays on its new replica.
            var moved = ""
            let streaming = try await Self.whileStreaming(
                Self.chat(maxTokens: 100, stream: true), headers: [("x-session-id", "capped")], at: h.data, group: h.group
            ) {
                moved = try await Self.replicas(for: ["capped"], at: h.data, group: h.group)[0]
            }
            #expect(streaming == home)
            #expect(moved != home)
            #expect(try await Self.replicas(for: ["capped", "capped"], at: h.data, group: h.group) == [moved, moved])
        }
    }

    @Test func cacheAwareFollowsConversationsThatSendNoSessionID() async throws {
        try await GatewayHarness.run(replicas: Self.streamingReplicas, configure: { config, _ in
            config.pools[0].routing.policy = .cacheAware
            config.pools[0].routing.key = [.header("x-session-id"), .prefix]
        }) { h in
            let system = String(repeating: "You answer questions about the store's return policy. ", count: 8)
            // First questions longer than the shared system prompt: a second conversation over
            // it matches less than half of its prompt, so it is new.
            func turn(_ n: Int) -> String { "turn \(n): " + String(repeating: "tell me more about that. ", count: 40) }
            // One conversation, growing turn by turn: every turn goes to the same replica.
            var history: [String] = []
            var first: Set<String> = []
            for n in 0..<5 {
                history.append(turn(n))
                first.insert(try await h.request("/v1/chat/completions", body: Self.conversation(history, system: system)).header("x-replica-id") ?? "?")
                history.append("answer \(n): " + String(repeating: "here is what I know. ", count: 8))
            }
            #expect(first.count == 1)
            let home = first.first!
            // While a long answer streams from that replica, a second conversation over the same
            // system prompt is new (it matches only the system prompt) and is placed by its
            // opening's hash. Its next turn follows it, after the stream has ended too.
            var second: [String] = []
            let streaming = try await Self.whileStreaming(
                Self.conversation(history + [turn(9)], system: system, maxTokens: 100, stream: true), at: h.data, group: h.group
            ) {
                second.append(try await h.request("/v1/chat/completions", body: Self.conversation([turn(100)], system: system)).header("x-replica-id") ?? "?")
            }
            #expect(streaming == home)
            second.append(try await h.request("/v1/chat/completions", body: Self.conversation([turn(100), "answer: fine, thanks for asking, and you?", turn(101)], system: system)).header("x-replica-id") ?? "?")
            #expect(second[1] == second[0])
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_routing_decisions_total{pool="chat",reason="cache_placement"} 2"#))
            #expect(metrics.contains(#"sluice_routing_decisions_total{pool="chat",reason="cache_affinity"} 6"#))
        }
    }
}

@Suite struct QueueScraperTests {
    @Test func readsVLLMsWaitingQueue() {
        let text = """
            # HELP vllm:num_requests_waiting Number of requests waiting.
            # TYPE vllm:num_requests_waiting gauge
            vllm:num_requests_waiting{model_name="a"} 3.0
            vllm:num_requests_waiting{model_name="b"} 2
            vllm:num_requests_waiting_total_bogus 99
            vllm:num_requests_running{model_name="a"} 7
            """
        #expect(QueueScraper.waitingQueue(in: text) == 5)
        #expect(QueueScraper.waitingQueue(in: "vllm:num_requests_waiting 4\n") == 4)
        #expect(QueueScraper.waitingQueue(in: "up 1\n") == nil)
        #expect(QueueScraper.waitingQueue(in: "vllm:num_requests_waiting{} NaN\n") == nil)
    }
}

@Suite struct QueueScraperParsingTests {
    @Test func timestampsChunksAndAbsurdValues() {
        #expect(QueueScraper.waitingQueue(in: "vllm:num_requests_waiting{model_name=\"a b\"} 3 1700000000000\n") == 3)
        #expect(QueueScraper.waitingQueue(in: "vllm:num_requests_waiting 1e20\n") == 1 << 30)
        #expect(QueueScraper.waitingQueue(in: "vllm:num_requests_waiting -4\n") == 0)
    }

    /// The scraper runs as the gateway's service; a replica whose metrics come in chunks (a
    /// chunk boundary inside a sample) is read like any other, and one that answers 500 reports
    /// nothing.
    @Test(arguments: [200, 500])
    func metricsSentInChunksAreReadWhole(status: Int) async throws {
        let replica = try await ScriptedServer.start { request, _ in
            guard request.uri == "/m" else { return .status(404, body: "{}") }
            return .chunked(status, parts: ["# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{m=\"x", "\"} 7\nvllm:num_requests_running 3\n"])
        }
        try await GatewayHarness.run(replicas: [], configure: { config, _ in
            config.pools[0].replicas = [ReplicaID(host: "127.0.0.1", port: replica.port)]
            config.pools[0].routing.policy = .leastQueue
            config.pools[0].routing.scrapePath = "/m"
            config.pools[0].routing.scrapeInterval = .milliseconds(100)
        }) { h in
            let reported = { h.gateway.runtime.pools[0].snapshot.replicas[0].reportedWaiting(at: NIODeadline.now().uptimeNanoseconds, staleAfter: 1_000_000_000) }
            if status == 200 {
                #expect(await eventually(timeout: .seconds(5)) { reported() == 7 })
            } else {
                #expect(await eventually(timeout: .seconds(5)) { replica.requests.count >= 3 })
                #expect(reported() == 0)
            }
        }
        try await replica.stop()
    }
}

@Suite struct RoutingKeysFromBodyTests {
    static func key(_ body: String, _ sources: [RoutingKeySource], followPrompt: Bool = true) -> (key: String?, prompt: PromptChain?, streams: Bool) {
        let buffer = ByteBuffer(string: body)
        let facts = buffer.withUnsafeReadableBytes { try? JSONFieldScanner.completionFacts(in: $0) }
        return RoutingKeys.fromBody(buffer, facts: { facts }, head: nil, sources: sources, prefixTokens: 256, followPrompt: followPrompt)
    }

    /// The `prefix` key of other policies: the hash of the prompt's first 256 × 4 bytes.
    static func prefixKey(_ text: String) -> String {
        var hasher = PromptHasher(prefix: 256 * RoutingKeys.bytesPerToken)
        Array(text.utf8).withUnsafeBytes { hasher.feed($0) }
        return "p:" + String(hasher.prefixHash(), radix: 16)
    }

    @Test func thePromptIsReadAsTheModelReadsIt() {
        let system = String(repeating: "Answer in French. ", count: 10)
        // Chat messages, plain or in parts, joined by newlines; or a completion's prompt(s).
        let chat = #"{"messages":[{"role":"system","content":"\#(system)"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#
        let joined = system + "\na\nb"
        // Cache-aware: the chain, anchored through the first user message, and the anchor as key.
        let chain = PromptChain(joined, anchorLength: joined.utf8.count)
        #expect(Self.key(chat, [.prefix]).prompt == chain)
        #expect(Self.key(chat, [.prefix]).key == "p:" + String(chain.anchor, radix: 16))
        // Whether it streams (its first byte then ends its prefill).
        #expect(!Self.key(chat, [.prefix]).streams)
        #expect(Self.key(#"{"stream":true,"prompt":"x"}"#, [.prefix]).streams)
        let later = #"{"messages":[{"role":"system","content":"\#(system)"},{"role":"user","content":"doc"},{"role":"assistant","content":"ok"},{"role":"user","content":"q"}]}"#
        #expect(Self.key(later, [.prefix]).prompt == PromptChain(system + "\ndoc\nok\nq", anchorLength: system.utf8.count + 4))
        #expect(Self.key(#"{"prompt":"\#(system)"}"#, [.prefix]).prompt == PromptChain(system))
        #expect(Self.key(#"{"prompt":["x","y"]}"#, [.prefix]).key == "p:" + String(PromptChain("x\ny").anchor, radix: 16))
        #expect(Self.key(#"{"prompt":["x",1]}"#, [.prefix]).key == nil)
        // body:user first when listed first; nothing from a body that is not JSON.
        #expect(Self.key(#"{"user":"u-1","prompt":"x"}"#, [.bodyUser, .prefix]).key == "u:u-1")
        #expect(Self.key(#"{"user":"","prompt":"x"}"#, [.bodyUser, .prefix]).key == "p:" + String(PromptChain("x").anchor, radix: 16))
        #expect(Self.key("not json", [.bodyUser, .prefix]).key == nil)
        // Without followPrompt (other policies) no chain is cut, and the key covers the first
        // prefix_tokens × 4 bytes: prompts that differ only past them share it.
        let plain = Self.key(chat, [.prefix], followPrompt: false)
        #expect(plain.prompt == nil && plain.key == Self.prefixKey(joined))
        let long = String(repeating: "The same long opening. ", count: 50)
        let a = Self.key(#"{"prompt":"\#(long)one"}"#, [.prefix], followPrompt: false).key
        let b = Self.key(#"{"prompt":"\#(long)two"}"#, [.prefix], followPrompt: false).key
        let c = Self.key(#"{"prompt":"Another \#(long)"}"#, [.prefix], followPrompt: false).key
        #expect(a == b && a != c && a == Self.prefixKey(long))
    }
}

/// `routing.shared`: cache-aware gateways tell each other their placements through Redis.
@Suite(.serialized) struct SharedPlacementTests {
    @Test func aSessionPlacedByOneGatewayGoesToTheSameReplicaFromAnother() async throws {
        let redis = try RedisServerProcess()
        try await redis.start()
        let replicas = (1...4).map { id -> ReplicaConfiguration in
            var replica = ReplicaConfiguration(id: "r\(id)")
            replica.timeToFirstToken = .zero
            return replica
        }
        try await GatewayHarness.run(replicas: replicas, configure: { config, _ in
            config.pools[0].routing.policy = .cacheAware
            config.pools[0].routing.key = [.header("x-session-id")]
            config.pools[0].routing.shared = ReplicaID(host: "127.0.0.1", port: redis.port)
        }) { h in
            // A second gateway, the replicas listed in reverse.
            let second = try await RoutingTests.secondGateway(h)
            let bound = second.bound
            // Both subscribed before anything is placed.
            let subscribed = await eventually {
                let answer = try? await Self.redis(["PUBSUB", "NUMSUB", "sluice:placements:chat"], port: redis.port)
                return answer == .array([.bulk(ByteBuffer(string: "sluice:placements:chat")), .integer(2)])
            }
            #expect(subscribed)
            // The first gateway places 200 sessions (evenly, by its own counts). The second
            // hears each placement; sent the same sessions in the opposite order, it would place
            // many elsewhere on its own (its counts would differ as it went), but it follows.
            let sessions = (0..<200).map { "session-\($0)" }
            let first = try await RoutingTests.replicas(for: sessions, at: h.data, group: h.group)
            #expect(Set(first) == ["r1", "r2", "r3", "r4"])
            let heard = await eventually {
                (try? await Self.learned(bound.admin, group: h.group)) == 200
            }
            #expect(heard)
            let other = try await RoutingTests.replicas(for: sessions.reversed(), at: bound.data, group: h.group)
            await second.stop()
            #expect(Array(other.reversed()) == first)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_routing_shared_total{pool="chat",event="published"} 200"#))
            #expect(metrics.contains(#"sluice_routing_shared_total{pool="chat",event="failed"} 0"#))
        }
        await redis.stop()
    }

    static func redis(_ command: [String], port: Int) async throws -> RESPValue {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        return try await loop.flatSubmit {
            RedisConnection.connect(to: address, on: loop, timeout: .milliseconds(500)).flatMap { connection in
                connection.send(command, timeout: .milliseconds(500)).always { _ in connection.close() }
            }
        }.get()
    }

    @Test func withItsRedisDownAGatewayPlacesOnItsOwnAndCountsIt() async throws {
        // A port nothing listens on: every publish and subscription attempt fails.
        let closed = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = closed.localAddress!.port!
        try await closed.close()
        try await GatewayHarness.run(replicas: RoutingTests.streamingReplicas, configure: { config, _ in
            config.pools[0].routing.policy = .cacheAware
            config.pools[0].routing.key = [.header("x-session-id")]
            config.pools[0].routing.shared = ReplicaID(host: "127.0.0.1", port: port)
        }) { h in
            let turns = try await RoutingTests.replicas(for: Array(repeating: "alone", count: 5), at: h.data, group: h.group)
            #expect(Set(turns).count == 1)
            // The placement could not be published (nor anything heard): counted as failures.
            let counted = await eventually {
                let metrics = (try? await h.adminRequest("/metrics").text) ?? ""
                return !metrics.contains(#"sluice_routing_shared_total{pool="chat",event="failed"} 0"#)
                    && metrics.contains(#"sluice_routing_shared_total{pool="chat",event="failed"}"#)
            }
            #expect(counted)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_routing_shared_total{pool="chat",event="published"} 0"#))
            #expect(metrics.contains(#"sluice_routing_decisions_total{pool="chat",reason="cache_placement"} 1"#))
        }
    }

    /// `sluice_routing_shared_total{event="learned"}` of the gateway whose admin listens at `admin`.
    static func learned(_ admin: SocketAddress, group: any EventLoopGroup) async throws -> Int? {
        let text = try await TestHTTPConnection.request(.GET, "/metrics", to: admin, group: group).text
        let line = text.split(separator: "\n").first { $0.hasPrefix(#"sluice_routing_shared_total{pool="chat",event="learned"}"#) }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") }
    }
}
