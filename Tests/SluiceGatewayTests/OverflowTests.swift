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

/// A hosted provider as overflow, against a local TLS stub that speaks the OpenAI API (a
/// simulated replica behind a second gateway with a TLS listener): with the self-hosted pool
/// saturated or out of replicas, an allowed tenant's requests go to the provider with the
/// provider's key (never the client's) and are counted with their tokens and cost; another
/// tenant's requests wait in the queue as before.
@Suite struct OverflowTests {
    static func yaml(selfHosted: ReplicaID, provider: ReplicaID, ca: String, gold: String, basic: String) -> String {
        """
        listen: "127.0.0.1:0"
        admin: { listen: "127.0.0.1:0" }
        pools:
          - name: self
            match: { paths: ["/v1/*"] }
            replicas: ["\(selfHosted)"]
            max_concurrent_per_replica: 1
            queue: { max: 8, timeout: 20s }
            overflow: { pool: hosted, when_waiting: 0, tenants: [gold] }
          - name: hosted
            match: { paths: ["/v1/*"], models: [provider-only] }
            replicas: ["\(provider)"]
            upstream: { tls: { ca_file: "\(ca)", server_name: localhost } }
            provider: { api_key_env: PROVIDER_KEY, host: api.example.test, price_per_million_tokens: 2.5, model: gpt-4o-mini }
        limits:
          tenants:
            - { name: gold, keys_file: "\(gold)" }
            - { name: basic, keys_file: "\(basic)" }
        """
    }

    static func run(_ body: (GatewayHarness) async throws -> Void) async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        let gold = try AdmissionTests.keysFile(["sk-gold"])
        let basic = try AdmissionTests.keysFile(["sk-basic"])
        defer { for path in [gold, basic] { try? FileManager.default.removeItem(atPath: path) } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let replica = ReplicaServer(configuration: ReplicaConfiguration(id: "provider"), group: group)
        let replicaPort = try await replica.start().port!
        let stub = try await UpstreamHTTP2Tests.inner(
            to: ReplicaID(host: "127.0.0.1", port: replicaPort), group: group,
            tls: ListenerTLSConfiguration(certFile: certificates.certificateFile, keyFile: certificates.keyFile))
        defer { Task { await stub.stop(); await replica.stop(); try? await group.shutdownGracefully() } }
        let provider = ReplicaID(host: "127.0.0.1", port: stub.bound.data.port!)
        try await GatewayHarness.run(
            replicas: [GatewayHarness.slowReplica(interTokenDelay: .milliseconds(150))],
            environment: ["PROVIDER_KEY": "sk-provider-123"],
            configure: { config, ids in
                config = try! GatewayConfiguration.decode(yaml: Self.yaml(selfHosted: ids[0], provider: provider, ca: certificates.caFile, gold: gold, basic: basic))
            }, body)
    }

    static func ask(_ h: GatewayHarness, key: String, path: String = "/v1/chat/completions", tokens: Int = 2) async throws -> TestResponse {
        try await h.request(path, headers: [("content-type", "application/json"), ("authorization", "Bearer \(key)")], body: chatBody(maxTokens: tokens))
    }

    @Test func whenSaturatedAnAllowedTenantOverflowsWithTheProvidersKeyAndOthersWait() async throws {
        try await Self.run { h in
            // Nothing waits and a slot is free: the allowed tenant stays home.
            #expect(try await Self.ask(h, key: "sk-gold").header("x-replica-id") == "slow")
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The one slot is taken for about 3 s.
                group.addTask { _ = try await Self.ask(h, key: "sk-basic", tokens: 20) }
                try await QueueTests.waitUntil("the slot is taken") { h.inFlight() == 1 }
                let echoed = try await Self.ask(h, key: "sk-gold", path: "/v1/echo")
                #expect(echoed.status == 200)
                #expect(echoed.header("x-sluice-overflow") == "hosted")
                #expect(echoed.header("x-seen-authorization") == "Bearer sk-provider-123")
                #expect(echoed.header("x-seen-host") == "api.example.test")
                // The provider's name for the model, not the self-hosted one.
                #expect(echoed.text.contains(#""model":"gpt-4o-mini""#) && !echoed.text.contains("sim-7b"), "\(echoed.text)")
                let answered = try await Self.ask(h, key: "sk-gold", tokens: 5)
                #expect(answered.status == 200 && answered.header("x-replica-id") == "provider", "\(answered.status) \(answered.text)")
                #expect(answered.header("x-sluice-prompt-cost-estimate-usd") != nil)
                // Not allowed: it waits for the home slot, as before.
                let waited = try await Self.ask(h, key: "sk-basic")
                #expect(waited.status == 200 && waited.header("x-replica-id") == "slow")
                #expect(waited.header("x-sluice-overflow") == nil)
                try await group.waitForAll()
            }
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_overflow_requests_total{pool="hosted",tenant="gold"} 2"#), "\(metrics)")
            let tokens = metrics.split(separator: "\n").first { $0.hasPrefix(#"sluice_overflow_tokens_total{pool="hosted",tenant="gold"}"#) }
            let used = tokens.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) } ?? 0
            #expect(used > 0, "\(tokens ?? "none")")
            #expect(metrics.contains(#"sluice_overflow_cost_dollars_total{pool="hosted",tenant="gold"} \#(Double(used) * 2.5 / 1_000_000)"#))
        }
    }

    @Test func withNoReplicaInRotationAnAllowedTenantOverflows() async throws {
        try await Self.run { h in
            let replica = h.replicaIDs[0]
            #expect(try await h.adminRequest("/admin/pools/self/replicas/\(replica)/drain", method: .POST).status == 200)
            let response = try await Self.ask(h, key: "sk-gold")
            #expect(response.status == 200 && response.header("x-replica-id") == "provider")
        }
    }

    @Test func aProviderWithoutItsKeyStopsTheStartAndBadOverflowsAreNamed() throws {
        let yaml = Self.yaml(selfHosted: ReplicaID(host: "127.0.0.1", port: 1), provider: ReplicaID(host: "127.0.0.1", port: 2), ca: "/ca.pem", gold: "/g", basic: "/b")
        let config = try GatewayConfiguration.decode(yaml: yaml)
        #expect(Gateway.startProblems(config, environment: [:]).contains { $0.contains("PROVIDER_KEY") })
        func issues(_ text: String) -> [String] {
            do {
                _ = try GatewayConfiguration.decode(yaml: text)
                return []
            } catch {
                return error.issues.map { "\($0.path): \($0.message)" }
            }
        }
        let wrong = issues(yaml.replacingOccurrences(of: "tenants: [gold]", with: "tenants: [gold, platinum]")
            .replacingOccurrences(of: "    upstream: { tls: { ca_file: \"/ca.pem\", server_name: localhost } }\n", with: ""))
        #expect(wrong.contains { $0.hasPrefix("pools[0].overflow") && $0.contains("platinum") }, "\(wrong)")
        #expect(wrong.contains { $0.hasPrefix("pools[1].provider") && $0.contains("over TLS") }, "\(wrong)")
        let notProvider = issues(yaml.replacingOccurrences(of: "pool: hosted", with: "pool: self"))
        #expect(notProvider.contains { $0.contains("has no provider") } && notProvider.contains { $0.contains("into itself") }, "\(notProvider)")
    }
}
