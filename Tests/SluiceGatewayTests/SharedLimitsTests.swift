import Foundation
import Logging
import NIOCore
import NIOPosix
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Limits shared by several gateway processes through one `redis-server` (`limits.backend:
/// redis://`), and what each does when Redis fails (`on_backend_failure`).
@Suite(.serialized) struct SharedLimitsTests {
    /// Three gateways in front of one replica sharing `limits`; `body` gets their data addresses.
    static func threeGateways(
        redisPort: Int, onFailure: BackendFailureMode, perMinute: Int, burst: Int,
        _ body: ([SocketAddress], any EventLoopGroup) async throws -> Void
    ) async throws {
        let keys = try AdmissionTests.keysFile(["sk-shared"])
        defer { try? FileManager.default.removeItem(atPath: keys) }
        try await GatewayHarness.run(configure: { config, _ in
            config.limits.tenants = [AdmissionTests.tenant("shared", keysFile: keys, perMinute: perMinute, burst: burst)]
            config.limits.backend = .redis(ReplicaID(host: "127.0.0.1", port: redisPort))
            config.limits.onBackendFailure = onFailure
            config.limits.backendTimeout = .milliseconds(200)
            config.limits.instances = 3
        }) { h in
            var others: [RunningGateway] = []
            var addresses = [h.data]
            for _ in 0..<2 {
                var logger = Logger(label: "sluice-test")
                logger.logLevel = .critical
                let gateway = Gateway(configuration: h.gateway.runtime.configuration, group: h.group, adminToken: nil, logger: logger)
                let running = try await RunningGateway.start(gateway, grace: .zero)
                addresses.append(running.bound.data)
                others.append(running)
            }
            do {
                try await body(addresses, h.group)
            } catch {
                for gateway in others { await gateway.stop() }
                throw error
            }
            for gateway in others { await gateway.stop() }
        }
    }

    /// `count` requests in turn through the gateways at `only` (indices into `addresses`; all by default).
    static func statuses(_ count: Int, across addresses: [SocketAddress], only: [Int]? = nil, group: any EventLoopGroup) async throws -> [Int: Int] {
        var statuses: [Int: Int] = [:]
        let chosen = only ?? Array(addresses.indices)
        for index in 0..<count {
            let response = try await TestHTTPConnection.request(
                .POST, "/v1/chat/completions", to: addresses[chosen[index % chosen.count]], group: group,
                headers: [("content-type", "application/json"), ("authorization", "Bearer sk-shared")], body: chatBody())
            statuses[response.status, default: 0] += 1
        }
        return statuses
    }

    @Test func threeGatewaysShareOneLimitAndFallBackToTheirShareWhenRedisDies() async throws {
        let redis = try RedisServerProcess()
        try await redis.start()
        // 60 a minute, burst 9: across three gateways, 9 pass, then one a second.
        try await Self.threeGateways(redisPort: redis.port, onFailure: .local, perMinute: 60, burst: 9) { addresses, group in
            try await Self.burstThroughOneIsSpentForAll(addresses, group: group, redisPort: redis.port)
            // Redis gone: each gateway falls back to its share (60/3 a minute, burst 3), so the
            // three together admit at most 9 more, and nothing fails for another reason.
            await redis.stop()
            // (Past the last refusal's retry time, which each gateway remembers: until then it
            // refuses without asking anyone, Redis or its fallback.)
            try await Task.sleep(for: .milliseconds(1_100))
            let local = try await Self.statuses(30, across: addresses, group: group)
            #expect(local[200, default: 0] >= 3 && local[200, default: 0] <= 9 + 3, "\(local)")
            #expect(local[200, default: 0] + local[429, default: 0] == 30, "\(local)")
            // Back (empty: a restart lost the counters): shared again, the burst anew.
            let again = try RedisServerProcess(port: redis.port)
            try await again.start()
            // Redis is asked again once `backendRetry` has passed since the last failure.
            try await Task.sleep(for: .milliseconds(1_100))
            let resumed = try await Self.statuses(12, across: addresses, group: group)
            #expect(resumed[200, default: 0] >= 9 && resumed[200, default: 0] <= 9 + 2, "\(resumed)")
            await again.stop()
        }
    }

    /// The whole burst (9) through one gateway, then the other two: shared only through Redis.
    static func burstThroughOneIsSpentForAll(_ addresses: [SocketAddress], group: any EventLoopGroup, redisPort: Int) async throws {
        let start = ContinuousClock.now
        // Its local share (burst 3) could not admit 9, so this fails unless the limit is in Redis.
        let first = try await Self.statuses(9, across: addresses, only: [0], group: group)
        #expect(first[200, default: 0] == 9, "one gateway, the shared burst: \(first)")
        // Then the other two find it spent: a gateway deciding alone would admit its own 3.
        let others = try await Self.statuses(21, across: addresses, only: [1, 2], group: group)
        let seconds = Int((ContinuousClock.now - start).components.seconds) + 1
        #expect(others[200, default: 0] <= seconds, "the other gateways, after the burst: \(others)")
        #expect(others[200, default: 0] + others[429, default: 0] == 21, "\(others)")
        // Redis's own count: every admission and at least one refusal per gateway asked it.
        // A refusal's retry time is remembered by each gateway: most of the refusals never
        // asked Redis (one round trip per gateway per retry window, plus admissions).
        let calls = try await Self.evalshaCalls(port: redisPort)
        let least = 9 + others[200, default: 0] + 2
        let most = least + 3 * (seconds + 1) + 1
        #expect(calls >= least, "EVALSHA calls: \(calls)")
        #expect(calls < most, "EVALSHA calls: \(calls)")
    }

    /// How many times Redis ran EVALSHA (from `INFO commandstats`).
    static func evalshaCalls(port: Int) async throws -> Int {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        let info = try await loop.flatSubmit {
            RedisConnection.connect(to: address, on: loop, timeout: .seconds(1)).flatMap { connection in
                connection.send(["INFO", "commandstats"], timeout: .seconds(1)).always { _ in connection.close() }
            }
        }.get()
        let text = info.string ?? ""
        guard let line = text.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_evalsha:") }),
              let calls = line.split(separator: ",").first?.split(separator: "=").last, let count = Int(calls)
        else { return 0 }
        return count
    }

    @Test func denyAndAllowDecideWhenRedisIsDown() async throws {
        let nobody = try RedisServerProcess()  // a free port where nothing listens
        try await Self.threeGateways(redisPort: nobody.port, onFailure: .deny, perMinute: 60, burst: 9) { addresses, group in
            let response = try await TestHTTPConnection.request(
                .POST, "/v1/chat/completions", to: addresses[0], group: group,
                headers: [("content-type", "application/json"), ("authorization", "Bearer sk-shared")], body: chatBody())
            #expect(response.status == 503)
            #expect(response.text.contains("rate_limit_backend_unavailable"))
        }
        try await Self.threeGateways(redisPort: nobody.port, onFailure: .allow, perMinute: 60, burst: 1) { addresses, group in
            let statuses = try await Self.statuses(5, across: addresses, group: group)
            #expect(statuses == [200: 5])
        }
    }

    @Test func tokenChargesAndTheirSettlementAreShared() async throws {
        let redis = try RedisServerProcess()
        try await redis.start()
        let keys = try AdmissionTests.keysFile(["sk-tokens"])
        defer { try? FileManager.default.removeItem(atPath: keys) }
        try await GatewayHarness.run(configure: { config, _ in
            var tenant = AdmissionTests.tenant("tokens", keysFile: keys)
            // One token a second comes back: within the test the counts are exact.
            tenant.limits.tokensPerMinute = 60
            tenant.limits.tokenBurst = 1_000
            var model = ModelLimits(model: "sim-7b")
            model.requestsPerMinute = 60
            model.burst = 3
            tenant.limits.models = [model]
            config.limits.tenants = [tenant]
            config.limits.backend = .redis(ReplicaID(host: "127.0.0.1", port: redis.port))
            config.limits.backendTimeout = .milliseconds(200)
            // Without Redis every request is refused (503), so nothing below passes on local limits.
            config.limits.onBackendFailure = .deny
        }) { h in
            let headers = [("content-type", "application/json"), ("authorization", "Bearer sk-tokens")]
            let first = try await h.request("/v1/chat/completions", headers: headers, body: chatBody(maxTokens: 4))
            #expect(first.status == 200)
            let answer = try #require(try JSONSerialization.jsonObject(with: Data(first.text.utf8)) as? [String: Any])
            let used = try #require((answer["usage"] as? [String: Any])?["total_tokens"] as? Int)
            // Charged the estimate (11) in Redis; the settlement to `used` follows the answer.
            #expect(first.header("x-ratelimit-remaining-tokens") == "\(1_000 - 11)")
            // One script run decided it; a second (the settlement) follows the answer.
            for _ in 0..<200 where try await Self.evalshaCalls(port: redis.port) < 2 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try await Self.evalshaCalls(port: redis.port) >= 2, "the charge and its settlement ran in Redis")
            let second = try await h.request("/v1/chat/completions", headers: headers, body: chatBody(maxTokens: 4))
            #expect(second.header("x-ratelimit-remaining-tokens") == "\(1_000 - used - 11)", "settled in Redis: \(used) used")
            // The model's limit (burst 3) is shared too, and refuses the fourth request.
            #expect(try await h.request("/v1/chat/completions", headers: headers, body: chatBody(maxTokens: 4)).status == 200)
            let refused = try await h.request("/v1/chat/completions", headers: headers, body: chatBody(maxTokens: 4))
            #expect(refused.status == 429 && refused.text.contains("for model sim-7b"))
        }
        await redis.stop()
    }

}
