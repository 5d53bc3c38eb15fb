import Logging
import NIOCore
import NIOEmbedded
import SluiceConfig
import SluiceCore
import Testing
import SluiceHTTP1
@testable import SluiceGateway

/// The data path's handler on an `EmbeddedChannel`, its clock the embedded loop's: the timeouts
/// that end a connection or an exchange fire at their exact instant, with the answer each one
/// promises, and nothing reaches a replica that should not.
@Suite struct ProxyServerHandlerTests {
    /// A connection to a gateway whose only pool is behind an unreachable replica (port 9 on
    /// loopback: nothing is ever connected in these tests).
    struct Connection {
        let channel: EmbeddedChannel
        let loop: EmbeddedEventLoop
        let runtime: GatewayRuntime

        init(_ configure: (inout GatewayConfiguration) -> Void = { _ in }) throws {
            var pool = PoolConfiguration(name: "chat", paths: ["/v1/*"].compactMap(PathPattern.init), replicas: [ReplicaID(host: "127.0.0.1", port: 9)])
            pool.timeouts.connect = .seconds(2)
            var configuration = GatewayConfiguration(
                listen: ReplicaID(host: "127.0.0.1", port: 0), admin: AdminConfiguration(listen: ReplicaID(host: "127.0.0.1", port: 0)),
                pools: [pool])
            configuration.limits.keepaliveTimeout = .seconds(5)
            configuration.limits.clientTimeout = .seconds(3)
            configure(&configuration)
            var logger = Logger(label: "sluice-test")
            logger.logLevel = .critical
            loop = EmbeddedEventLoop()
            runtime = GatewayRuntime(configuration: configuration, group: loop, metrics: GatewayMetrics(), logger: logger, clock: { [loop] in loop.now })
            let upstreams = EventLoopUpstreams(eventLoop: loop, statsRegistry: runtime.upstreamStats)
            channel = EmbeddedChannel(handler: ProxyServerHandler(runtime: runtime, upstreams: upstreams), loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        func send(_ text: String) throws {
            try channel.writeInbound(ByteBuffer(string: text))
        }

        /// Everything the handler has written to the client so far.
        func written() throws -> String {
            var text = ""
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }

        func advance(_ amount: TimeAmount) {
            loop.advanceTime(by: amount)
        }
    }

    /// The handler and its context hold each other; a closed connection (or HTTP/2 stream: one
    /// per request) must let both go. (Seen failing: about 640 bytes kept per stream.)
    @Test func aClosedConnectionsHandlerIsFreed() throws {
        weak var released: ProxyServerHandler?
        do {
            let connection = try Connection()
            released = try connection.channel.pipeline.syncOperations.handler(type: ProxyServerHandler.self)
            try connection.send("GET /nowhere HTTP/1.1\r\nhost: a\r\n\r\n")
            #expect(try connection.written().hasPrefix("HTTP/1.1 404"))
            try connection.channel.close().wait()
            connection.loop.run()
        }
        #expect(released == nil)
    }

    @Test func anIdleConnectionClosesAtTheKeepaliveTimeoutAndNotBefore() throws {
        let connection = try Connection()
        connection.advance(.seconds(5) - .nanoseconds(1))
        #expect(connection.channel.isActive)
        connection.advance(.nanoseconds(1))
        #expect(!connection.channel.isActive)
        #expect(try connection.written().isEmpty)
    }

    @Test func aClientThatStopsMidBodyGets408AtTheClientTimeout() throws {
        let connection = try Connection { config in config.pools[0].models = ["m"] }
        // Routed by model: the body is held, and the client goes quiet after 4 of its 20 bytes.
        try connection.send("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 20\r\n\r\n{\"mo")
        connection.advance(.seconds(2))
        try connection.send("de")  // a byte moves the deadline
        connection.advance(.seconds(3) - .nanoseconds(1))
        #expect(try connection.written().isEmpty)
        connection.advance(.nanoseconds(1))
        let answer = try connection.written()
        #expect(answer.hasPrefix("HTTP/1.1 408 "))
        #expect(answer.contains("connection: close"))
        #expect(answer.contains("\"code\":\"request_timeout\""))
    }

    @Test func aBodyDrippedSlowerThanMinBodyRateGets408ThoughNeverSilentForLong() throws {
        let connection = try Connection { config in
            config.pools[0].models = ["m"]
            config.limits.clientTimeout = .seconds(60)
            config.limits.bodyTimeout = .seconds(10)
            config.limits.minBodyRate = 100
        }
        try connection.send("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n")
        // A byte every 2 s: each buys 10 ms on top of the 10 s the body is given.
        for _ in 0..<4 {
            connection.advance(.seconds(2))
            try connection.send("x")
        }
        connection.advance(.seconds(2) + .milliseconds(40) - .nanoseconds(1))
        #expect(try connection.written().isEmpty)
        connection.advance(.nanoseconds(1))
        let answer = try connection.written()
        #expect(answer.hasPrefix("HTTP/1.1 408 "))
        #expect(answer.contains("connection: close"))
        #expect(answer.contains("limits.min_body_rate"))
    }

    @Test func aRequestWaitingForABusyReplicaGets503AtTheQueueTimeoutAndLeavesTheQueue() throws {
        let connection = try Connection { config in
            config.pools[0].maxConcurrentPerReplica = 1
            config.pools[0].queue.max = 4
            config.pools[0].queue.timeout = .seconds(2)
        }
        let pool = connection.runtime.pools[0]
        let replica = pool.snapshot.replicas[0]
        #expect(pool.start(replica))  // the one slot is taken
        try connection.send("GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
        #expect(pool.gate?.waiting == 1)
        connection.advance(.seconds(2) - .nanoseconds(1))
        #expect(try connection.written().isEmpty)
        connection.advance(.nanoseconds(1))
        let answer = try connection.written()
        #expect(answer.hasPrefix("HTTP/1.1 503 "))
        #expect(answer.contains("retry-after: 1"))
        #expect(pool.gate?.waiting == 0)
        // The connection stays, idle, for the next request.
        #expect(connection.channel.isActive)
        pool.release(replica)
    }

    @Test func aPipelinedRequestWaitsForTheAnswerBeforeItAndBothAreAnswered() throws {
        let connection = try Connection { config in config.pools[0].paths = ["/v1/chat/*"].compactMap(PathPattern.init) }
        // Neither has a route: each is answered 404 by the gateway, in order, on one connection.
        try connection.send("GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n")
        let answers = try connection.written()
        #expect(answers.components(separatedBy: "HTTP/1.1 404 ").count == 3)
        #expect(answers.range(of: "/a")!.lowerBound < answers.range(of: "/b")!.lowerBound)
        #expect(connection.channel.isActive)
    }

    @Test func aHeadThatNeverEndsIsCutAtTheKeepaliveTimeout() throws {
        let connection = try Connection()
        try connection.send("GET /v1/models HTTP/1.1\r\nhost: x\r\n")
        connection.advance(.seconds(5))
        #expect(!connection.channel.isActive)
    }
}
