import Foundation
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Tenant limits at the gateway (local backend): who is asking, by API key; 429 answers with
/// the fields a client needs to come back; admitted answers carry the same fields.
@Suite(.serialized) struct AdmissionTests {
    static func keysFile(_ keys: [String]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-keys-\(UUID()).txt").path
        try (["# team keys"] + keys + [""]).joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func tenant(_ name: String, keysFile: String, perMinute: Int? = nil, burst: Int? = nil, maxConcurrent: Int? = nil) -> TenantConfiguration {
        var limits = TenantLimits()
        limits.requestsPerMinute = perMinute
        limits.burst = burst
        limits.maxConcurrent = maxConcurrent
        return TenantConfiguration(name: name, keysFile: keysFile, limits: limits)
    }

    static func chat(_ h: GatewayHarness, key: String?) async throws -> TestResponse {
        var headers = [("content-type", "application/json")]
        if let key { headers.append(("authorization", "Bearer \(key)")) }
        return try await h.request("/v1/chat/completions", headers: headers, body: chatBody())
    }

    @Test func aTenantOverItsRateGets429WithWhenToComeBack() async throws {
        let keys = try Self.keysFile(["sk-a-1", "sk-a-2"])
        let other = try Self.keysFile(["sk-b"])
        defer { for path in [keys, other] { try? FileManager.default.removeItem(atPath: path) } }
        try await GatewayHarness.run(configure: { config, _ in
            config.limits.tenants = [
                // Six a minute: one more every 10 s, so a slow machine cannot refill it mid-test.
                Self.tenant("team-a", keysFile: keys, perMinute: 6, burst: 3),
                Self.tenant("team-b", keysFile: other, perMinute: 6_000),
            ]
            var fallback = TenantLimits()
            fallback.requestsPerMinute = 6
            fallback.burst = 1
            config.limits.defaultTenant = fallback
        }) { h in
            // Both of team-a's keys draw from one limit: three at once, then refused.
            let first = try await Self.chat(h, key: "sk-a-1")
            #expect(first.status == 200)
            #expect(first.header("x-ratelimit-limit-requests") == "6")
            #expect(first.header("x-ratelimit-remaining-requests") == "2")
            #expect(first.header("ratelimit-policy") == "\"requests\";q=6;w=60")
            #expect(try await Self.chat(h, key: "sk-a-2").status == 200)
            #expect(try await Self.chat(h, key: "sk-a-1").status == 200)
            let refused = try await Self.chat(h, key: "sk-a-2")
            #expect(refused.status == 429)
            #expect((1...10).contains(Int(refused.header("retry-after") ?? "") ?? 0))
            #expect(refused.header("x-ratelimit-remaining-requests") == "0")
            #expect(refused.header("x-ratelimit-reset-requests")?.hasSuffix("s") == true)
            #expect(refused.header("ratelimit")?.hasPrefix("\"requests\";r=0;t=") == true)
            #expect(refused.header("content-type") == "application/json")
            #expect(refused.text.contains(#""code":"rate_limit_exceeded""#))
            #expect(refused.text.contains("team-a"))
            // The refusal never reached a replica: it answered three requests.
            #expect(refused.header("x-replica-id") == nil)
            // Another tenant is not affected; unknown and missing keys share `default`'s limit.
            #expect(try await Self.chat(h, key: "sk-b").status == 200)
            #expect(try await Self.chat(h, key: "sk-unknown").status == 200)
            #expect(try await Self.chat(h, key: nil).status == 429)
            // Keys are exact: a prefix of a key, or another case, is another (unknown) key.
            #expect(try await Self.chat(h, key: "sk-a").status == 429)
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_admission_decisions_total{tenant="team-a",decision="admitted"} 3"#))
            #expect(metrics.contains(#"sluice_admission_decisions_total{tenant="team-a",decision="refused_rate"} 1"#))
            #expect(metrics.contains(#"sluice_admission_decisions_total{tenant="default",decision="refused_rate"} 2"#))
            #expect(metrics.contains(#"sluice_requests_total{pool="",status="429"} 3"#))
        }
    }

    @Test func maxConcurrentHoldsWhileAStreamRuns() async throws {
        let keys = try Self.keysFile(["sk-c"])
        defer { try? FileManager.default.removeItem(atPath: keys) }
        try await GatewayHarness.run(
            replicas: [GatewayHarness.slowReplica(interTokenDelay: .milliseconds(20))],
            configure: { config, _ in config.limits.tenants = [Self.tenant("team-c", keysFile: keys, maxConcurrent: 1)] }
        ) { h in
            let connection = try await TestHTTPConnection.connect(to: h.data, group: h.group)
            try await connection.channel.executeThenClose { inbound, outbound in
                try await outbound.writeRequest(
                    .POST, "/v1/chat/completions", headers: [("content-type", "application/json"), ("authorization", "Bearer sk-c")],
                    body: ByteBuffer(string: chatBody(stream: true, maxTokens: 20)))
                var iterator = inbound.makeAsyncIterator()
                guard case .head(let head) = try await iterator.next() else {
                    Issue.record("no head")
                    return
                }
                #expect(head.status == .ok)
                let second = try await Self.chat(h, key: "sk-c")
                #expect(second.status == 429)
                #expect(second.text.contains("max_concurrent"))
                while let part = try await iterator.next() { if case .end = part { break } }
            }
            // The stream ended: the slot is free again.
            #expect(try await Self.chat(h, key: "sk-c").status == 200)
            #expect(h.gateway.runtime.admission?.policy.state(of: 0).inFlight == 0)
        }
    }

    @Test func shadowModeReportsButRefusesNothing() async throws {
        try await GatewayHarness.run(configure: { config, _ in
            var fallback = TenantLimits()
            fallback.requestsPerMinute = 6  // one more every 10 s: nothing refills mid-test
            fallback.burst = 1
            config.limits.defaultTenant = fallback
            config.limits.shadow = true
        }) { h in
            for _ in 0..<3 {
                let response = try await Self.chat(h, key: nil)
                #expect(response.status == 200)
                #expect(response.header("x-ratelimit-limit-requests") == "6")
            }
            #expect(try await Self.chat(h, key: nil).header("x-ratelimit-remaining-requests") == "0")
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_admission_decisions_total{tenant="default",decision="shadow_refused"} 3"#))
        }
    }

    @Test func aConcurrencyRefusalSpendsNoRateEvenInShadowMode() throws {
        for shadow in [false, true] {
            var configuration = LimitsConfiguration()
            var limits = TenantLimits()
            limits.requestsPerMinute = 60
            limits.burst = 2
            limits.maxConcurrent = 1
            configuration.defaultTenant = limits
            configuration.shadow = shadow
            let admission = try Admission(configuration)
            let now: UInt64 = 5_000_000_000
            func remaining(_ outcome: Admission.Outcome) -> String? {
                switch outcome {
                case .admitted(_, let windows): RateLimitHeaders.fields(windows).first { $0.0 == "x-ratelimit-remaining-requests" }?.1
                case .refused(_, let fields): fields.first { $0.0 == "x-ratelimit-remaining-requests" }?.1
                }
            }
            #expect(remaining(admission.admit(tenant: 0, now: now)) == "1")
            let second = admission.admit(tenant: 0, now: now)
            if case .admitted = second { #expect(shadow) } else { #expect(!shadow) }
            #expect(remaining(second) == "1", "shadow \(shadow)")
            admission.release(tenant: 0)
            if shadow { admission.release(tenant: 0) }
            #expect(remaining(admission.admit(tenant: 0, now: now)) == "0", "shadow \(shadow)")
        }
    }

    @Test func aKeysFileThatCannotBeReadStopsTheStart() async throws {
        await #expect(throws: Admission.StartError.self) {
            try await GatewayHarness.run(configure: { config, _ in
                config.limits.tenants = [Self.tenant("team-x", keysFile: "/nonexistent/sluice-keys")]
            }) { _ in }
        }
    }

    @Test func limitsConfigNamesWhatIsWrong() {
        func issues(_ limits: String) -> [String] {
            let yaml = """
            listen: "127.0.0.1:8080"
            admin: { listen: "127.0.0.1:9090" }
            pools: [{ name: chat, match: { paths: ["/v1/*"] }, replicas: ["127.0.0.1:9001"] }]
            limits:
            \(limits)
            """
            do {
                _ = try GatewayConfiguration.decode(yaml: yaml)
                return []
            } catch {
                return error.issues.map(\.description)
            }
        }
        #expect(issues("  backend: redis://127.0.0.1:6379").isEmpty)
        #expect(issues("  backend: memcached://127.0.0.1:1").first?.contains("must be local or redis://host:port") == true)
        #expect(issues("  default: { requests_per_minute: 10, tokens_per_minute: 100, token_burst: 500 }\n  default_max_tokens: 256").isEmpty)
        #expect(issues("  default: { token_burst: 5 }").first?.contains("token_burst needs tokens_per_minute") == true)
        #expect(issues("  tenants: [{ name: a, keys_env: K, models: [{ model: m1, tokens_per_minute: 10 }, { model: m1, requests_per_minute: 1 }] }]").first?.contains("duplicate model") == true)
        #expect(issues("  tenants: [{ name: a, keys_env: K, models: [{ model: m1 }] }]").first?.contains("sets no limit") == true)
        #expect(issues("  tenants: [{ name: a, keys_env: K, models: [{ requests_per_minute: 1 }] }]").first?.contains("needs model") == true)
        #expect(issues("  tenants: [{ name: a, requests_per_minute: 10 }]").first?.contains("needs keys_env or keys_file") == true)
        #expect(issues("  tenants: [{ name: a, keys_env: K }, { name: a, keys_env: L }]").first?.contains("duplicate tenant") == true)
        #expect(issues("  on_backend_failure: maybe").first?.contains("allow, deny, local") == true)
        #expect(issues("  default: { burst: 5 }").first?.contains("burst needs requests_per_minute") == true)
        #expect(issues("  tenants: [{ name: a, keys_env: K, requests_per_minute: 600, burst: 20, max_concurrent: 4, priority: 10 }]\n  default: { requests_per_minute: 60 }\n  shadow: true").isEmpty)
    }
}
