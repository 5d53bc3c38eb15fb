import Foundation
import Logging
import NIOPosix
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Slash commands through a running gateway's admin listener: signed ones run (drain drains,
/// canary moves weights), unsigned, altered or old ones get 401, every one is in the audit log,
/// and changes are announced on the incoming webhook.
@Suite struct ChatOpsTests {
    static let secret = "slack-secret-\(UUID())"
    static let token = "mm-token-\(UUID())"

    static func run(_ body: (GatewayHarness, ScriptedServer, String) async throws -> Void) async throws {
        // (Not `setenv`: other tests start processes meanwhile, and Foundation's `Process` reads
        // the environment unlocked.)
        let secretEnv = "SLACK_SIGNING_SECRET"
        let tokenEnv = "MATTERMOST_TOKEN"
        let audit = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-chat-audit-\(UUID()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: audit) }
        let hook = try await ScriptedServer.start { _, _ in .status(200, body: "ok") }
        try await GatewayHarness.run(
            replicas: [ReplicaConfiguration(id: "r1"), ReplicaConfiguration(id: "r2")],
            environment: [secretEnv: secret, tokenEnv: token],
            configure: { config, ids in
                config = try! GatewayConfiguration.decode(yaml: """
                listen: "127.0.0.1:0"
                admin:
                  listen: "127.0.0.1:0"
                  chatops: { signing_secret_env: \(secretEnv), mattermost_token_env: \(tokenEnv), webhook_url: "http://127.0.0.1:\(hook.port)/hook", audit_log: "\(audit)" }
                pools:
                  - { name: v1, match: { paths: ["/v1/*"] }, replicas: ["\(ids[0])"] }
                  - { name: v2, match: { paths: ["/v1/*"] }, replicas: ["\(ids[1])"] }
                models:
                  - { name: sim-7b, versions: [{ pool: v1, weight: 90 }, { pool: v2, weight: 10 }] }
                """)
            }
        ) { h in
            try await body(h, hook, audit)
        }
        try await hook.stop()
    }

    static func form(_ text: String, user: String = "alice") -> String {
        "token=x&team_id=T1&channel_name=ops&user_id=U1&user_name=\(user)&command=%2Fsluice&text=" +
            (text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text)
    }

    /// A command as Slack sends it, signed at `timestamp` (now by default).
    static func slack(_ h: GatewayHarness, _ text: String, timestamp: Int64 = Int64(Date().timeIntervalSince1970), signature: String? = nil) async throws -> TestResponse {
        let body = form(text)
        let signed = signature ?? ChatSignature.slackSignature(secret: Array(secret.utf8), timestamp: "\(timestamp)", body: Array(body.utf8))
        return try await h.adminRequest("/chat/command", method: .POST, headers: [
            ("content-type", "application/x-www-form-urlencoded"), ("x-slack-request-timestamp", "\(timestamp)"), ("x-slack-signature", signed),
        ], body: body)
    }

    static func text(_ response: TestResponse) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: String]
        return object?["text"] ?? response.text
    }

    @Test func signedCommandsRunAndAreAnnouncedAndAudited() async throws {
        try await Self.run { h, hook, audit in
            let replica = h.replicaIDs[0]
            let drained = try await Self.slack(h, "drain \(replica)")
            #expect(drained.status == 200)
            #expect(Self.text(drained).contains("Draining \(replica) in v1"), "\(drained.text)")
            #expect(drained.text.contains(#""response_type" : "in_channel""#))
            #expect(h.gateway.runtime.pools[0].snapshot.replicas[0].isDraining)
            let status = Self.text(try await Self.slack(h, "status"))
            #expect(status.contains("`v1`: 0/1 in rotation") && status.contains("draining \(replica)"), "\(status)")
            #expect(status.contains("model `sim-7b`: v1 90.0%, v2 10.0%"), "\(status)")
            #expect(Self.text(try await Self.slack(h, "undrain \(replica)")).contains("back in rotation"))
            #expect(!h.gateway.runtime.pools[0].snapshot.replicas[0].isDraining)

            let canary = Self.text(try await Self.slack(h, "canary sim-7b 30"))
            #expect(canary == "Canary for sim-7b: v1 70%, v2 30%.", "\(canary)")
            #expect(h.gateway.runtime.versions.weights(of: 0) == [70, 30])
            #expect(Self.text(try await Self.slack(h, "drain 10.9.9.9:1")).contains("not a replica"))
            #expect(Self.text(try await Self.slack(h, "reboot")).contains("unknown command"))

            // Mattermost's token.
            let mattermost = try await h.adminRequest("/chat/command", method: .POST, headers: [
                ("content-type", "application/x-www-form-urlencoded"), ("authorization", "Token \(Self.token)"),
            ], body: Self.form("limits acme", user: "bob"))
            #expect(mattermost.status == 200 && Self.text(mattermost).contains("No tenant named acme"), "\(mattermost.text)")

            // Announced: the drain, the undrain and the weight change (not the reads).
            #expect(await eventually(timeout: .seconds(5)) { hook.requests.count == 3 })
            let notices = hook.requests.map(\.body)
            #expect(notices.contains { $0.contains("alice: Draining") }, "\(notices)")
            #expect(notices.contains { $0.contains("v1=90 v2=10 → v1=70 v2=30 (by slack:alice)") }, "\(notices)")
            // Every command, with who asked.
            let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 7, "\(lines)")
            #expect(lines.allSatisfy { $0.contains(#""user":"alice""#) || $0.contains(#""user":"bob""#) })
            #expect(lines.contains { $0.contains(#""command":"canary sim-7b 30""#) && $0.contains(#""source":"slack""#) })
        }
    }

    @Test func unsignedAlteredAndOldCommandsGet401AndChangeNothing() async throws {
        try await Self.run { h, hook, audit in
            let replica = h.replicaIDs[0]
            let now = Int64(Date().timeIntervalSince1970)
            let old = try await Self.slack(h, "drain \(replica)", timestamp: now - 301)
            #expect(old.status == 401 && old.text.contains("five minutes"), "\(old.text)")
            let forged = try await Self.slack(h, "drain \(replica)", signature: "v0=" + String(repeating: "ab", count: 32))
            #expect(forged.status == 401 && forged.text.contains("does not match"))
            // Signed for another text.
            let body = Self.form("status")
            let signature = ChatSignature.slackSignature(secret: Array(Self.secret.utf8), timestamp: "\(now)", body: Array(body.utf8))
            let altered = try await Self.slack(h, "drain \(replica)", timestamp: now, signature: signature)
            #expect(altered.status == 401)
            let unsigned = try await h.adminRequest("/chat/command", method: .POST, body: Self.form("drain \(replica)"))
            #expect(unsigned.status == 401)
            let wrongToken = try await h.adminRequest("/chat/command", method: .POST, headers: [("authorization", "Token nope")], body: Self.form("drain \(replica)"))
            #expect(wrongToken.status == 401)
            #expect(!h.gateway.runtime.pools[0].snapshot.replicas[0].isDraining)
            let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 5 && lines.allSatisfy { $0.contains(#""refused""#) }, "\(lines)")
            #expect(hook.requests.isEmpty)
        }
    }
}

/// The notices that come from elsewhere than a command: a scale decision and an ejection.
@Suite struct ChatNoticeTests {
    @Test func aScaleDecisionAndAnEjectionAreAnnounced() throws {
        let told = Locked<[String]>([])
        let notify: @Sendable (String) -> Void = { text in told.withLock { $0.append(text) } }
        var logger = Logger(label: "sluice-test")
        logger.logLevel = .critical
        let client = BackgroundHTTPClient(group: MultiThreadedEventLoopGroup.singleton)
        let publisher = ScalePublisher(PublishConfiguration(), client: client, logger: logger, metrics: GatewayMetrics(), notify: notify)
        publisher.publish(ScalePublishingTests.published)
        let pool = PoolRuntime(
            index: 0, configuration: PoolConfiguration(name: "chat", paths: [PathPattern("/*")!], replicas: [ReplicaID(host: "127.0.0.1", port: 9)]),
            client: client, metrics: GatewayMetrics(), notify: notify)
        pool.ejected(pool.snapshot.replicas[0], reason: .consecutiveFailures)
        #expect(told.withLock { $0 } == [
            "Pool chat: 2 → 4 replicas (panic). p95 900 ms > target 200 ms (panic window 6 s); 2 → 4 replicas",
            "Pool chat: replica 127.0.0.1:9 ejected (consecutive failures)",
        ])
    }
}
