import Foundation
import NIOCore
import NIOPosix
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Discovered members through a running gateway: a replica that appears in the source gets
/// traffic within an interval, one that leaves takes no new request and finishes its stream, and
/// a source that fails keeps the last members.
@Suite(.serialized) struct DiscoveryTests {
    @Test func aFileSourceAddsReplicasAndARemovedOneFinishesItsStream() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-members-\(UInt64.random(in: 1...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "".write(toFile: path, atomically: true, encoding: .utf8)
        let slow = GatewayHarness.slowReplica(interTokenDelay: .milliseconds(100))
        try await GatewayHarness.run(replicas: [slow, ReplicaConfiguration(id: "r2")], configure: { config, _ in
            config.pools[0].replicas = []
            var discovery = DiscoveryConfiguration(source: .file(path: path))
            discovery.interval = .milliseconds(100)
            config.pools[0].discovery = discovery
        }) { h in
            let pool = h.gateway.runtime.pools[0]
            #expect(try await h.request("/v1/chat/completions", body: chatBody()).status == 503)
            try "# the slow one\n\(h.replicaIDs[0])\n".write(toFile: path, atomically: true, encoding: .utf8)
            #expect(await eventually(timeout: .seconds(3)) { pool.snapshot.replicas.map(\.id) == [h.replicaIDs[0]] })

            // A stream on the slow replica, then the file names only the other: the stream
            // ends whole, and new requests go to the one listed.
            try await h.withChatStream(maxTokens: 8) { iterator in
                guard case .head(let head) = try await iterator.next() else {
                    Issue.record("no head")
                    return
                }
                #expect(head.headers.first(name: "x-replica-id") == "slow")
                try "\(h.replicaIDs[1])\n".write(toFile: path, atomically: true, encoding: .utf8)
                #expect(await eventually(timeout: .seconds(3)) { pool.snapshot.replicas.map(\.id) == [h.replicaIDs[1]] })
                var text = ""
                while let part = try await iterator.next() {
                    if case .body(let chunk) = part { text += String(buffer: chunk) }
                    if case .end = part { break }
                }
                #expect(text.contains("data: [DONE]"), "\(text)")
            }
            let after = try await h.request("/v1/chat/completions", body: chatBody())
            #expect(after.status == 200 && after.header("x-replica-id") == "r2")

            // A line that is not host:port: the members stay.
            try "\(h.replicaIDs[1])\nnot an address\n".write(toFile: path, atomically: true, encoding: .utf8)
            try await Task.sleep(for: .milliseconds(300))
            #expect(pool.snapshot.replicas.map(\.id) == [h.replicaIDs[1]])
        }
    }

    @Test func aFilesLinesAreReadAsHostPortsWithCommentsAndBlankLines() throws {
        let ids = try FileReplicaSource.parse("# members\n10.0.0.2:8000\n\n10.0.0.1:8000  # first\n[fd00::1]:9000\n10.0.0.1:8000\n", path: "f")
        #expect(ids == [ReplicaID(host: "10.0.0.1", port: 8000), ReplicaID(host: "10.0.0.2", port: 8000), ReplicaID(host: "fd00::1", port: 9000)])
        #expect(throws: FileReplicaSource.Invalid.self) { try FileReplicaSource.parse("10.0.0.1\n", path: "f") }
    }

    /// Scale from zero: a pool with `scaling.min_replicas: 0` and no replica keeps a request
    /// waiting in its queue while the scale decision asks for one, and sends it as soon as one
    /// is listed and ready.
    @Test func theFirstRequestToAPoolScaledToZeroWaitsForAReplicaAndIsAnswered() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-zero-\(UInt64.random(in: 1...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "".write(toFile: path, atomically: true, encoding: .utf8)
        try await GatewayHarness.run(configure: { config, _ in
            config.pools[0].replicas = []
            var discovery = DiscoveryConfiguration(source: .file(path: path))
            discovery.interval = .milliseconds(100)
            config.pools[0].discovery = discovery
            var scaling = ScalingConfiguration(targetP95: .milliseconds(500))
            scaling.minReplicas = 0
            scaling.tick = .milliseconds(100)
            config.pools[0].scaling = scaling
            config.pools[0].queue.timeout = .seconds(10)
        }) { h in
            async let answer = h.request("/v1/chat/completions", body: chatBody())
            let pool = h.gateway.runtime.pools[0]
            #expect(await eventually(timeout: .seconds(3)) { pool.gate?.waiting == 1 })
            #expect(await eventually(timeout: .seconds(3)) { pool.scaling?.latest?.decision.desired ?? 0 >= 1 })
            try "\(h.replicaIDs[0])\n".write(toFile: path, atomically: true, encoding: .utf8)
            let response = try await answer
            #expect(response.status == 200, "\(response.status) \(response.text)")
            #expect(pool.gate?.total(.dispatched) == 1)
        }
    }

    /// A headless Service's SRV records from a dnsmasq of our own: a replica added to them gets
    /// traffic within an interval; one taken out of them gets none after the next.
    @Test(.enabled(if: DnsmasqProcess.isInstalled, "needs /usr/sbin/dnsmasq")) func replicasComeAndGoWithTheirDNSRecords() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        var servers: [ReplicaServer] = []
        var ports: [Int] = []
        for name in ["r1", "r2"] {
            let server = ReplicaServer(configuration: ReplicaConfiguration(id: name), group: group)
            ports.append(try await server.start().port!)
            servers.append(server)
        }
        func records(_ ports: [Int]) -> [String] {
            ["--host-record=pod.replicas.test,127.0.0.1"] + ports.map { "--srv-host=_http._tcp.replicas.test,pod.replicas.test,\($0)" }
        }
        var dns = try await DnsmasqProcess.start(records: records([ports[0]]), probe: "pod.replicas.test")
        let dnsPort = dns.server.port!
        try await GatewayHarness.run(replicas: [], configure: { config, _ in
            config.pools[0].replicas = []
            var discovery = DiscoveryConfiguration(source: .srv(name: "_http._tcp.replicas.test"))
            discovery.interval = .milliseconds(100)
            discovery.resolver = ReplicaID(host: "127.0.0.1", port: dnsPort)
            config.pools[0].discovery = discovery
        }) { h in
            let pool = h.gateway.runtime.pools[0]
            let first = ReplicaID(host: "127.0.0.1", port: ports[0])
            let second = ReplicaID(host: "127.0.0.1", port: ports[1])
            #expect(await eventually(timeout: .seconds(3)) { pool.snapshot.replicas.map(\.id) == [first] })
            await dns.stop()
            dns = try await DnsmasqProcess.start(port: dnsPort, records: records([ports[1]]), probe: "pod.replicas.test")
            #expect(await eventually(timeout: .seconds(3)) { pool.snapshot.replicas.map(\.id) == [second] })
            let answer = try await h.request("/v1/chat/completions", body: chatBody())
            #expect(answer.status == 200 && answer.header("x-replica-id") == "r2")
        }
        await dns.stop()
        for server in servers { await server.stop() }
    }
}
