import NIOCore
import SluiceCore

/// `scaling.shared: redis://...`: every gateway instance of a pool publishes each completed
/// sub-window of its signal (sparse histogram buckets) and its load (in flight, queued) to
/// Redis, one hash per sub-window number (`sluice:scale:<pool>:<n>`, a field per instance,
/// expiring after the stable window), and reads everyone's back: p95 comes from the merge of all
/// instances, and an instance that stops publishing ages out with its sub-windows. Sub-windows
/// are numbered by the wall clock (NTP-synced clocks agree well within a tick), and a tick reads
/// the windows that end one sub-window back, which every instance has published by then.
///
/// The decision for each tick is made once: the first instance to decide tick `n` stores it
/// (`SET ... NX`), and every instance publishes that one, so all of them show the same desired
/// count even when their advisors' histories differ (one started later).
///
/// Bound to one event loop (the ticker's); one connection, reconnected on demand.
final class SharedScaleView: @unchecked Sendable {
    struct Merged {
        var stable = LogHistogram()
        var panic = LogHistogram()
        var inFlight = 0
        var queued = 0
        /// Instances that published the latest complete sub-window.
        var instances = 0
    }

    /// Resolved on each connect, so a Redis that comes up (or moves) later is found.
    let host: String
    let port: Int
    let loop: any EventLoop
    let pool: String
    let instance: String
    let timeout: TimeAmount
    private var connection: RedisConnection?

    init(host: String, port: Int, loop: any EventLoop, pool: String, instance: String, timeout: TimeAmount = .milliseconds(500)) {
        self.host = host
        self.port = port
        self.loop = loop
        self.pool = pool
        self.instance = instance
        self.timeout = timeout
    }

    private func key(_ number: UInt64) -> String { "sluice:scale:\(pool):\(number)" }

    /// Publishes this instance's sub-window `number` and reads the merge of everyone's over the
    /// `stableSpan` and `panicSpan` sub-windows that end at `number - 1`.
    func exchange(
        number: UInt64, histogram: LogHistogram, inFlight: Int, queued: Int, stableSpan: Int, panicSpan: Int, ttlSeconds: Int
    ) -> EventLoopFuture<Merged> {
        let entry = Self.encode(histogram, inFlight: inFlight, queued: queued)
        return connected().flatMap { connection -> EventLoopFuture<Merged> in
            let written = connection.send(["HSET", self.key(number), self.instance, entry], timeout: self.timeout)
            let expiry = connection.send(["EXPIRE", self.key(number), String(ttlSeconds)], timeout: self.timeout)
            let reads = (1...max(1, stableSpan)).map { back -> EventLoopFuture<RESPValue> in
                guard number >= UInt64(back) else { return self.loop.makeSucceededFuture(.array([])) }
                return connection.send(["HGETALL", self.key(number - UInt64(back))], timeout: self.timeout)
            }
            return written.and(expiry).flatMap { _ in EventLoopFuture.whenAllSucceed(reads, on: self.loop) }.flatMapThrowing { answers in
                var merged = Merged()
                for (index, answer) in answers.enumerated() {
                    guard case .array(let items?) = answer else { continue }
                    var field = 0
                    while field + 1 < items.count {
                        defer { field += 2 }
                        guard let value = items[field + 1].string, let decoded = Self.decode(value) else { continue }
                        merged.stable.merge(decoded.histogram)
                        if index < panicSpan { merged.panic.merge(decoded.histogram) }
                        if index == 0 {
                            merged.inFlight += decoded.inFlight
                            merged.queued += decoded.queued
                            merged.instances += 1
                        }
                    }
                }
                return merged
            }
        }.flatMapErrorThrowing { error in
            self.connection?.close()
            self.connection = nil
            throw error
        }
    }

    /// Stores `decision` (JSON) as tick `number`'s unless another instance stored one first;
    /// answers the stored decision, and whether it is this instance's (which then alone
    /// notifies the webhook).
    func settle(decision: String, number: UInt64, ttlSeconds: Int) -> EventLoopFuture<(decision: String, ours: Bool)> {
        let key = "sluice:scale:\(pool):decision:\(number)"
        return connected().flatMap { connection in
            connection.send(["SET", key, decision, "NX", "EX", String(ttlSeconds)], timeout: self.timeout).flatMap { answer in
                if case .simple("OK") = answer { return self.loop.makeSucceededFuture((decision, true)) }
                return connection.send(["GET", key], timeout: self.timeout).flatMapThrowing { stored in
                    guard let text = stored.string else { throw RedisError.unexpected("no decision stored for \(key)") }
                    return (text, false)
                }
            }
        }.flatMapErrorThrowing { error in
            self.connection?.close()
            self.connection = nil
            throw error
        }
    }

    private func connected() -> EventLoopFuture<RedisConnection> {
        loop.assertInEventLoop()
        if let connection, connection.isActive { return loop.makeSucceededFuture(connection) }
        let address: SocketAddress
        do {
            address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        } catch {
            return loop.makeFailedFuture(error)
        }
        return RedisConnection.connect(to: address, on: loop, timeout: timeout).map { connection in
            self.connection = connection
            return connection
        }
    }

    func close() {
        connection?.close()
        connection = nil
    }

    /// `inFlight queued;bucket:count,bucket:count,...` (non-empty buckets only).
    static func encode(_ histogram: LogHistogram, inFlight: Int, queued: Int) -> String {
        var text = "\(inFlight) \(queued);"
        var first = true
        for (index, count) in histogram.counts.enumerated() where count > 0 {
            if !first { text += "," }
            first = false
            text += "\(index):\(count)"
        }
        return text
    }

    static func decode(_ text: String) -> (histogram: LogHistogram, inFlight: Int, queued: Int)? {
        let parts = text.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let load = parts[0].split(separator: " ")
        guard load.count == 2, let inFlight = Int(load[0]), let queued = Int(load[1]) else { return nil }
        var histogram = LogHistogram()
        for pair in parts[1].split(separator: ",") {
            let fields = pair.split(separator: ":")
            guard fields.count == 2, let index = Int(fields[0]), let count = UInt64(fields[1]),
                  index >= 0, index < LogHistogram.bucketCount, count < 1 << 40
            else { return nil }
            histogram.add(bucket: index, times: count)
        }
        return (histogram, inFlight, queued)
    }
}
