import NIOCore
import NIOPosix
import SluiceGateway

/// For `sluice bench-limits --redis`: decisions per second of one `RedisRateLimiter` (one
/// event loop, one pipelined connection) with `inFlight` decisions outstanding at a time.
enum RedisLimiterBenchmark {
    static func run(address: SocketAddress, decisions: Int, inFlight: Int) throws -> (seconds: Double, admitted: Int) {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let limiter = RedisRateLimiter(address: address, eventLoop: loop, timeout: .seconds(2), keyPrefix: "sluice-bench:")
        // Warm: connect and load the script.
        _ = try loop.flatSubmit { limiter.decide(key: "warm", perMinute: 60, burst: 1) }.wait()
        let start = ContinuousClock.now
        let admitted = try loop.flatSubmit { () -> EventLoopFuture<Int> in
            let done = loop.makePromise(of: Int.self)
            var started = 0
            var finished = 0
            var allowed = 0
            func next() {
                guard started < decisions else { return }
                started += 1
                limiter.decide(key: "tenant-\(started % 8)", perMinute: 6_000_000, burst: 1_000).assumeIsolated().whenComplete { result in
                    finished += 1
                    if case .success(let decision) = result, decision.allowed { allowed += 1 }
                    if finished == decisions { done.succeed(allowed) } else { next() }
                }
            }
            for _ in 0..<min(inFlight, decisions) { next() }
            return done.futureResult
        }.wait()
        let elapsed = ContinuousClock.now - start
        limiter.close()
        return (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, admitted)
    }
}
