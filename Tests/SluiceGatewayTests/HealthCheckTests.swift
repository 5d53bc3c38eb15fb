import NIOCore
import SluiceConfig
import SluiceCore
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Active health checks through a running gateway: a replica whose checks fail leaves rotation
/// within `unhealthy_after` intervals, one that answers them again (or never answered) joins
/// within one, a hung one is out by its checks' timeout, and a passing check ends a passive
/// ejection at once.
@Suite(.serialized) struct HealthCheckTests {
    /// A replica whose `/health` answers `status` (0: never answers) and whose other requests
    /// answer 200, or close without an answer when `closes`.
    final class Scripted: Sendable {
        let status = Locked(200)
        let closes = Locked(false)
        let server: ScriptedServer

        init() async throws {
            let status = self.status
            let closes = self.closes
            server = try await ScriptedServer.start { request, _ in
                if request.uri == "/health" {
                    let code = status.value
                    return code == 0 ? .silence : .status(code, body: "{}")
                }
                return closes.value ? .close : .status(200, body: #"{"object":"chat.completion"}"#)
            }
        }

        var id: ReplicaID { ReplicaID(host: "127.0.0.1", port: server.port) }
    }

    /// The checks' interval. Their timeout is 200 ms: a check on a loaded two-core machine
    /// (every suite running at once) was seen past 50 ms.
    static let interval = Duration.milliseconds(250)

    static func run(_ scripted: Scripted, ejectAfter: Int = 3, _ body: (GatewayHarness, Replica) async throws -> Void) async throws {
        try await GatewayHarness.run(replicas: [], configure: { config, _ in
            config.pools[0].replicas = [scripted.id]
            config.pools[0].healthCheck = HealthCheckPolicy(
                path: "/health", interval: UInt64(Self.interval.nanoseconds), timeout: 200_000_000, healthyAfter: 1,
                unhealthyAfter: 2, jitter: 0)
            config.pools[0].ejection = EjectionPolicy(consecutiveFailures: ejectAfter, duration: 60_000_000_000)
        }) { h in
            try await body(h, h.gateway.runtime.pools[0].snapshot.replicas[0])
        }
        try await scripted.server.stop()
    }

    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }

    @Test func aReplicaWhoseChecksFailLeavesWithinTwoIntervalsAndReturnsWithinOne() async throws {
        let scripted = try await Scripted()
        try await Self.run(scripted) { h, replica in
            #expect(await eventually(timeout: .seconds(3)) { replica.isAvailable(at: Self.now()) })
            #expect(try await h.request("/v1/chat/completions", body: chatBody()).status == 200)

            scripted.status.withLock { $0 = 503 }
            let failing = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(3)) { !replica.isAvailable(at: Self.now()) })
            // Two failed checks: two intervals, and slack for a busy machine (a full run on two
            // cores was seen 14 ms past 400 ms of slack); the wait above gives up at 3 s.
            #expect(ContinuousClock.now - failing < Self.interval * 2 + .milliseconds(900))
            #expect(replica.checkHealth == .unhealthy)
            #expect(try await h.request("/v1/chat/completions", body: chatBody()).status == 503)

            scripted.status.withLock { $0 = 200 }
            let passing = ContinuousClock.now
            #expect(await eventually(timeout: .seconds(3)) { replica.isAvailable(at: Self.now()) })
            #expect(ContinuousClock.now - passing < Self.interval + .milliseconds(900))
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_health_checks_total{pool="chat",result="fail"}"#))
        }
    }

    @Test func aHungReplicaIsOutByItsChecksTimeout() async throws {
        let scripted = try await Scripted()
        try await Self.run(scripted) { _, replica in
            #expect(await eventually(timeout: .seconds(3)) { replica.isAvailable(at: Self.now()) })
            scripted.status.withLock { $0 = 0 }  // accepts, never answers
            #expect(await eventually(timeout: .seconds(3)) { replica.checkHealth == .unhealthy })
        }
    }

    @Test func aReplicaIsOutOfRotationUntilItsFirstCheckPasses() async throws {
        let scripted = try await Scripted()
        scripted.status.withLock { $0 = 503 }
        try await Self.run(scripted) { h, replica in
            try await Task.sleep(for: Self.interval * 3)
            #expect(replica.checkHealth != .healthy)
            #expect(try await h.adminRequest("/readyz").status == 503)
            scripted.status.withLock { $0 = 200 }
            #expect(await eventually(timeout: .seconds(3)) { replica.isAvailable(at: Self.now()) })
            #expect(try await h.adminRequest("/readyz").status == 200)
        }
    }

    @Test func aPassingCheckEndsAPassiveEjectionAtOnce() async throws {
        let scripted = try await Scripted()
        try await Self.run(scripted, ejectAfter: 1) { h, replica in
            #expect(await eventually(timeout: .seconds(3)) { replica.isAvailable(at: Self.now()) })
            scripted.closes.withLock { $0 = true }
            #expect(try await h.request("/v1/chat/completions", body: chatBody()).status == 502)
            // Not `isEjected` here: a check may already have passed and ended the ejection.
            #expect(replica.lastEjectionReason == .consecutiveFailures)
            // Ejected for 60 s, but its checks pass: back within an interval.
            #expect(await eventually(timeout: .seconds(3)) { !replica.isEjected(at: Self.now()) })
            let pools = try await h.adminRequest("/admin/pools").text
            #expect(pools.contains(#""last_ejection" : "consecutive_failures""#))
            #expect(pools.contains(#""health" : "healthy""#))
        }
    }
}
