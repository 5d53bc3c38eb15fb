import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import SluiceConfig
import SluiceCore
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Scale decisions still get out when what carries them fails: a webhook target that fails
/// its first attempts is retried (1 s, then 2 s later) and gets the decision once; an https
/// target is trusted through the CA of `ca_file` (and only through it); a gateway
/// whose shared view's Redis is gone decides on its own windows and publishes that.
@Suite(.serialized) struct ScalePublishingTests {
    static let published = PoolScaling.Published(
        pool: "chat", signal: .ttft,
        decision: ScaleAdvisor.Decision(
            current: 2, desired: 4, stableP95: nil, panicP95: 900_000, target: 200_000, mode: .panic,
            reason: "p95 900 ms > target 200 ms (panic window 6 s); 2 → 4 replicas", at: 0, capacityPerReplica: nil),
        arrivalRate: 10, inFlight: 8, queued: 0, at: Date())

    /// A publisher whose webhook is `webhook`, running with its HTTP client in a ServiceGroup
    /// (as in a gateway) while `body` runs, and the metrics it counts in.
    static func withPublisher(
        _ webhook: PublishConfiguration.Webhook, _ body: (ScalePublisher, GatewayMetrics) async throws -> Void
    ) async throws {
        var configuration = PublishConfiguration()
        configuration.webhook = webhook
        var logger = Logger(label: "sluice-test")
        logger.logLevel = .critical
        let metrics = GatewayMetrics()
        let client = BackgroundHTTPClient(group: MultiThreadedEventLoopGroup.singleton)
        let publisher = ScalePublisher(configuration, client: client, logger: logger, metrics: metrics)
        let services = ServiceGroup(services: [client, publisher], logger: logger)
        let running = Task { try await services.run() }
        do {
            try await body(publisher, metrics)
        } catch {
            await services.triggerGracefulShutdown()
            _ = try? await running.value
            throw error
        }
        await services.triggerGracefulShutdown()
        try await running.value
    }

    static func hook(port: Int) -> PublishConfiguration.Webhook {
        .init(host: "127.0.0.1", port: port, path: "/hook", format: .json)
    }

    static func count(_ metrics: GatewayMetrics, _ result: String) -> Int? {
        let prefix = #"sluice_scale_webhook_total{result="\#(result)"} "#
        return metrics.render().split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Int($0.dropFirst(prefix.count)) }
    }

    @Test func aWebhookThatFailsIsRetriedAfterOneThenTwoSecondsAndGetsTheDecisionOnce() async throws {
        // The first attempt's connection is closed without an answer, the second is answered
        // 500, the third 200.
        let target = try await ScriptedServer.start { _, index in
            switch index {
            case 0: .close
            case 1: .status(500, body: "{}")
            default: .status(200, body: "{}")
            }
        }
        try await Self.withPublisher(Self.hook(port: target.port)) { publisher, metrics in
            publisher.publish(Self.published)
            try await QueueTests.waitUntil("the decision is delivered", seconds: 10) { Self.count(metrics, "delivered") == 1 }
            let attempts = target.requests
            #expect(attempts.count == 3)
            #expect(Set(attempts.map(\.body)).count == 1 && attempts.first?.body.contains(#""desired":4"#) == true, "\(attempts.map(\.body))")
            if attempts.count == 3 {
                // Retried 1 s after the first failure and 2 s after the second (lower bounds only).
                #expect(attempts[1].at - attempts[0].at >= .milliseconds(950), "\(attempts[1].at - attempts[0].at)")
                #expect(attempts[2].at - attempts[1].at >= .milliseconds(1_950), "\(attempts[2].at - attempts[1].at)")
            }
            #expect(Self.count(metrics, "failed") == 0)
        }
        try await target.stop()
    }

    @Test func aWebhookTargetThatRefusesConnectionsAtFirstGetsTheDecisionOnceItListens() async throws {
        let port = try await GatewayHarness.closedPort(group: MultiThreadedEventLoopGroup.singleton)
        try await Self.withPublisher(Self.hook(port: port)) { publisher, metrics in
            publisher.publish(Self.published)
            // The target is down for the first 1.5 s: the first attempt (at once) is refused, and
            // so is the retry 1 s later if it comes before the target is up; the next one finds it.
            try await Task.sleep(for: .milliseconds(1_500))
            let target = try await ScriptedServer.start(port: port) { _, _ in .status(200, body: "{}") }
            try await QueueTests.waitUntil("the decision is delivered", seconds: 10) { Self.count(metrics, "delivered") == 1 }
            #expect(target.requests.count == 1)
            #expect(target.requests.first?.body.contains(#""desired":4"#) == true)
            #expect(Self.count(metrics, "failed") == 0)
            try await target.stop()
        }
    }

    @Test func aWebhookAtAnHTTPSURLIsDeliveredWhenItsCAFileVouchesForTheReceiver() async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let sink = try await WebhookSink.start(tls: try certificates.serverContext())
        var webhook = Self.hook(port: sink.port)
        webhook.https = true
        webhook.caFile = certificates.caFile
        #expect(webhook.url == "https://127.0.0.1:\(sink.port)/hook")
        try await Self.withPublisher(webhook) { publisher, metrics in
            publisher.publish(Self.published)
            try await QueueTests.waitUntil("the decision is delivered", seconds: 10) { Self.count(metrics, "delivered") == 1 }
            #expect(sink.bodies.count == 1 && sink.bodies.first?.contains(#""desired":4"#) == true, "\(sink.bodies)")
        }
        // Without the CA file the same receiver is a stranger (the system's roots do not know its
        // CA): every attempt fails its handshake, and the decision is given up.
        webhook.caFile = nil
        try await Self.withPublisher(webhook) { publisher, metrics in
            publisher.publish(Self.published)
            try await QueueTests.waitUntil("the decision is given up", seconds: 15) { Self.count(metrics, "failed") == 1 }
            #expect(Self.count(metrics, "delivered") == 0)
        }
        #expect(sink.bodies.count == 1)
        try await sink.stop()
    }

    @Test func withItsSharedViewsRedisStoppedAGatewayDecidesAndPublishesOnItsOwn() async throws {
        let redis = try RedisServerProcess()
        try await redis.start()
        let sink = try await WebhookSink.start()
        try await GatewayHarness.run(replicas: [ScaleSignalTests.fixedReplica("r1")], configure: { config, _ in
            config.pools[0].scaling = ScaleSignalTests.sharedScaling(redisPort: redis.port)
            config.publish.webhook = .init(host: "127.0.0.1", port: sink.port, path: "/hook", format: .json)
        }) { h in
            try await Self.decideAlone(h, redis: redis, sink: sink)
        }
        try await sink.stop()
        await redis.stop()
    }

    static func decideAlone(_ h: GatewayHarness, redis: RedisServerProcess, sink: WebhookSink) async throws {
        // First through Redis: a tick passes and nothing has failed.
        let first = ScaleSignalTests.decision(h)?.at ?? 0
        try await QueueTests.waitUntil("a shared tick") { (ScaleSignalTests.decision(h)?.at ?? 0) > first }
        #expect(try await h.adminRequest("/metrics").text.contains("sluice_scale_shared_failures_total 0"))

        // Redis gone, then slow answers (TTFT about 220 ms against a 100 ms target).
        await redis.stop()
        ScaleSignalTests.setLatency(h, .milliseconds(200))
        let load = ScaleSignalTests.Load(h, loops: 6)
        try await QueueTests.waitUntil("a scale-out decided alone", seconds: 10) { (ScaleSignalTests.decision(h)?.desired ?? 0) > 1 }
        await load.stop()
        let desired = ScaleSignalTests.decision(h)?.desired ?? 0

        // Published as any decision is: counted as decided alone, in /admin/scale, and to the webhook.
        let metrics = try await h.adminRequest("/metrics").text
        let failures = metrics.split(separator: "\n").first { $0.hasPrefix("sluice_scale_shared_failures_total ") }
        #expect((failures.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0) > 0, "\(failures ?? "no failure count")")
        let scale = try await h.adminRequest("/admin/scale")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(scale.text.utf8)) as? [String: Any])
        let pool = try #require((object["pools"] as? [String: Any])?["chat"] as? [String: Any])
        #expect((pool["desired"] as? Int ?? 0) > 1, "\(scale.text)")
        try await QueueTests.waitUntil("the webhook has the change") { !sink.bodies.isEmpty }
        let hooked = sink.bodies.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        #expect(hooked.contains { ($0["desired"] as? Int ?? 0) > 1 }, "\(sink.bodies); desired \(desired)")
    }
}
