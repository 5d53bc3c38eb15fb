import Foundation
import Logging
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
import UnixSignals
@testable import SluiceGateway

/// SIGHUP reloads through `ReloadService`, wired as `sluice serve` wires it: a
/// `UnixSignalsSequence` trapping SIGHUP in this process, and the service in the gateway's group.
extension MembershipTests {
    @Test func aHangupReloadsTheFileAsTheAdminCallDoesAndARefusalChangesNothing() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-hangup-\(UUID()).yaml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        func write(_ text: String) throws { try text.write(toFile: path, atomically: true, encoding: .utf8) }
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        var logger = Logger(label: "sluice-test")
        logger.logLevel = .critical
        try await GatewayHarness.run(
            replicas: [ReplicaConfiguration(id: "r1"), ReplicaConfiguration(id: "r2")], configurationPath: path,
            configure: { config, ids in
                try! write(Self.yaml(replicas: [ids[0]]))
                config = try! GatewayConfiguration.decode(yaml: Self.yaml(replicas: [ids[0]]))
            },
            services: { gateway in [ReloadService(gateway: gateway, triggers: hangups, logger: logger)] }
        ) { h in
            let members = { h.gateway.runtime.pools[0].snapshot.replicas.map(\.id) }
            #expect(Set(try await Self.answering(h, count: 3)) == ["r1"])

            try write(Self.yaml(replicas: h.replicaIDs))
            kill(getpid(), SIGHUP)
            #expect(await eventually { members() == h.replicaIDs })
            #expect(Set(try await Self.answering(h)) == ["r1", "r2"])

            // Refused (a change beyond membership): nothing changes, and the next hangup is
            // still heard.
            try write(Self.yaml(replicas: [h.replicaIDs[1]], policy: "least-queue"))
            kill(getpid(), SIGHUP)
            try write(Self.yaml(replicas: [h.replicaIDs[1]]))
            kill(getpid(), SIGHUP)
            #expect(await eventually { members() == [h.replicaIDs[1]] })
            #expect(Set(try await Self.answering(h)) == ["r2"])
        }
    }
}
