import NIOCore
import NIOEmbedded
import Testing
@testable import SluiceGateway

/// The admin listener's deadlines on a manual clock: a request must arrive whole within 10 s of
/// its first byte, and a kept-alive connection may wait 60 s for the next one.
struct AdminDeadlinesTests {
    func connection() throws -> (EmbeddedChannel, EmbeddedEventLoop) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: AdminDeadlines(), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, loop)
    }

    @Test func aHeadDrippedForLongerThanTheRequestTimeoutIsClosed() throws {
        let (channel, loop) = try connection()
        try channel.writeInbound(ByteBuffer(string: "GET /admin/pools HTTP/1.1\r\n"))
        for _ in 0..<9 {
            loop.advanceTime(by: .seconds(1))
            try channel.writeInbound(ByteBuffer(string: "x"))  // a byte a second does not help
        }
        loop.advanceTime(by: .seconds(1) - .nanoseconds(1))
        #expect(channel.isActive)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(!channel.isActive)
    }

    @Test func aConnectionWaitsTheIdleTimeoutForItsNextRequestThenCloses() throws {
        let (channel, loop) = try connection()
        try channel.writeInbound(ByteBuffer(string: "GET /healthz HTTP/1.1\r\n\r\n"))
        loop.advanceTime(by: .seconds(5))
        channel.pipeline.triggerUserOutboundEvent(AdminDeadlines.RequestArrived(), promise: nil)
        // Answered: the request timeout no longer runs, the idle one does.
        loop.advanceTime(by: .seconds(60) - .nanoseconds(1))
        #expect(channel.isActive)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(!channel.isActive)
    }

    @Test func aNewConnectionThatSendsNothingIsClosedAtTheIdleTimeout() throws {
        let (channel, loop) = try connection()
        loop.advanceTime(by: .seconds(60) - .nanoseconds(1))
        #expect(channel.isActive)
        loop.advanceTime(by: .nanoseconds(1))
        #expect(!channel.isActive)
    }
}
