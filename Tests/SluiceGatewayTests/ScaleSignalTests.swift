import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SluiceConfig
import SluiceCore
import SluiceLoad
import SluiceReplica
import SluiceSimulation
import SluiceTesting
import Synchronization
import Testing
@testable import SluiceGateway

/// Scale decisions from a running gateway in front of simulated replicas, on a compressed
/// clock (100 ms ticks, a 500 ms panic window, a 1.5 s stable window, a 2 s scale-down delay),
/// with the replicas' latency set at run time: steady holds, a surge scales out at once, the
/// quiet after it scales in only after the delay; and the publishers (`/admin/scale`,
/// `/metrics`, the webhook) say so.
@Suite(.serialized) struct ScaleSignalTests {
    /// Requests sent back to back by `loops` concurrent clients, until stopped.
    final class Load: Sendable {
        private let running = Atomic<Bool>(true)
        /// Between a client's requests (0: back to back).
        private let pause = Mutex(Duration.zero)
        private let tasks = Mutex<[Task<Void, Never>]>([])

        init(_ h: GatewayHarness, loops: Int) {
            add(h, loops: loops)
        }

        func add(_ h: GatewayHarness, loops: Int) {
            let started = (0..<loops).map { _ in
                Task {
                    while self.running.load(ordering: .relaxed), !Task.isCancelled {
                        _ = try? await h.request("/v1/chat/completions", body: chatBody(stream: true, maxTokens: 1))
                        let pause = self.pause.withLock { $0 }
                        if pause > .zero { try? await Task.sleep(for: pause) }
                    }
                }
            }
            tasks.withLock { $0 += started }
        }

        /// Stops all but `keep` clients, which then pause `pause` between requests.
        func reduce(to keep: Int, pause: Duration = .zero) async {
            self.pause.withLock { $0 = pause }
            let stopping = tasks.withLock { tasks -> [Task<Void, Never>] in
                let stopping = Array(tasks.dropFirst(keep))
                tasks = Array(tasks.prefix(keep))
                return stopping
            }
            for task in stopping { task.cancel() }
            for task in stopping { await task.value }
        }

        func stop() async {
            running.store(false, ordering: .relaxed)
            for task in tasks.withLock({ $0 }) { await task.value }
        }
    }

    static func fixedReplica(_ id: String) -> ReplicaConfiguration {
        var replica = ReplicaConfiguration(id: id)
        replica.timeToFirstToken = .milliseconds(20)
        replica.interTokenDelay = .milliseconds(1)
        return replica
    }

    static func setLatency(_ h: GatewayHarness, _ extra: Duration) {
        for replica in h.replicas { replica.faults.extraLatency = extra }
    }

    static func decision(_ h: GatewayHarness) -> ScaleAdvisor.Decision? {
        h.gateway.runtime.pools[0].scaling?.latest?.decision
    }

    @Test func aSurgeScalesOutAtOnceSteadyLoadHoldsAndScaleInWaitsForTheDelay() async throws {
        let sink = try await WebhookSink.start()
        try await GatewayHarness.run(replicas: [Self.fixedReplica("r1"), Self.fixedReplica("r2")], configure: { config, _ in
            // A target wide enough that a busy CI machine's jitter stays inside the steady band.
            var scaling = ScalingConfiguration(targetP95: .milliseconds(200))
            scaling.tick = .milliseconds(100)
            scaling.panicWindow = .milliseconds(500)
            scaling.stableWindow = .milliseconds(1_500)
            scaling.scaleDownDelay = .seconds(2)
            scaling.maxReplicas = 8
            config.pools[0].scaling = scaling
            config.publish.webhook = .init(host: "127.0.0.1", port: sink.port, path: "/hook", format: .slack)
        }) { h in
            // Steady: TTFT about 150 ms, inside the band (120-220 ms): 2 replicas, held.
            Self.setLatency(h, .milliseconds(130))
            let load = Load(h, loops: 8)
            try await Task.sleep(for: .milliseconds(2_000))
            var steady: [Int] = []
            for _ in 0..<10 {
                steady.append(Self.decision(h)?.desired ?? -1)
                try await Task.sleep(for: .milliseconds(100))
            }
            // Steady load holds whatever it settled on. That is 2, unless a loaded machine's first
            // answers (new connections, other suites running) passed the target while warming up.
            let base = steady.first ?? -1
            #expect(Set(steady) == [base] && (2...3).contains(base), "steady: \(steady)")
            #expect(Self.decision(h)?.reason.contains("within target 200 ms; holding \(base)") == true, "\(Self.decision(h)?.reason ?? "")")

            // Surge: TTFT about 470 ms, over twice the target: panic, scale-out at once.
            let surge = ContinuousClock.now
            Self.setLatency(h, .milliseconds(450))
            try await QueueTests.waitUntil("a scale-out", seconds: 10) { (Self.decision(h)?.desired ?? 0) > base }
            let reaction = ContinuousClock.now - surge
            let out = try #require(Self.decision(h))
            // (Usually the panic window's p95 passes twice the target first; on a busy machine the
            // stable window's can get there in the same tick: either way the step is bounded.
            // The modes themselves are tested exactly on traces, in ScaleAdvisorTests.)
            #expect(out.desired <= base + 4)
            #expect(out.reason.contains("> target 200 ms (") && out.reason.contains("); \(base) → \(out.desired) replicas"), "\(out.reason)")
            // The first slow answers take 470 ms; the panic window then has data, and one tick
            // decides. The bound leaves room for a loaded CI machine (both cores busy with other
            // suites); the modes' timing is tested exactly in ScaleAdvisorTests.
            #expect(reaction < .seconds(6), "reaction \(reaction)")
            var during: [Int] = []
            for _ in 0..<10 {
                during.append(Self.decision(h)?.desired ?? -1)
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(during.allSatisfy { $0 >= out.desired }, "no scale-in while the surge lasts: \(during)")

            // Quiet: TTFT 20 ms, one client sending every 50 ms or so (few in flight, enough
            // samples). Panic lasts a stable window (1.5 s) past its last sign, then the
            // scale-down delay (2 s) must pass before a step down.
            let quiet = ContinuousClock.now
            Self.setLatency(h, .zero)
            await load.reduce(to: 1, pause: .milliseconds(30))
            let before = Self.decision(h)?.desired ?? 0
            try await QueueTests.waitUntil("a scale-in", seconds: 15) { (Self.decision(h)?.desired ?? 99) < before }
            let waited = ContinuousClock.now - quiet
            #expect(waited >= .milliseconds(2_000), "scale-in after \(waited)")
            let inDecision = try #require(Self.decision(h))
            #expect(inDecision.mode == .stable && inDecision.reason.contains("(one step)"), "\(inDecision.reason)")
            await load.stop()

            // The publishers.
            let scale = try await h.adminRequest("/admin/scale")
            #expect(scale.status == 200 && scale.header("content-type") == "application/json")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(scale.text.utf8)) as? [String: Any])
            let pool = try #require((object["pools"] as? [String: Any])?["chat"] as? [String: Any])
            #expect(pool["desired"] as? Int == inDecision.desired || pool["desired"] as? Int == inDecision.desired - 1)
            #expect(pool["signal"] as? String == "ttft" && pool["target_seconds"] as? Double == 0.2)
            #expect((pool["reason"] as? String)?.isEmpty == false && (pool["at"] as? String)?.hasSuffix("Z") == true)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_pool_desired_replicas{pool="chat"}"#))
            #expect(metrics.contains(#"sluice_pool_latency_p95_seconds{pool="chat",window="stable"}"#))
            #expect(metrics.contains(#"sluice_pool_signal_seconds_bucket{pool="chat",signal="ttft",le="0.1"}"#))
            let ready = try await h.adminRequest("/readyz").text
            #expect(ready.contains(#""desired""#) && ready.contains(#""target_ms""#))
            // Every change reached the webhook, as Slack text.
            try await QueueTests.waitUntil("the webhook has both changes") { sink.bodies.count >= 2 }
            let texts = sink.bodies.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }.compactMap { $0["text"] as? String }
            #expect(texts.first?.hasPrefix("Sluice pool *chat*: 2 → ") == true, "\(texts)")
            #expect(texts.contains { $0.contains("(one step)") })
            #expect(metrics.contains(#"sluice_scale_webhook_total{result="delivered"}"#))
        }
        try await sink.stop()
    }
}

extension ScaleSignalTests {
    /// A replica that serves two sequences at a time, 10 ms a token: about 25 requests/s of 8
    /// tokens before requests queue (and TTFT grows).
    static func smallReplica(_ id: String) -> ReplicaConfiguration {
        var profile = ReplicaProfile.fast
        profile.timeScale = 1
        profile.engine = EngineProfile(
            maxRunning: 2, maxBatchedTokens: 256, blockSize: 16, kvBlocks: 512,
            stepBase: .milliseconds(10), decodePerSequence: .microseconds(100), prefillPerToken: .microseconds(10))
        return ReplicaConfiguration(id: id, profile: profile)
    }

    @Test func theClosedLoopBringsP95BackUnderTargetAndRemovesNothingDuringTheSurge() async throws {
        try await GatewayHarness.run(replicas: [Self.smallReplica("r1")], configure: { config, _ in
            var scaling = ScalingConfiguration(targetP95: .milliseconds(150))
            scaling.tick = .milliseconds(200)
            scaling.panicWindow = .seconds(1)
            scaling.stableWindow = .seconds(3)
            scaling.scaleDownDelay = .seconds(30)
            scaling.maxReplicas = 6
            config.pools[0].scaling = scaling
        }) { h in
            var actuatorSettings = ReplicaActuator.Settings(pool: "chat", replica: Self.smallReplica("scaled"))
            actuatorSettings.startupDelay = .milliseconds(500)
            actuatorSettings.interval = .milliseconds(200)
            let client = try #require(AdminClient(url: "http://127.0.0.1:\(h.admin.port!)"))
            let actuator = ReplicaActuator(actuatorSettings, client: client, group: h.group)
            let stop = Locked(false)
            let acting = Task { await actuator.run(shouldStop: { stop.value }) }

            // 8 requests/s for 3 s, then 60/s (over twice one replica's capacity) for 8 s.
            var chat = Workload.Chat()
            chat.users = 30
            chat.systemPromptWords = 20
            chat.userWords = 10
            chat.maxTokens = 8
            var settings = LoadRunSettings(
                scenario: "surge", plan: ArrivalPlan(phases: [
                    .init(shape: .constant(rate: 8), duration: .seconds(3)),
                    .init(shape: .constant(rate: 60), duration: .seconds(8)),
                ]),
                mix: [.init(weight: 1, workload: .chat(chat))])
            settings.adminURL = "http://127.0.0.1:\(h.admin.port!)"
            settings.timeout = .seconds(20)
            let report = try await LoadRunner.run(settings, target: "http://127.0.0.1:\(h.data.port!)")
            stop.withLock { $0 = true }
            await acting.value

            let events = actuator.events
            #expect(events.contains { $0.action == "ready" }, "the actuator added replicas: \(events)")
            #expect(!events.contains { $0.action == "drain" }, "nothing removed during the surge: \(events)")
            // Before the end of the surge, the client's per-second TTFT p95 is back under the target.
            let late = report.timeline.filter { $0.second >= 8 && $0.second < 11 }.compactMap(\.ttftP95Ms)
            let peak = report.timeline.compactMap(\.ttftP95Ms).max() ?? 0
            #expect(peak > 150, "the surge pushed TTFT past the target (peak \(peak) ms)")
            #expect(!late.isEmpty && late.allSatisfy { $0 <= 150 }, "TTFT p95 in the surge's last seconds: \(late) (peak \(peak))")
            let desired = report.gateway?.compactMap { $0.pools["chat"]?.desired } ?? []
            #expect((desired.max() ?? 0) > 1 && (desired.max() ?? 0) <= 6)
        }
    }
}

extension ScaleSignalTests {
    /// The samples of the pool's signal window so far.
    static func samples(_ h: GatewayHarness) -> LogHistogram {
        let scaling = h.gateway.runtime.pools[0].scaling!
        return scaling.window.histogram(over: UInt64(scaling.configuration.stableWindow.nanoseconds), at: NIODeadline.now().uptimeNanoseconds)
    }

    @Test func eachSignalRecordsWhatItNames() async throws {
        for signal in ScalingSignal.allCases {
            var slow = Self.fixedReplica("r1")
            slow.timeToFirstToken = .milliseconds(50)
            slow.interTokenDelay = .milliseconds(30)
            try await GatewayHarness.run(replicas: [slow], configure: { config, _ in
                var scaling = ScalingConfiguration(targetP95: .seconds(1))
                scaling.signal = signal
                config.pools[0].scaling = scaling
                config.pools[0].maxConcurrentPerReplica = 1
            }) { h in
                // Two streams of 4 tokens and one plain answer, one after another.
                for stream in [true, true, false] {
                    let answer = try await h.request("/v1/chat/completions", body: chatBody(stream: stream, maxTokens: 4))
                    #expect(answer.status == 200)
                }
                // Not an answer from a replica: never a sample.
                let refused = try await h.request("/nowhere", body: "{}")
                #expect(refused.status == 404)
                let samples = Self.samples(h)
                #expect(samples.count == 3, "\(signal)")
                let p95 = Double(samples.quantile(0.95) ?? 0) / 1_000
                switch signal {
                case .ttft:
                    // Streams: first token (about 50 ms); the plain answer: all of it (about 140 ms).
                    #expect(Double(samples.quantile(0.5) ?? 0) / 1_000 < 100 && p95 >= 130, "ttft p50 \(samples.quantile(0.5) ?? 0) p95 \(p95)")
                case .latency:
                    #expect(Double(samples.quantile(0.05) ?? 0) / 1_000 >= 130, "latency p5 \(samples.quantile(0.05) ?? 0)")
                case .queueWait:
                    // One at a time, so nobody waited.
                    #expect(p95 < 5, "queue wait p95 \(p95) ms")
                }
            }
        }
    }

    @Test func aSubWindowSurvivesTheTripThroughRedisText() {
        var histogram = LogHistogram()
        for micros: UInt64 in [0, 5, 127, 128, 999, 250_000, 250_001, 1 << 30] { histogram.record(micros: micros) }
        let text = SharedScaleView.encode(histogram, inFlight: 7, queued: 3)
        let decoded = SharedScaleView.decode(text)
        #expect(decoded?.histogram == histogram && decoded?.inFlight == 7 && decoded?.queued == 3)
        #expect(SharedScaleView.decode("7 3;") != nil && SharedScaleView.decode("7 3;99999:1") == nil && SharedScaleView.decode("x") == nil)
    }

    /// A fast-ticking scaled pool (target 100 ms) whose view is shared through the Redis at `redisPort`.
    static func sharedScaling(redisPort: Int) -> ScalingConfiguration {
        var scaling = ScalingConfiguration(targetP95: .milliseconds(100))
        scaling.tick = .milliseconds(200)
        scaling.panicWindow = .seconds(1)
        scaling.stableWindow = .seconds(2)
        scaling.maxReplicas = 8
        scaling.shared = ReplicaID(host: "127.0.0.1", port: redisPort)
        return scaling
    }

    @Test func twoGatewaysWithTheSharedViewPublishTheSameDecision() async throws {
        let redis = try RedisServerProcess()
        try await redis.start()
        try await GatewayHarness.run(replicas: [Self.fixedReplica("r1")], configure: { config, _ in
            config.pools[0].scaling = Self.sharedScaling(redisPort: redis.port)
        }) { h in
            var logger = Logger(label: "sluice-test")
            logger.logLevel = .critical
            let other = try await RunningGateway.start(
                Gateway(configuration: h.gateway.runtime.configuration, group: h.group, adminToken: nil, logger: logger), grace: .zero)
            // Only the first gateway has traffic, and it is slow (TTFT about 220 ms).
            Self.setLatency(h, .milliseconds(200))
            let load = Load(h, loops: 6)
            try await QueueTests.waitUntil("a scale-out") { (Self.decision(h)?.desired ?? 0) > 1 }
            var same = 0
            var otherScaled = false
            for _ in 0..<10 {
                // Mid-tick: both have decided this tick (each ticks 20 ms past the boundary).
                let wall = UInt64(Date().timeIntervalSince1970 * 1_000)
                try await Task.sleep(for: .milliseconds(Int64(200 - wall % 200 + 100)))
                let mine = Self.decision(h)?.desired
                let theirs = other.gateway.runtime.pools[0].scaling?.latest?.decision.desired
                if mine == theirs { same += 1 }
                if (theirs ?? 0) > 1 { otherScaled = true }
            }
            await load.stop()
            #expect(same >= 8, "the same desired count in \(same) of 10 ticks")
            #expect(otherScaled, "the gateway without traffic saw the other's latency")
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains("sluice_scale_shared_failures_total 0"))
            await other.stop()
        }
        await redis.stop()
    }
}

/// A tiny HTTP server that answers 200 and keeps each request body.
final class WebhookSink: Sendable {
    private let channel: any Channel
    private let received: Locked<[[UInt8]]>
    var port: Int { channel.localAddress!.port! }
    var bodies: [String] { received.value.map { String(decoding: $0, as: UTF8.self) } }
    /// The bodies as bytes (an OTLP/protobuf export is not text).
    var rawBodies: [[UInt8]] { received.value }

    private init(channel: any Channel, received: Locked<[[UInt8]]>) {
        self.channel = channel
        self.received = received
    }

    /// Listens on 127.0.0.1, port 0; with `tls`, speaks https only.
    static func start(tls: NIOSSLContext? = nil) async throws -> WebhookSink {
        let box = Locked<[[UInt8]]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Collector(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return WebhookSink(channel: channel, received: box)
    }

    func stop() async throws {
        try await channel.close()
    }

    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let box: Locked<[[UInt8]]>
        var body: [UInt8] = []

        init(box: Locked<[[UInt8]]>) {
            self.box = box
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head:
                body = []
            case .body(let buffer):
                body += buffer.readableBytesView
            case .end:
                box.withLock { $0.append(body) }
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
