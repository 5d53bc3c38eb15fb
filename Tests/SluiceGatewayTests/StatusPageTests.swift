import Foundation
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// The status page (`GET /` on the admin listener) and the document it polls (`/admin/status`).
/// The page in a real browser is `Tests/python/status_page_check.py`.
@Suite(.serialized) struct StatusPageTests {
    @Test func statusShowsTheEjectedReplicaRoutingQueueScaleDecisionsAndATenantNearItsLimit() async throws {
        var failing = ReplicaConfiguration(id: "failing")
        failing.faults.closeConnections = true
        let keys = try AdmissionTests.keysFile(["sk-a"])
        defer { try? FileManager.default.removeItem(atPath: keys) }
        try await GatewayHarness.run(replicas: [ReplicaConfiguration(id: "steady"), failing], configure: { config, _ in
            config.pools[0].ejection = EjectionPolicy(consecutiveFailures: 3, duration: 60_000_000_000)
            config.pools[0].maxConcurrentPerReplica = 4
            var scaling = ScalingConfiguration(targetP95: .milliseconds(200))
            scaling.tick = .milliseconds(100)
            config.pools[0].scaling = scaling
            // Six a minute, three at once: after three requests, nothing is left.
            config.limits.tenants = [AdmissionTests.tenant("team-a", keysFile: keys, perMinute: 6, burst: 3)]
        }) { h in
            let failingReplica = try #require(h.gateway.runtime.pools[0].snapshot.replicas.first { $0.id == h.replicaIDs[1] })
            var sent = 0
            while sent < 12, !failingReplica.isEjected(at: NIODeadline.now().uptimeNanoseconds) {
                _ = try await h.request("/v1/chat/completions", body: chatBody())
                sent += 1
            }
            for _ in 0..<3 {
                #expect(try await AdmissionTests.chat(h, key: "sk-a").status == 200)
            }
            try await QueueTests.waitUntil("three scale decisions") {
                (h.gateway.runtime.pools[0].scaling?.history.count ?? 0) >= 3
            }

            let response = try await h.adminRequest("/admin/status")
            #expect(response.status == 200)
            let status = try #require(try JSONSerialization.jsonObject(with: Data(response.text.utf8)) as? [String: Any])
            let pool = try #require((status["pools"] as? [[String: Any]])?.first)
            let replicas = try #require(pool["replicas"] as? [[String: Any]])
            let ejected = try #require(replicas.first { $0["id"] as? String == h.replicaIDs[1].description })
            #expect(ejected["state"] as? String == "ejected")
            #expect(ejected["reason"] as? String == "consecutive_failures")
            #expect((ejected["ejected_for_ms"] as? Int ?? 0) > 50_000)
            let steady = try #require(replicas.first { $0["id"] as? String == h.replicaIDs[0].description })
            #expect(steady["state"] as? String == "in rotation")
            // Every request finished on one of the two; the steady one took the rest after the ejection.
            let requests = (steady["requests"] as? Int ?? 0) + (ejected["requests"] as? Int ?? 0)
            #expect(requests == sent + 3, "\(replicas)")
            #expect((steady["share"] as? Double ?? 0) > 0.5)
            let routing = try #require(pool["routing"] as? [[String: Any]])
            #expect(routing.first { $0["reason"] as? String == "round_robin" }?["count"] as? Int == sent + 3, "\(routing)")
            let queue = try #require(pool["queue"] as? [String: Any])
            // Four slots a replica, one request at a time: none waited.
            #expect(queue["waiting"] as? Int == 0 && queue["dispatched"] as? Int == 0 && queue["full"] as? Int == 0, "\(queue)")
            let scale = try #require(pool["scale"] as? [String: Any])
            #expect(scale["target_ms"] as? Double == 200)
            #expect((scale["reason"] as? String)?.isEmpty == false)
            #expect((scale["history"] as? [[String: Any]])?.count ?? 0 >= 3)
            let tenants = try #require(status["tenants"] as? [[String: Any]])
            let teamA = try #require(tenants.first { $0["name"] as? String == "team-a" })
            #expect(teamA["near"] as? Bool == true, "\(teamA)")
            #expect(tenants.first { $0["name"] as? String == "default" }?["near"] as? Bool == false)

            let page = try await h.adminRequest("/")
            #expect(page.status == 200)
            #expect(page.header("content-type") == "text/html; charset=utf-8")
            let html = page.text
            #expect(html.contains(#"data-replica="\#(h.replicaIDs[1])" data-state="ejected""#))
            #expect(html.contains("ejected: consecutive_failures"))
            #expect(html.contains(#"data-tenant="team-a""#))
            #expect(!html.contains(#"data-tenant="default""#))
            #expect(html.contains(#"<polyline class="p95""#))
            #expect(html.contains(#"<span class="decision">"#))
            #expect(html.contains("round_robin \(sent + 3)"))
            // Nothing comes from elsewhere: no external script, style, font or image.
            #expect(!html.contains("src=\"http") && !html.contains("href=\"http") && !html.contains("url(http"))
        }
    }

    @Test func thePageNeedsTheAdminTokenAsABearerOrAsBasicCredentials() async throws {
        try await GatewayHarness.run(adminToken: "s3cret") { h in
            let denied = try await h.adminRequest("/")
            #expect(denied.status == 401)
            // A browser asks its user: Basic, the token as the password.
            #expect(denied.header("www-authenticate")?.hasPrefix("Basic realm=") == true)
            let basic = "Basic " + Data("ops:s3cret".utf8).base64EncodedString()
            #expect(try await h.adminRequest("/", headers: [("authorization", basic)]).status == 200)
            #expect(try await h.adminRequest("/admin/status", headers: [("authorization", basic)]).status == 200)
            #expect(try await h.adminRequest("/", headers: [("authorization", "Bearer s3cret")]).status == 200)
            let wrong = "Basic " + Data("ops:s3cret0".utf8).base64EncodedString()
            #expect(try await h.adminRequest("/", headers: [("authorization", wrong)]).status == 401)
            #expect(try await h.adminRequest("/", headers: [("authorization", "Basic not-base64!")]).status == 401)
            #expect(try await h.adminRequest("/admin/status").status == 401)
            // Probes stay open.
            #expect(try await h.adminRequest("/healthz").status == 200)
        }
    }

    @Test func textFromTheConfigurationIsEscaped() {
        #expect(StatusPage.escape(#"<b a="1">&'"#) == "&lt;b a=&quot;1&quot;&gt;&amp;&#39;")
        let chart = StatusPage.chart(title: "t", top: 10, lines: [("p95", [0, nil, 10])])
        // Points left to right over 300, 0 at the bottom (80) and `top` at the top; gaps skipped.
        #expect(chart.contains(#"<polyline class="p95" points="0.0,80.0 300.0,0.0"/>"#))
    }
}
