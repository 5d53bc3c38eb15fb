import Foundation
import NIOCore
import SluiceConfig
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Spans per request exported over OTLP/HTTP (protobuf) to a local stand-in collector that keeps
/// what it receives (`WebhookSink`), read by `OTLPReader`.
@Suite(.serialized) struct TracingTests {
    static func spans(_ sink: WebhookSink) -> [OTLPReader.Span] {
        sink.rawBodies.flatMap(OTLPReader.spans)
    }

    static func tracing(_ sink: WebhookSink, sample: Double = 1) -> TracingConfiguration {
        var tracing = TracingConfiguration(endpoint: "http://127.0.0.1:\(sink.port)/v1/traces")
        tracing.sample = sample
        tracing.exportDelay = .milliseconds(50)
        return tracing
    }

    @Test func aRequestsTraceContinuesTheClientsShowsItsStagesAndWhyItsReplicaWasPicked() async throws {
        let sink = try await WebhookSink.start()
        defer { Task { try? await sink.stop() } }
        try await GatewayHarness.run(replicas: [ReplicaConfiguration(id: "r1"), ReplicaConfiguration(id: "r2")], configure: { config, _ in
            config.tracing = Self.tracing(sink)
            config.pools[0].policy = .leastQueue
        }) { h in
            let clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736", clientSpan = "00f067aa0ba902b7"
            let response = try await h.request("/v1/echo", headers: [
                ("content-type", "text/plain"), ("traceparent", "00-\(clientTrace)-\(clientSpan)-01"),
            ], body: "ping")
            #expect(response.status == 200)
            // The replica sees the same trace, with the gateway's upstream span as its parent.
            let seen = try #require(response.header("x-seen-traceparent")).split(separator: "-").map(String.init)
            #expect(seen.count == 4 && seen[1] == clientTrace && seen[2] != clientSpan && seen[3] == "01", "\(seen)")

            try await QueueTests.waitUntil("the collector got both spans") {
                Self.spans(sink).filter { $0.traceID == clientTrace }.count >= 2
            }
            let spans = Self.spans(sink).filter { $0.traceID == clientTrace }
            let server = try #require(spans.first { $0.parentSpanID == clientSpan }, "\(spans.map(\.name))")
            #expect(server.name == "POST /v1/echo")
            #expect(server.kind == 2, "server")
            #expect(server.attributes["http.response.status_code"] == "200", "\(server.attributes)")
            #expect(server.attributes["sluice.pool"] == "chat")
            let names = server.events.map(\.name)
            #expect(names == ["picked", "first byte", "last byte"], "\(names)")
            let picked = try #require(server.events.first { $0.name == "picked" })
            #expect(picked.attributes["sluice.routing.reason"] == "least_queue", "\(picked.attributes)")
            #expect([h.replicaIDs[0].description, h.replicaIDs[1].description].contains(picked.attributes["sluice.replica"] ?? ""))
            let upstream = try #require(spans.first { $0.parentSpanID == server.spanID })
            #expect(upstream.spanID == seen[2], "the replica's parent is the upstream span")
            #expect(upstream.kind == 3, "client")
        }
    }

    @Test func requestsWithoutASampledParentAreTracedAtTheSampleRate() async throws {
        let sink = try await WebhookSink.start()
        defer { Task { try? await sink.stop() } }
        try await GatewayHarness.run(configure: { config, _ in
            config.tracing = Self.tracing(sink, sample: 0)
        }) { h in
            for _ in 0..<5 {
                #expect(try await h.request("/v1/chat/completions", body: chatBody()).status == 200)
            }
            // A client that samples its own trace is followed, whatever the rate.
            let sampled = "0af7651916cd43dd8448eb211c80319c"
            #expect(try await h.request("/v1/chat/completions", headers: [
                ("content-type", "application/json"), ("traceparent", "00-\(sampled)-b7ad6b7169203331-01"),
            ], body: chatBody()).status == 200)
            try await QueueTests.waitUntil("the sampled trace exported") { !Self.spans(sink).isEmpty }
            try await Task.sleep(for: .milliseconds(300))
            let traces = Set(Self.spans(sink).map(\.traceID))
            #expect(traces == [sampled], "\(traces)")
        }
    }

    @Test func aQueuedRequestsTraceShowsItsTenantItsBodyReadAndItsWaitForASlot() async throws {
        let sink = try await WebhookSink.start()
        defer { Task { try? await sink.stop() } }
        let keys = try AdmissionTests.keysFile(["sk-a"])
        defer { try? FileManager.default.removeItem(atPath: keys) }
        var slow = ReplicaConfiguration(id: "slow")
        slow.faults.extraLatency = .milliseconds(300)
        try await GatewayHarness.run(replicas: [slow], configure: { config, _ in
            config.tracing = Self.tracing(sink)
            config.pools[0].maxConcurrentPerReplica = 1
            // A token limit: the body is read for its estimate.
            var tenant = AdmissionTests.tenant("team-a", keysFile: keys, perMinute: 600)
            tenant.limits.tokensPerMinute = 1_000_000
            config.limits.tenants = [tenant]
        }) { h in
            // Two at once on one slot: the second waits for the first.
            async let first = AdmissionTests.chat(h, key: "sk-a")
            try await Task.sleep(for: .milliseconds(100))
            let second = try await AdmissionTests.chat(h, key: "sk-a")
            #expect(second.status == 200)
            #expect(try await first.status == 200)
            try await QueueTests.waitUntil("two server spans") { Self.spans(sink).filter { $0.kind == 2 }.count >= 2 }
            let servers = Self.spans(sink).filter { $0.kind == 2 }
            let queued = try #require(servers.first { $0.events.contains { $0.name == "queued" } }, "\(servers.map(\.events))")
            #expect(queued.events.map(\.name) == ["admitted", "body read", "queued", "slot", "picked", "first byte", "last byte"], "\(queued.events.map(\.name))")
            #expect(queued.attributes["sluice.tenant"] == "team-a")
            #expect(queued.events.first?.attributes["sluice.tenant"] == "team-a")
        }
    }
}
