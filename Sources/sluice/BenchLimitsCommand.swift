import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SluiceConfig
import SluiceCore
import SluiceGateway
import Synchronization

/// `sluice bench-limits`: what one local rate-limit decision costs (GCRA), alone and as the
/// gateway takes it (key lookup by SipHash, then the tenant's limit under a lock, from two
/// threads at once). Run on a release build; figures are printed, not asserted.
struct BenchLimitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-limits", abstract: "Measure local rate-limit decisions per second (use a release build).",
        shouldDisplay: false)

    @Option(name: .long, help: "Decisions per measurement.")
    var decisions = 5_000_000

    @Option(name: .long, help: "Also measure the Redis limiter against this redis-server (host:port).")
    var redis: String?

    func run() throws {
        var limit = GCRA(perMinute: 6_000_000, burst: 1_000)
        var admitted = 0
        var now: UInt64 = 1_000_000_000
        let start = ContinuousClock.now
        for _ in 0..<decisions {
            now &+= 7_000  // 7 µs apart: faster than the rate, so both branches run
            if limit.admit(now: now).allowed { admitted += 1 }
        }
        let alone = seconds(ContinuousClock.now - start)
        print("GCRA alone: \(Int(Double(decisions) / alone)) decisions/s (\(String(format: "%.1f", alone * 1e9 / Double(decisions))) ns each; \(admitted) admitted)")

        // As the gateway decides: the API key hashed (SipHash-2-4, a 24-byte key), the tenant's
        // limit taken under a lock; two threads on one tenant, the worst case for contention.
        let hasher = SipHash(k0: 1, k1: 2)
        let keys = (0..<2).map { Array("sk-tenant-key-\($0)-abcdefghij".utf8) }
        let shared = Mutex(GCRA(perMinute: 60_000_000, burst: 10_000))
        let perThread = decisions / 2
        let threadsStart = ContinuousClock.now
        let results = Mutex(0)
        let done = DispatchGroup()
        for index in 0..<2 {
            done.enter()
            Thread.detachNewThread {
                var sink: UInt64 = 0
                var allowed = 0
                for step in 0..<perThread {
                    sink &+= hasher.hash(keys[index])
                    let at = UInt64(step) &* 2_000 &+ 1_000_000_000
                    if shared.withLock({ $0.admit(now: at).allowed }) { allowed += 1 }
                }
                results.withLock { $0 += allowed + Int(sink & 1) }
                done.leave()
            }
        }
        done.wait()
        let both = seconds(ContinuousClock.now - threadsStart)
        print("key hash + locked GCRA, 2 threads on one tenant: \(Int(Double(perThread * 2) / both)) decisions/s (\(results.withLock { $0 }) admitted)")

        if let redis {
            guard let id = ConfigValues.hostPort(redis) else { throw ValidationError("--redis \(redis) is not host:port") }
            let address = try SocketAddress.makeAddressResolvingHost(id.host, port: id.port)
            let count = min(decisions, 200_000)
            for inFlight in [1, 16, 64] {
                let (seconds, admitted) = try RedisLimiterBenchmark.run(address: address, decisions: count, inFlight: inFlight)
                print("Redis limiter, one connection, \(inFlight) in flight: \(Int(Double(count) / seconds)) decisions/s (\(admitted) admitted)")
            }
        }
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
