import NIOCore
import SluiceTesting
import Testing
@testable import SluiceGateway

@Suite(.serialized) struct AdminTests {
    @Test func adminNeedsTheBearerToken() async throws {
        try await GatewayHarness.run(adminToken: "s3cret") { h in
            #expect(try await h.adminRequest("/healthz").status == 200)
            #expect(try await h.adminRequest("/readyz").status == 200)
            let denied = try await h.adminRequest("/admin/pools")
            #expect(denied.status == 401)
            #expect(denied.header("www-authenticate")?.hasPrefix("Bearer") == true)
            #expect(try await h.adminRequest("/admin/pools", headers: [("authorization", "Bearer wrong!")]).status == 401)
            #expect(try await h.adminRequest("/admin/pools", headers: [("authorization", "Bearer s3cret0")]).status == 401)
            let pools = try await h.adminRequest("/admin/pools", headers: [("authorization", "Bearer s3cret")])
            #expect(pools.status == 200)
            #expect(pools.text.contains(#""name" : "chat""#))
            #expect(pools.text.contains(#""policy" : "round-robin""#))
            #expect(pools.text.contains(#""in_flight" : 0"#))
            #expect(try await h.adminRequest("/admin/nothing", headers: [("authorization", "Bearer s3cret")]).status == 404)
        }
    }

    @Test func aRequestWithoutTheTokenIsRefusedFromItsHeadWithoutReadingItsBody() async throws {
        try await GatewayHarness.run(adminToken: "s3cret") { h in
            // 100 MB announced, none sent: the answer cannot wait for the body.
            let text = try await RawConnection.exchange(
                "POST /admin/reload HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\n", with: h.admin, group: h.group,
                until: "}", timeout: .seconds(5))
            #expect(text.hasPrefix("HTTP/1.1 401 "))
            #expect(text.contains("connection: close"))
        }
    }

    @Test func withoutATokenAdminServesLoopback() async throws {
        try await GatewayHarness.run { h in
            let response = try await h.adminRequest("/admin/pools")
            #expect(response.status == 200)
        }
        #expect(AdminRoutes.isLoopback(try SocketAddress(ipAddress: "127.0.0.1", port: 1)))
        #expect(!AdminRoutes.isLoopback(try SocketAddress(ipAddress: "10.1.2.3", port: 1)))
        #expect(AdminRoutes.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!AdminRoutes.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!AdminRoutes.constantTimeEqual(Array("abc".utf8), Array("abcd".utf8)))
    }

    @Test func metricsReportRequestsLatencyInFlightAndConnections() async throws {
        try await GatewayHarness.run { h in
            for _ in 0..<3 {
                #expect(try await h.request("/v1/chat/completions", body: chatBody()).status == 200)
            }
            _ = try await h.request(.GET, "/missing")
            let metrics = try await h.adminRequest("/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.header("content-type")?.hasPrefix("text/plain") == true)
            let text = metrics.text
            let replica = h.replicaIDs[0].description
            #expect(text.contains(#"sluice_requests_total{pool="chat",status="200"} 3"#))
            #expect(text.contains(#"sluice_requests_total{pool="",status="404"} 1"#))
            #expect(text.contains(#"sluice_request_duration_seconds_count{pool="chat"} 3"#))
            #expect(text.contains(#"sluice_response_first_byte_seconds_bucket{pool="chat",le="+Inf"} 3"#))
            #expect(text.contains(#"sluice_replica_in_flight{pool="chat",replica="\#(replica)"} 0"#))
            #expect(text.contains(#"sluice_upstream_connections{pool="chat",replica="\#(replica)",state="open"} "#))
            #expect(text.contains("# TYPE sluice_requests_total counter"))
        }
    }
}
