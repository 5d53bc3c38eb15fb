import NIOCore
import NIOPosix
import SluiceTesting
import Testing
@testable import SluiceGateway

/// `limits.max_connections`: at the cap the listener stops accepting (the kernel's backlog holds
/// the next connection) and accepts again as soon as one closes.
@Suite struct ConnectionLimitTests {
    /// A client connection whose answers are collected as text.
    final class Client: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = Locked("")

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            received.withLock { $0 += text }
        }

        static func open(_ h: GatewayHarness) async throws -> (Client, any Channel) {
            let client = Client()
            let channel = try await ClientBootstrap(group: h.group).channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(client) }
            }.connect(to: h.data).get()
            return (client, channel)
        }

        func answers() -> Int { received.value.components(separatedBy: "HTTP/1.1 200 ").count - 1 }
    }

    static let request = "GET /v1/models HTTP/1.1\r\nhost: sluice.test\r\n\r\n"

    @Test func atMaxConnectionsTheListenerWaitsUntilOneCloses() async throws {
        try await GatewayHarness.run(configure: { configuration, _ in configuration.limits.maxConnections = 2 }) { h in
            var open: [(Client, any Channel)] = []
            for _ in 0..<2 {
                let connection = try await Client.open(h)
                try await connection.1.writeAndFlush(ByteBuffer(string: Self.request))
                #expect(await eventually { connection.0.answers() == 1 })
                open.append(connection)
            }
            // The third connects (the kernel's backlog takes it) but is not accepted: no answer.
            let third = try await Client.open(h)
            try await third.1.writeAndFlush(ByteBuffer(string: Self.request))
            try await Task.sleep(for: .milliseconds(300))
            #expect(third.0.answers() == 0)
            // Both held connections still work.
            try await open[1].1.writeAndFlush(ByteBuffer(string: Self.request))
            #expect(await eventually { open[1].0.answers() == 2 })
            // One closes: the third is accepted and answered.
            try await open[0].1.close()
            #expect(await eventually { third.0.answers() == 1 })
            try await open[1].1.close()
            try await third.1.close()
        }
    }
}
