import Foundation
import NIOCore
import NIOPosix
import SluiceSimulation
import SluiceTesting
import Synchronization
import Testing
@testable import SluiceReplica

/// The simulator over real sockets: the engine, faults, the V2 protocol and metrics.
@Suite(.serialized) struct ReplicaServerTests {
    /// A small engine where prefill dominates: 0.5 ms per prompt token, 2 ms per step.
    static func engineConfiguration(_ id: String = "e") -> ReplicaConfiguration {
        var configuration = ReplicaConfiguration(id: id)
        configuration.engine = EngineProfile(
            maxRunning: 2, maxBatchedTokens: 4096, blockSize: 16, kvBlocks: 4096,
            stepBase: .milliseconds(2), decodePerSequence: .microseconds(100), prefillPerToken: .microseconds(500))
        return configuration
    }

    static func withReplica(
        _ configuration: ReplicaConfiguration, onExit: @escaping @Sendable () -> Void = {},
        _ body: (ReplicaServer, SocketAddress, any EventLoopGroup) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = ReplicaServer(configuration: configuration, group: group, onExit: onExit)
        let address = try await server.start()
        do {
            try await body(server, address, group)
        } catch {
            await server.stop()
            try await group.shutdownGracefully()
            throw error
        }
        await server.stop()
        try await group.shutdownGracefully()
    }

    static func chat(_ prompt: String, maxTokens: Int = 2, stream: Bool = false) -> String {
        #"{"model":"sim-7b","max_tokens":\#(maxTokens),"stream":\#(stream),"messages":[{"role":"user","content":"\#(prompt)"}]}"#
    }

    static func timed(_ body: () async throws -> TestResponse) async throws -> (TestResponse, Duration) {
        let start = ContinuousClock.now
        let response = try await body()
        return (response, ContinuousClock.now - start)
    }

    static func metric(_ name: String, in text: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
            .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
    }

    @Test func aRepeatedPromptIsServedFromThePrefixCache() async throws {
        try await Self.withReplica(Self.engineConfiguration()) { server, address, group in
            // 400 words, ~700 tokens: 350 ms of prefill cold; warm, the full blocks come from
            // the cache.
            let prompt = (0..<400).map { "w\($0 % 10)x\($0 / 10)" }.joined(separator: " ")
            let tokens = SimTokenizer.count(prompt)
            let hits = min(tokens / 16 * 16, tokens - 1)
            let (cold, coldTime) = try await Self.timed {
                try await TestHTTPConnection.request(.POST, "/v1/chat/completions", to: address, group: group, body: Self.chat(prompt))
            }
            let (warm, warmTime) = try await Self.timed {
                try await TestHTTPConnection.request(.POST, "/v1/chat/completions", to: address, group: group, body: Self.chat(prompt))
            }
            #expect(cold.status == 200 && warm.status == 200 && cold.text == warm.text)
            #expect(coldTime >= .milliseconds(200))
            // (The cache's effect is pinned by the counters below; the clock only has to agree,
            // with room for a busy machine.)
            #expect(warmTime < coldTime, "warm \(warmTime) vs cold \(coldTime)")
            let metrics = try await TestHTTPConnection.request(.GET, "/metrics", to: address, group: group).text
            #expect(Self.metric("vllm:prefix_cache_queries_total", in: metrics) == Double(2 * tokens))
            #expect(Self.metric("vllm:prefix_cache_hits_total", in: metrics) == Double(hits))
            #expect(Self.metric("vllm:gpu_prefix_cache_hits_total", in: metrics) == Double(hits))
            #expect(Self.metric("vllm:num_requests_running", in: metrics) == 0)
            _ = server
        }
    }

    @Test func requestsQueueBehindTheRunningCapAndShowInMetrics() async throws {
        var configuration = Self.engineConfiguration()
        // (Steps long enough that the two waiting streams wait about a second: a loaded machine's
        // metrics polls do not miss it.)
        configuration.engine!.stepBase = .milliseconds(100)
        try await Self.withReplica(configuration) { _, address, group in
            // Cap 2: four long streams, two of them wait.
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for index in 0..<4 {
                    tasks.addTask {
                        let response = try await TestHTTPConnection.request(
                            .POST, "/v1/chat/completions", to: address, group: group,
                            body: Self.chat("prompt \(index)", maxTokens: 10, stream: true))
                        #expect(response.text.hasSuffix("data: [DONE]\n\n"))
                        #expect(response.text.components(separatedBy: "data: {").count - 1 == 10)
                    }
                }
                let sawQueue = await eventually(timeout: .seconds(5)) {
                    guard let text = try? await TestHTTPConnection.request(.GET, "/metrics", to: address, group: group).text else { return false }
                    return Self.metric("vllm:num_requests_running", in: text) == 2 && Self.metric("vllm:num_requests_waiting", in: text) == 2
                }
                #expect(sawQueue)
                try await tasks.waitForAll()
            }
        }
    }

    @Test func faultsBehaveAsDocumented() async throws {
        var configuration = Self.engineConfiguration()
        configuration.seed = 42
        let exited = Atomic<Bool>(false)
        let exitBox = ExitBox()
        try await Self.withReplica(configuration, onExit: { exitBox.exited.store(true, ordering: .relaxed) }) { server, address, group in
            func chat() async throws -> TestResponse {
                try await TestHTTPConnection.request(.POST, "/v1/chat/completions", to: address, group: group, body: Self.chat("hi", maxTokens: 1))
            }
            func setFaults(_ json: String) async throws -> TestResponse {
                try await TestHTTPConnection.request(.POST, "/admin/faults", to: address, group: group, body: json)
            }
            // Error rate: seeded, so the same sequence every run; about the rate asked.
            #expect(try await setFaults(#"{"error_rate":0.5}"#).status == 200)
            var statuses: [Int] = []
            for _ in 0..<40 { statuses.append(try await chat().status) }
            let errors = statuses.filter { $0 == 500 }.count
            #expect((10...30).contains(errors), "\(errors) of 40")
            #expect(Set(statuses).isSubset(of: [200, 500]))
            // Extra latency.
            #expect(try await setFaults(#"{"error_rate":0,"extra_latency_ms":150}"#).status == 200)
            let (_, slow) = try await Self.timed { try await chat() }
            #expect(slow >= .milliseconds(150))
            // Close connections: the request gets no answer.
            #expect(try await setFaults(#"{"extra_latency_ms":0,"close_connections":true}"#).status == 200)
            await #expect(throws: (any Error).self) { _ = try await chat() }
            // Slow start: 503 on health and inference until it passes.
            #expect(try await setFaults(#"{"close_connections":false,"slow_start_s":3600}"#).status == 200)
            #expect(try await chat().status == 503)
            #expect(try await TestHTTPConnection.request(.GET, "/health", to: address, group: group).status == 503)
            #expect(try await setFaults(#"{"slow_start_s":0}"#).status == 200)
            #expect(try await chat().status == 200)
            // Stall: accepted, never answered (the client gives up).
            #expect(try await setFaults(#"{"stall":true}"#).status == 200)
            let stalled = try await withThrowingTaskGroup(of: Bool.self) { tasks in
                tasks.addTask { _ = try? await chat(); return false }
                tasks.addTask { try await Task.sleep(for: .milliseconds(300)); return true }
                let first = try await tasks.next()!
                tasks.cancelAll()
                return first
            }
            #expect(stalled)
            // Bad input is refused with a reason; the state is readable.
            #expect(try await setFaults(#"{"stal":true}"#).text.contains("unknown key stal"))
            let state = try await TestHTTPConnection.request(.GET, "/admin/faults", to: address, group: group).text
            #expect(state.contains(#""stall":true"#))
            // Exit.
            #expect(try await setFaults(#"{"stall":false,"exit":true}"#).status == 200)
            #expect(await eventually(timeout: .seconds(2)) { exitBox.exited.load(ordering: .relaxed) })
            _ = server
            _ = exited
        }
    }

    @Test func sameSeedSameErrors() async throws {
        func run() async throws -> [Int] {
            var configuration = Self.engineConfiguration()
            configuration.seed = 7
            configuration.faults.errorRate = 0.3
            var statuses: [Int] = []
            try await Self.withReplica(configuration) { _, address, group in
                for _ in 0..<20 {
                    statuses.append(try await TestHTTPConnection.request(
                        .POST, "/v1/chat/completions", to: address, group: group, body: Self.chat("x", maxTokens: 1)).status)
                }
            }
            return statuses
        }
        let first = try await run()
        #expect(first.contains(500) && first.contains(200))
        #expect(try await run() == first)
    }

    @Test func openInferenceProtocolV2() async throws {
        try await Self.withReplica(ReplicaConfiguration(id: "v2")) { _, address, group in
            #expect(try await TestHTTPConnection.request(.GET, "/v2/health/ready", to: address, group: group).status == 200)
            #expect(try await TestHTTPConnection.request(.GET, "/v2/models/sim-7b/ready", to: address, group: group).status == 200)
            #expect(try await TestHTTPConnection.request(.GET, "/v2/models/sim-7b", to: address, group: group).text.contains(#""outputs""#))
            #expect(try await TestHTTPConnection.request(.GET, "/v2/models/other/ready", to: address, group: group).status == 404)
            let infer = try await TestHTTPConnection.request(
                .POST, "/v2/models/sim-7b/infer", to: address, group: group,
                body: #"{"id":"r1","inputs":[{"name":"x","shape":[2,3],"datatype":"FP64","data":[1,2,3,4,5,6]}]}"#)
            #expect(infer.status == 200)
            let object = try JSONSerialization.jsonObject(with: Data(infer.text.utf8)) as? [String: Any]
            let output = (object?["outputs"] as? [[String: Any]])?.first
            #expect(output?["shape"] as? [Int] == [2, 1])
            #expect(output?["data"] as? [Double] == [5, 11])  // means 2 and 5, times 2, plus 1
            #expect(object?["id"] as? String == "r1")
            let bad = try await TestHTTPConnection.request(
                .POST, "/v2/models/sim-7b/infer", to: address, group: group,
                body: #"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP64","data":[1,2]}]}"#)
            #expect(bad.status == 400 && bad.text.contains("shape [2, 3] needs 6"))
        }
    }

    @Test func embeddingBatchesQueueOnTheDevice() async throws {
        var configuration = ReplicaConfiguration(id: "emb")
        configuration.embeddingBatchBase = .milliseconds(50)
        configuration.embeddingPerInput = .milliseconds(10)
        try await Self.withReplica(configuration) { _, address, group in
            // Three concurrent requests of 5 inputs: 100 ms each, one after the other.
            let (_, elapsed) = try await Self.timed {
                try await withThrowingTaskGroup(of: TestResponse.self) { tasks in
                    for _ in 0..<3 {
                        tasks.addTask {
                            try await TestHTTPConnection.request(
                                .POST, "/v1/embeddings", to: address, group: group, body: #"{"input":["a","b","c","d","e"]}"#)
                        }
                    }
                    var last: TestResponse?
                    for try await response in tasks {
                        #expect(response.status == 200)
                        last = response
                    }
                    return last!
                }
            }
            #expect(elapsed >= .milliseconds(300))
        }
    }
}

private final class ExitBox: Sendable {
    let exited = Atomic<Bool>(false)
}
