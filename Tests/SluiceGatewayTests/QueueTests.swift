import Foundation
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceTesting
import Testing
@testable import SluiceGateway

/// `max_concurrent_per_replica` and the pool's wait queue, through a running gateway: the cap
/// holds, waiting requests are served as slots free (by priority, then tenants in turn), and a
/// full queue, a deadline or a departed client each end a wait cleanly with no slot lost.
@Suite(.serialized) struct QueueTests {
    /// One slow replica (20 ms per token), one slot per replica, and the given queue.
    static func run(
        max: Int = 8, timeout: Duration = .seconds(5),
        configure: @escaping (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (GatewayHarness, PoolGate) async throws -> Void
    ) async throws {
        try await GatewayHarness.run(
            replicas: [GatewayHarness.slowReplica(interTokenDelay: .milliseconds(20))],
            configure: { config, _ in
                config.pools[0].maxConcurrentPerReplica = 1
                config.pools[0].queue.max = max
                config.pools[0].queue.timeout = timeout
                configure(&config)
            }
        ) { h in try await body(h, h.gateway.runtime.pools[0].gate!) }
    }

    static func chat(_ h: GatewayHarness, tokens: Int, key: String? = nil) async throws -> TestResponse {
        var headers = [("content-type", "application/json")]
        if let key { headers.append(("authorization", "Bearer \(key)")) }
        return try await h.request("/v1/chat/completions", headers: headers, body: chatBody(maxTokens: tokens))
    }

    /// Polls (every 5 ms, at most `seconds`) until `condition` holds.
    static func waitUntil(_ what: String, seconds: Int = 5, _ condition: () -> Bool) async throws {
        for _ in 0..<(200 * seconds) {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        Issue.record("timed out waiting until \(what)")
    }

    @Test func requestsWaitForASlotAndAreAllServedWithinTheCap() async throws {
        try await Self.run { h, gate in
            let peak = Locked(0)
            let done = Locked(false)
            let watcher = Task {
                while !done.value {
                    let now = h.inFlight()
                    peak.withLock { $0 = Swift.max($0, now) }
                    try? await Task.sleep(for: .milliseconds(2))
                }
            }
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                // One long request holds the only slot (about 2 s, time enough on a loaded
                // machine) while three more arrive.
                group.addTask { try await Self.chat(h, tokens: 100).status }
                try await Self.waitUntil("the slot is taken") { h.inFlight() == 1 }
                for _ in 0..<3 { group.addTask { try await Self.chat(h, tokens: 2).status } }
                try await Self.waitUntil("three requests wait") { gate.waiting == 3 }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            done.withLock { $0 = true }
            await watcher.value
            #expect(statuses == [200, 200, 200, 200])
            #expect(peak.value == 1)
            #expect(h.inFlight() == 0 && gate.waiting == 0)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_queue_requests_total{pool="chat",outcome="dispatched"} 3"#))
            #expect(metrics.contains(#"sluice_queue_wait_seconds_count{pool="chat"} 3"#))
            #expect(metrics.contains(#"sluice_queue_depth{pool="chat"} 0"#))
            // What the load harness samples each second.
            let ready = try await h.adminRequest("/readyz").text
            let pools = try JSONSerialization.jsonObject(with: Data(ready.utf8)) as? [String: Any]
            let chat = (pools?["pools"] as? [String: [String: Int]])?["chat"]
            #expect(chat?["queue_dispatched"] == 3 && chat?["queued"] == 0 && chat?["in_flight"] == 0 && chat?["queue_full"] == 0)
        }
    }

    @Test func aFullQueueAnswers503AtOnceAndADeadlineAnswers503() async throws {
        try await Self.run(max: 1, timeout: .milliseconds(300)) { h, gate in
            async let long = Self.chat(h, tokens: 60)  // about 1.2 s on the only slot
            try await Self.waitUntil("the slot is taken") { h.inFlight() == 1 }
            async let waiting = Self.chat(h, tokens: 1)
            try await Self.waitUntil("one request waits") { gate.waiting == 1 }
            let full = try await Self.chat(h, tokens: 1)
            #expect(full.status == 503)
            #expect(full.header("retry-after") == "1")
            #expect(full.text.contains(#""code":"queue_full""#))
            let timedOut = try await waiting
            #expect(timedOut.status == 503)
            #expect(timedOut.text.contains(#""code":"queue_timeout""#))
            #expect(timedOut.header("x-replica-id") == nil)
            #expect(try await long.status == 200)
            #expect(h.inFlight() == 0 && gate.waiting == 0)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_queue_requests_total{pool="chat",outcome="full"} 1"#))
            #expect(metrics.contains(#"sluice_queue_requests_total{pool="chat",outcome="timeout"} 1"#))
            #expect(metrics.contains(#"sluice_requests_total{pool="chat",status="503"} 2"#))
        }
    }

    @Test func aClientThatLeavesWhileWaitingGivesItsPlaceBack() async throws {
        try await Self.run { h, gate in
            async let long = Self.chat(h, tokens: 20)
            try await Self.waitUntil("the slot is taken") { h.inFlight() == 1 }
            let leaving = try await TestHTTPConnection.connect(to: h.data, group: h.group)
            try await leaving.channel.executeThenClose { _, outbound in
                try await outbound.writeRequest(
                    .POST, "/v1/chat/completions", headers: [("content-type", "application/json")],
                    body: ByteBuffer(string: chatBody(maxTokens: 1)))
                try await Self.waitUntil("it waits") { gate.waiting == 1 }
            }
            try await Self.waitUntil("it left the queue") { gate.waiting == 0 }
            #expect(try await long.status == 200)
            // The slot was not handed to the departed client: the next request gets it.
            #expect(try await Self.chat(h, tokens: 1).status == 200)
            #expect(h.inFlight() == 0)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_queue_requests_total{pool="chat",outcome="cancelled"} 1"#))
            #expect(metrics.contains(#"sluice_requests_total{pool="chat",status="499"} 1"#))
        }
    }

    @Test func waitersAreServedByPriorityThenTenantsInTurn() async throws {
        let low = try AdmissionTests.keysFile(["sk-low"])
        let flood = try AdmissionTests.keysFile(["sk-flood"])
        let high = try AdmissionTests.keysFile(["sk-high"])
        defer { for path in [low, flood, high] { try? FileManager.default.removeItem(atPath: path) } }
        try await Self.run(configure: { config in
            var important = AdmissionTests.tenant("important", keysFile: high)
            important.limits.priority = 10
            config.limits.tenants = [
                AdmissionTests.tenant("flood", keysFile: flood), AdmissionTests.tenant("low", keysFile: low), important,
            ]
        }) { h, gate in
            let order = Locked<[String]>([])
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Long enough (about 3 s) that the five waiters queue behind it on a busy machine.
                group.addTask { _ = try await Self.chat(h, tokens: 150, key: "sk-flood") }
                try await Self.waitUntil("the slot is taken") { h.inFlight() == 1 }
                // Queued in this order: flood ×3, low, important; served: important (priority),
                // then flood and low in turn (not the flood's three first).
                let arrivals = ["flood-1": "sk-flood", "flood-2": "sk-flood", "flood-3": "sk-flood", "low": "sk-low", "important": "sk-high"]
                for (waiting, name) in ["flood-1", "flood-2", "flood-3", "low", "important"].enumerated() {
                    group.addTask {
                        let response = try await Self.chat(h, tokens: 1, key: arrivals[name])
                        #expect(response.status == 200)
                        order.withLock { $0.append(name) }
                    }
                    try await Self.waitUntil("\(name) waits") { gate.waiting == waiting + 1 }
                }
                try await group.waitForAll()
            }
            #expect(order.value == ["important", "flood-1", "low", "flood-2", "flood-3"])
        }
    }

    @Test func withTokenFairnessATenantOfLongPromptsWaitsForTheShortOnesTokens() async throws {
        let long = try AdmissionTests.keysFile(["sk-long"])
        let short = try AdmissionTests.keysFile(["sk-short"])
        defer { for path in [long, short] { try? FileManager.default.removeItem(atPath: path) } }
        try await Self.run(configure: { config in
            config.pools[0].queue.fairness = .tokens
            config.limits.tenants = [AdmissionTests.tenant("long", keysFile: long), AdmissionTests.tenant("short", keysFile: short)]
        }) { h, gate in
            let order = Locked<[String]>([])
            let longPrompt = String(repeating: "context ", count: 1_000)
            func ask(_ key: String, prompt: String, tokens: Int) async throws -> TestResponse {
                try await h.request(
                    "/v1/chat/completions", headers: [("content-type", "application/json"), ("authorization", "Bearer \(key)")],
                    body: chatBody(maxTokens: tokens, prompt: prompt))
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { _ = try await ask("sk-long", prompt: longPrompt, tokens: 150) }
                try await Self.waitUntil("the slot is taken") { h.inFlight() == 1 }
                // Queued: long ×2 (about 2,000 prompt tokens each), then short ×3 (a few each).
                // By tokens: one long, then the three short, then the other long (by request, the
                // second long would go second).
                let arrivals = ["long-1": "sk-long", "long-2": "sk-long", "short-1": "sk-short", "short-2": "sk-short", "short-3": "sk-short"]
                for (waiting, name) in ["long-1", "long-2", "short-1", "short-2", "short-3"].enumerated() {
                    group.addTask {
                        let key = arrivals[name]!
                        let response = try await ask(key, prompt: key == "sk-long" ? longPrompt : "hi", tokens: 1)
                        #expect(response.status == 200)
                        order.withLock { $0.append(name) }
                    }
                    try await Self.waitUntil("\(name) waits") { gate.waiting == waiting + 1 }
                }
                try await group.waitForAll()
            }
            #expect(order.value == ["long-1", "short-1", "short-2", "short-3", "long-2"])
            // Each tenant is charged what its replica reported using, not the estimate.
            let served = gate.served
            #expect(served.count == 2 && served.values.allSatisfy { $0 > 0 }, "\(served)")
        }
    }
}
