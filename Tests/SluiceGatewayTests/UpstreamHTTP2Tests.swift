import Foundation
import Logging
import NIOCore
import NIOHTTP2
import NIOPosix
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Testing
@testable import SluiceGateway

/// HTTP/2 to replicas: the replica here is a second gateway listening h2c or TLS (in front of a
/// simulated replica), so both bridges and the stream pool run end to end, and the second
/// gateway's metrics say how many connections and streams reached it.
@Suite(.serialized) struct UpstreamHTTP2Tests {
    /// A gateway in front of `replica`, serving h2c (or TLS with `tls`) as the tested gateway's replica.
    static func inner(to replica: ReplicaID, group: any EventLoopGroup, tls: ListenerTLSConfiguration? = nil) async throws -> RunningGateway {
        var configuration = GatewayConfiguration(
            listen: ReplicaID(host: "127.0.0.1", port: 0), admin: AdminConfiguration(listen: ReplicaID(host: "127.0.0.1", port: 0)),
            pools: [PoolConfiguration(name: "inner", paths: ["/*"].compactMap(PathPattern.init), replicas: [replica])])
        configuration.tls = tls
        var logger = Logger(label: "sluice-test-inner")
        logger.logLevel = .critical
        return try await RunningGateway.start(Gateway(configuration: configuration, group: group, adminToken: nil, logger: logger))
    }

    static func metric(_ text: String, _ prefix: String) -> Int {
        text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }.map { Int($0) } ?? -1
    }

    @Test func requestsGoToAnH2CReplicaAsStreamsOnFewConnections() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let replica = ReplicaServer(configuration: ReplicaConfiguration(id: "r1"), group: group)
        let replicaPort = try await replica.start().port!
        let inner = try await Self.inner(to: ReplicaID(host: "127.0.0.1", port: replicaPort), group: group)
        defer { Task { await inner.stop(); await replica.stop(); try? await group.shutdownGracefully() } }
        try await GatewayHarness.run(configure: { config, _ in
            config.pools[0].replicas = [ReplicaID(host: "127.0.0.1", port: inner.bound.data.port!)]
            config.pools[0].upstream.wire = .h2c
            config.pools[0].upstream.maxConcurrentStreams = 8
        }) { h in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { tasks in
                for index in 0..<24 {
                    tasks.addTask {
                        let body = chatBody(stream: index % 3 == 0, maxTokens: 3)
                        return try await h.request("/v1/chat/completions", body: body).status
                    }
                }
                return try await tasks.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 24))
            let streamed = try await h.request("/v1/chat/completions", body: chatBody(stream: true, maxTokens: 4))
            #expect(streamed.text.hasSuffix("data: [DONE]\n\n"))
            let metrics = try await TestHTTPConnection.request(.GET, "/metrics", to: inner.bound.admin, group: h.group).text
            #expect(Self.metric(metrics, #"sluice_downstream_requests_total{protocol="h2c"}"#) == 25)
            // 24 at once, at most 8 streams a connection, on the harness's 2 loops: a few
            // connections, not 24.
            let connections = Self.metric(metrics, "sluice_downstream_connections_total")
            #expect((1...6).contains(connections))
        }
    }

    @Test func requestsGoToATLSReplicaOverH2WithItsCAAndNotWithout() async throws {
        let certificates = try TestCertificates.make()
        defer { certificates.remove() }
        try certificates.makeClient()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let replica = ReplicaServer(configuration: ReplicaConfiguration(id: "r1"), group: group)
        let replicaPort = try await replica.start().port!
        // The replica side asks for the gateway's client certificate (mutual TLS).
        let inner = try await Self.inner(
            to: ReplicaID(host: "127.0.0.1", port: replicaPort), group: group,
            tls: ListenerTLSConfiguration(certFile: certificates.certificateFile, keyFile: certificates.keyFile, clientCAFile: certificates.caFile))
        defer { Task { await inner.stop(); await replica.stop(); try? await group.shutdownGracefully() } }
        let address = ReplicaID(host: "127.0.0.1", port: inner.bound.data.port!)
        for (tls, wanted) in [
            (UpstreamTLSConfiguration(caFile: certificates.caFile, certFile: certificates.clientCertificateFile, keyFile: certificates.clientKeyFile), 200),
            // No client certificate: the replica refuses the handshake.
            (UpstreamTLSConfiguration(caFile: certificates.caFile), 502),
            // The system's CAs do not know the test CA.
            (UpstreamTLSConfiguration(certFile: certificates.clientCertificateFile, keyFile: certificates.clientKeyFile), 502),
        ] {
            try await GatewayHarness.run(configure: { config, _ in
                config.pools[0].replicas = [address]
                config.pools[0].upstream.wire = .h2
                config.pools[0].upstream.tls = tls
            }) { h in
                let response = try await h.request("/v1/chat/completions", body: chatBody())
                #expect(response.status == wanted, "\(tls)")
            }
        }
    }

    @Test func aGRPCCallOverItsLimitGetsResourceExhaustedWithAPushback() async throws {
        let keys = try AdmissionTests.keysFile(["sk-a"])
        defer { try? FileManager.default.removeItem(atPath: keys) }
        try await GatewayHarness.run(configure: { config, _ in
            config.limits.tenants = [AdmissionTests.tenant("team-a", keysFile: keys, perMinute: 6, burst: 1)]
        }) { h in
            let connection = try await TestHTTP2Connection.connect(to: h.data, group: h.group)
            defer { Task { await connection.close() } }
            let headers = [("content-type", "application/grpc"), ("te", "trailers"), ("authorization", "Bearer sk-a")]
            let body = ByteBuffer(bytes: [0, 0, 0, 0, 0])
            // No pool serves it: UNIMPLEMENTED (its admission takes the one request the burst allows).
            let unknown = try await connection.request("POST", "/inference.GRPCInferenceService/ModelInfer", headers: headers, body: body)
            #expect(unknown.header("grpc-status") == "12")
            let refused = try await connection.request("POST", "/v1/models", headers: headers, body: body)
            #expect(refused.status == 200)
            #expect(refused.header("content-type") == "application/grpc")
            #expect(refused.header("grpc-status") == "8")
            #expect(refused.header("grpc-message")?.contains("team-a") == true)
            #expect(Int(refused.header("grpc-retry-pushback-ms") ?? "") ?? 0 >= 1000)
            #expect(refused.body.readableBytes == 0)
        }
    }
}

/// An h2c replica that answers each stream 200 and, after its first answer on a connection,
/// sends GOAWAY but keeps the connection open (as a server draining for a restart does).
final class GoAwayReplica: Sendable {
    let channel: any Channel

    init(group: any EventLoopGroup) async throws {
        channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { connection in
                connection.eventLoop.makeCompletedFuture {
                    _ = try connection.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(Answer(connection: connection)) }
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var port: Int { channel.localAddress!.port! }

    private final class Answer: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload
        let connection: any Channel
        init(connection: any Channel) { self.connection = connection }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let ends: Bool
            switch unwrapInboundIn(data) {
            case .headers(let headers): ends = headers.endStream
            case .data(let data): ends = data.endStream
            default: ends = false
            }
            guard ends else { return }
            context.write(wrapOutboundOut(.headers(.init(headers: [":status": "200", "content-length": "2"]))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: "{}")), endStream: true))), promise: nil)
            connection.writeAndFlush(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil)), promise: nil)
        }
    }
}

extension UpstreamHTTP2Tests {
    @Test func aReplicaThatSendsGoAwayGetsItsNextRequestsOnANewConnection() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let replica = try await GoAwayReplica(group: group)
        defer { Task { try? await replica.channel.close(); try? await group.shutdownGracefully() } }
        try await GatewayHarness.run(threads: 1, configure: { config, _ in
            config.pools[0].replicas = [ReplicaID(host: "127.0.0.1", port: replica.port)]
            config.pools[0].upstream.wire = .h2c
        }) { h in
            for _ in 0..<4 {
                let response = try await h.request("/v1/chat/completions", body: chatBody())
                #expect(response.status == 200)
            }
        }
    }
}

extension UpstreamHTTP2Tests {
    @Test func anIdleHTTP2ConnectionToAReplicaClosesAfterKeepaliveIdle() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let replica = ReplicaServer(configuration: ReplicaConfiguration(id: "r1"), group: group)
        let replicaPort = try await replica.start().port!
        let inner = try await Self.inner(to: ReplicaID(host: "127.0.0.1", port: replicaPort), group: group)
        defer { Task { await inner.stop(); await replica.stop(); try? await group.shutdownGracefully() } }
        try await GatewayHarness.run(configure: { config, _ in
            config.pools[0].replicas = [ReplicaID(host: "127.0.0.1", port: inner.bound.data.port!)]
            config.pools[0].upstream.wire = .h2c
            config.pools[0].upstream.keepaliveIdle = .milliseconds(200)
        }) { h in
            let response = try await h.request("/v1/chat/completions", body: chatBody())
            #expect(response.status == 200)
            let open = try await TestHTTPConnection.request(.GET, "/metrics", to: inner.bound.admin, group: h.group).text
            #expect(Self.metric(open, "sluice_downstream_connections ") == 1)
            let closed = try await eventually(timeout: .seconds(3)) {
                let text = try await TestHTTPConnection.request(.GET, "/metrics", to: inner.bound.admin, group: h.group).text
                return Self.metric(text, "sluice_downstream_connections ") == 0
            }
            #expect(closed)
        }
    }
}
