import Logging
import NIOCore
import NIOPosix
import SluiceConfig
import SluiceCore
import SluiceReplica
import ServiceLifecycle
import SluiceTesting
@testable import SluiceGateway

/// A gateway on 127.0.0.1:0 in front of simulated replicas on 127.0.0.1:0, torn down after the
/// test body. Every port is the one actually bound, so nothing guesses or sleeps.
struct GatewayHarness {
    let group: any EventLoopGroup
    let running: RunningGateway
    var gateway: Gateway { running.gateway }
    let replicas: [ReplicaServer]
    let replicaIDs: [ReplicaID]
    let data: SocketAddress
    let admin: SocketAddress

    static func run(
        replicas replicaConfigurations: [ReplicaConfiguration] = [ReplicaConfiguration(id: "r1")],
        adminToken: String? = nil,
        threads: Int = 2,
        configurationPath: String? = nil,
        environment: [String: String] = [:],
        grace: Duration = .seconds(1),
        configure: (inout GatewayConfiguration, [ReplicaID]) -> Void = { _, _ in },
        services: (Gateway) -> [any Service] = { _ in [] },
        _ body: (GatewayHarness) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var replicas: [ReplicaServer] = []
        var ids: [ReplicaID] = []
        for configuration in replicaConfigurations {
            let replica = ReplicaServer(configuration: configuration, group: group)
            let address = try await replica.start()
            replicas.append(replica)
            ids.append(ReplicaID(host: "127.0.0.1", port: address.port!))
        }
        var pool = PoolConfiguration(
            name: "chat", paths: ["/v1/*"].compactMap(PathPattern.init), replicas: ids)
        pool.timeouts.connect = .seconds(2)
        var configuration = GatewayConfiguration(
            listen: ReplicaID(host: "127.0.0.1", port: 0),
            admin: AdminConfiguration(listen: ReplicaID(host: "127.0.0.1", port: 0)),
            pools: [pool])
        configure(&configuration, ids)
        var logger = Logger(label: "sluice-test")
        logger.logLevel = .critical
        let gateway = Gateway(
            configuration: configuration, group: group, adminToken: adminToken, logger: logger,
            configurationPath: configurationPath, environment: environment)
        let running: RunningGateway
        do {
            running = try await RunningGateway.start(gateway, grace: grace, extra: services(gateway))
        } catch {
            for replica in replicas { await replica.stop() }
            try? await group.shutdownGracefully()
            throw error
        }
        let harness = GatewayHarness(
            group: group, running: running, replicas: replicas, replicaIDs: ids, data: running.bound.data, admin: running.bound.admin)
        do {
            try await body(harness)
        } catch {
            await harness.tearDown()
            throw error
        }
        await harness.tearDown()
    }

    /// Shuts the gateway's services down gracefully, as SIGTERM would (the harness does it
    /// after the test body in any case).
    func stop() async {
        await running.stop()
    }

    private func tearDown() async {
        await running.stop()
        for replica in replicas { await replica.stop() }
        try? await group.shutdownGracefully()
    }

    func request(
        _ uri: String, headers: [(String, String)] = [("content-type", "application/json")], body: String? = nil
    ) async throws -> TestResponse {
        try await request(.POST, uri, headers: headers, body: body)
    }

    func request(
        _ method: HTTPMethod, _ uri: String, headers: [(String, String)] = [("content-type", "application/json")],
        body: String? = nil
    ) async throws -> TestResponse {
        try await TestHTTPConnection.request(method, uri, to: data, group: group, headers: headers, body: body)
    }

    func adminRequest(
        _ uri: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: String? = nil
    ) async throws -> TestResponse {
        try await TestHTTPConnection.request(method, uri, to: admin, group: group, headers: headers, body: body)
    }

    /// Opens a connection, asks for a streamed chat completion of `maxTokens` tokens and hands
    /// the response parts, as they arrive, to `body`; the connection closes when it returns.
    func withChatStream(
        maxTokens: Int,
        _ body: (inout NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator) async throws -> Void
    ) async throws {
        let connection = try await TestHTTPConnection.connect(to: data, group: group)
        try await connection.channel.executeThenClose { inbound, outbound in
            try await outbound.writeRequest(.POST, "/v1/chat/completions", headers: [("content-type", "application/json")],
                                            body: ByteBuffer(string: chatBody(stream: true, maxTokens: maxTokens)))
            var iterator = inbound.makeAsyncIterator()
            try await body(&iterator)
        }
    }

    /// A replica that streams one token every `interTokenDelay`.
    static func slowReplica(interTokenDelay: Duration) -> ReplicaConfiguration {
        var slow = ReplicaConfiguration(id: "slow")
        slow.timeToFirstToken = .milliseconds(5)
        slow.interTokenDelay = interTokenDelay
        return slow
    }

    /// The gateway's in-flight count for a replica of the first pool.
    func inFlight(_ index: Int = 0) -> Int {
        gateway.runtime.pools[0].snapshot.replicas[index].inFlight
    }

    /// A port where nothing listens: bound, then closed.
    static func closedPort(group: any EventLoopGroup) async throws -> Int {
        let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }
}

import NIOHTTP1

func chatBody(stream: Bool = false, maxTokens: Int = 4, model: String = "sim-7b", prompt: String = "hello sluice") -> String {
    #"{"model":"\#(model)","stream":\#(stream),"max_tokens":\#(maxTokens),"messages":[{"role":"user","content":"\#(prompt)"}]}"#
}
