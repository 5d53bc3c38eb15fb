import Foundation
import NIOCore
import NIOPosix
import SluiceCore
import Testing
@testable import SluiceGateway

/// A `redis-server` of our own on 127.0.0.1 (no persistence), stopped at the end. CI installs
/// the Debian package; without it these tests fail and say so.
final class RedisServerProcess {
    let port: Int
    private var process: Process?

    init(port: Int? = nil) throws {
        if let port {
            self.port = port
        } else {
            let socket = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
            self.port = socket.localAddress!.port!
            try socket.close().wait()
        }
    }

    static var binary: String? {
        ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    func start() async throws {
        guard let binary = Self.binary else {
            Issue.record("redis-server is missing: apt-get install -y redis-server (.ci/run does)")
            throw RedisError.closed
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        // Up when it answers PING (at most 5 s).
        for _ in 0..<100 {
            if (try? await Self.ping(port: port)) == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw RedisError.timeout
    }

    /// Kills it (SIGKILL: a crash, as far as clients can tell) and waits until its port refuses
    /// connections, so a restart can take the port.
    func stop() async {
        guard let process else { return }
        self.process = nil
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<200 {
            if (try? await Self.ping(port: port)) != true { return }
            try? await Task.sleep(for: .milliseconds(25))
        }
    }

    static func ping(port: Int) async throws -> Bool {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        return try await loop.flatSubmit {
            RedisConnection.connect(to: address, on: loop, timeout: .milliseconds(200)).flatMap { connection in
                connection.send(["PING"], timeout: .milliseconds(200)).always { _ in connection.close() }
            }
        }.get() == .simple("PONG")
    }

    deinit { if let process { kill(process.processIdentifier, SIGKILL) } }
}

@Suite struct RESPTests {
    @Test func readsEveryAnswerSplitAtEveryByte() throws {
        let wire = "*4\r\n:1\r\n:-3\r\n$5\r\nhello\r\n*2\r\n+OK\r\n$-1\r\n-NOSCRIPT No matching script\r\n"
        let expected: [RESPValue] = [
            .array([.integer(1), .integer(-3), .bulk(ByteBuffer(string: "hello")), .array([.simple("OK"), .bulk(nil)])]),
            .error("NOSCRIPT No matching script"),
        ]
        let bytes = Array(wire.utf8)
        for split in 0...bytes.count {
            var buffer = ByteBuffer(bytes: bytes[..<split])
            var values: [RESPValue] = []
            while let value = try RESP.read(&buffer) { values.append(value) }
            buffer.writeBytes(bytes[split...])
            while let value = try RESP.read(&buffer) { values.append(value) }
            #expect(values == expected, "split at \(split)")
            #expect(buffer.readableBytes == 0)
        }
        var out = ByteBuffer()
        RESP.write(["EVALSHA", "ab", "1"], into: &out)
        #expect(String(buffer: out) == "*3\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n")
    }

    @Test func malformedAnswersAreErrorsNotHangs() {
        for wire in ["?x\r\n", ":12a\r\n", "$-7\r\n", "*99999999\r\n", "$3\r\nabcXY", String(repeating: "*1\r\n", count: 20) + ":1\r\n"] {
            var buffer = ByteBuffer(string: wire)
            #expect(throws: RESPError.self, "\(wire)") { _ = try RESP.read(&buffer) }
        }
        var long = ByteBuffer(string: "+" + String(repeating: "x", count: 70_000))
        #expect(throws: RESPError.self) { _ = try RESP.read(&long) }
    }
}

@Suite(.serialized) struct RedisRateLimiterTests {
    static func decide(_ limiter: RedisRateLimiter, key: String, perMinute: Int, burst: Int, cost: Int = 1) async throws -> GCRA.Decision {
        try await limiter.eventLoop.flatSubmit { limiter.decide(key: key, perMinute: perMinute, burst: burst, cost: cost) }.get()
    }

    @Test func twoInstancesShareOneLimitExactly() async throws {
        let redis = try RedisServerProcess()
        try await redis.start()
        let group = MultiThreadedEventLoopGroup.singleton
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: redis.port)
        let loops = Array(group.makeIterator()) + Array(group.makeIterator())
        let a = RedisRateLimiter(address: address, eventLoop: loops[0], timeout: .milliseconds(500))
        let b = RedisRateLimiter(address: address, eventLoop: loops[1], timeout: .milliseconds(500))
        let key = "test-\(UUID())"
        // 6 a minute with a burst of 5: two instances together get 5 at once, then refusals
        // saying when the next one passes. (One token every 10 s: the twelve round trips cannot
        // outlast a refill, however loaded the machine; at 60 a minute, seen doing so in a full run.)
        var admitted = 0
        for index in 0..<12 {
            let decision = try await Self.decide(index % 2 == 0 ? a : b, key: key, perMinute: 6, burst: 5)
            if decision.allowed { admitted += 1 } else {
                #expect(decision.remaining == 0)
                // (Within the 10 s a token takes to come back, and more than the 1 s it would
                // take at 60 a minute: the loop is far shorter than 5 s.)
                #expect(decision.retryAfter > 5_000_000_000 && decision.retryAfter <= 10_000_000_000, "\(decision.retryAfter)")
            }
        }
        #expect(admitted == 5)
        // Hammered concurrently from both loops: still the burst plus what time refilled.
        let start = ContinuousClock.now
        let other = "test-\(UUID())"
        let results = try await withThrowingTaskGroup(of: Bool.self) { tasks in
            for index in 0..<400 {
                tasks.addTask { try await Self.decide(index % 2 == 0 ? a : b, key: other, perMinute: 6_000, burst: 20).allowed }
            }
            return try await tasks.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        let elapsed = ContinuousClock.now - start
        let refill = Int((Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) * 100) + 1
        #expect(results >= 20 && results <= 20 + refill, "admitted \(results), refill allowance \(refill)")
        await redis.stop()
    }

    @Test func severalLimitsAreChargedAllOrNoneAndSettledAtTokenRates() async throws {
        let redis = try RedisServerProcess()
        try await redis.start()
        let limiter = RedisRateLimiter(
            address: try SocketAddress(ipAddress: "127.0.0.1", port: redis.port), eventLoop: MultiThreadedEventLoopGroup.singleton.next(),
            timeout: .milliseconds(500))
        func decide(_ items: [LimitItem], adjust: Bool = false) async throws -> [GCRA.Decision] {
            try await limiter.eventLoop.flatSubmit { limiter.decideAll(items, adjust: adjust) }.get()
        }
        let tokens = "tokens-\(UUID())"
        let model = "model-\(UUID())"
        // 120M tokens a minute is two a µs: the interval is fractional, and refills at that rate.
        let tokenLimit = LimitItem(key: tokens, perMinute: 120_000_000, burst: 100_000, cost: 100_000)
        let modelLimit = LimitItem(key: model, perMinute: 60, burst: 1, cost: 1)
        #expect(try await decide([tokenLimit, modelLimit]).map(\.allowed) == [true, true])
        // The model's one request is spent: refused, and the tokens are not charged either.
        let refused = try await decide([LimitItem(key: tokens, perMinute: 120_000_000, burst: 100_000, cost: 1), modelLimit])
        #expect(refused.map(\.allowed) == [true, false])
        // 100,000 tokens take 50 ms to come back at two a µs (100 ms if rounded to whole µs).
        try await Task.sleep(for: .milliseconds(60))
        let after = try await decide([LimitItem(key: tokens, perMinute: 120_000_000, burst: 100_000, cost: 1_000)])
        #expect(after[0].allowed && after[0].remaining >= 98_000, "\(after)")
        // A settlement refunds (never past a full limit) or charges, whatever the burst.
        let refund = try await decide([LimitItem(key: tokens, perMinute: 120_000_000, burst: 100_000, cost: -5_000)], adjust: true)
        #expect(refund[0].remaining == 100_000)
        let charge = try await decide([LimitItem(key: tokens, perMinute: 120_000_000, burst: 100_000, cost: 150_000)], adjust: true)
        #expect(charge[0].allowed && charge[0].remaining == 0)
        await redis.stop()
    }

    @Test func survivesALostScriptAndARestartAndTimesOut() async throws {
        let redis = try RedisServerProcess()
        try await redis.start()
        let group = MultiThreadedEventLoopGroup.singleton
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: redis.port)
        let limiter = RedisRateLimiter(address: address, eventLoop: group.next(), timeout: .milliseconds(300))
        #expect(try await Self.decide(limiter, key: "k", perMinute: 6, burst: 10).allowed)
        // The script cache flushed (as after a restart): loaded again, transparently.
        let loop = group.next()
        _ = try await loop.flatSubmit {
            RedisConnection.connect(to: address, on: loop, timeout: .milliseconds(300)).flatMap { connection in
                connection.send(["SCRIPT", "FLUSH"], timeout: .milliseconds(300)).always { _ in connection.close() }
            }
        }.get()
        #expect(try await Self.decide(limiter, key: "k", perMinute: 6, burst: 10).remaining == 8)
        // Redis gone: decisions fail (the caller applies on_backend_failure), quickly.
        await redis.stop()
        let start = ContinuousClock.now
        await #expect(throws: (any Error).self) { _ = try await Self.decide(limiter, key: "k", perMinute: 6, burst: 10) }
        #expect(ContinuousClock.now - start < .seconds(2))
        // Back on the same port: the next decision reconnects (the restart lost the counters).
        let again = try RedisServerProcess(port: redis.port)
        try await again.start()
        #expect(try await Self.decide(limiter, key: "k", perMinute: 6, burst: 10).remaining == 9)
        // A server that accepts but never answers: the decision fails at the timeout.
        let silent = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let stuck = RedisRateLimiter(address: silent.localAddress!, eventLoop: group.next(), timeout: .milliseconds(100))
        let waited = ContinuousClock.now
        await #expect(throws: RedisError.timeout) { _ = try await Self.decide(stuck, key: "k", perMinute: 60, burst: 1) }
        #expect(ContinuousClock.now - waited < .seconds(1))
        try await silent.close()
        await again.stop()
    }
}
