import NIOCore
import SluiceCore

/// GCRA (see `GCRA`) kept in Redis, so every gateway instance draws from the same limits: one
/// round trip per decision, a Lua script that reads the TAT, decides and writes it back
/// atomically, on Redis's own clock (`TIME`), so instances with skewed clocks still agree. The
/// script is loaded once (`SCRIPT LOAD`) and called by its hash (`EVALSHA`); when Redis lost it
/// (a restart) it is loaded again and the call retried once.
///
/// One per event loop, with its own pipelined connection (reconnected on demand), so a decision
/// never crosses threads. A failure (Redis down, slower than `timeout`, an error) fails the
/// future; what that means for the request is the caller's `on_backend_failure`.
///
/// Sendable only so it can be handed to its loop: its state is touched on that loop alone
/// (`decide` asserts it).
///
/// `package`: `sluice bench-limits --redis` measures it from the executable, so the benchmark
/// need not ship inside the library.
package final class RedisRateLimiter: @unchecked Sendable {
    /// KEYS[1]: the limit's key. ARGV: interval (µs per unit), burst (units), cost (units).
    /// Returns {allowed 0|1, remaining units, retry after µs, reset after µs}.
    static let script = """
        local interval = tonumber(ARGV[1])
        local tolerance = interval * tonumber(ARGV[2])
        local cost = tonumber(ARGV[3])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local tat = tonumber(redis.call('GET', KEYS[1]) or now)
        if tat < now then tat = now end
        local new = tat + cost * interval
        local ahead = new - now
        if ahead > tolerance then
          local remaining = math.floor((tolerance - (tat - now)) / interval)
          if remaining < 0 then remaining = 0 end
          return {0, remaining, ahead - tolerance, tat - now}
        end
        redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor(ahead / 1000) + 1)
        return {1, math.floor((tolerance - ahead) / interval), 0, ahead}
        """

    /// Several limits decided together, all or none: KEYS[1..n] the limits' keys; ARGV[1] is
    /// `decide` (charge every key only if each admits its cost) or `adjust` (apply every cost,
    /// a negative one a refund that never moves a TAT before now: settling token usage); then
    /// interval, burst and cost per key. The interval may be fractional (µs per unit: token
    /// rates run far past one unit a µs); a charge is rounded up to whole µs and a refund down,
    /// so rounding never admits more than the rate. Returns four numbers per key, as `script`
    /// does.
    static let multiScript = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local adjust = ARGV[1] == 'adjust'
        local out = {}
        local news = {}
        local allowed = true
        for i = 1, #KEYS do
          local interval = tonumber(ARGV[3 * i - 1])
          local tolerance = interval * tonumber(ARGV[3 * i])
          local cost = tonumber(ARGV[3 * i + 1])
          local tat = tonumber(redis.call('GET', KEYS[i]) or now)
          if tat < now then tat = now end
          local span = cost * interval
          if span >= 0 then span = math.ceil(span) else span = -math.floor(-span) end
          local new = tat + span
          if new < now then new = now end
          local ahead = new - now
          news[i] = new
          if (not adjust) and ahead > tolerance then
            allowed = false
            local remaining = math.floor((tolerance - (tat - now)) / interval)
            if remaining < 0 then remaining = 0 end
            out[4 * i - 3] = 0; out[4 * i - 2] = remaining; out[4 * i - 1] = ahead - tolerance; out[4 * i] = tat - now
          else
            local remaining = math.floor((tolerance - ahead) / interval)
            if remaining < 0 then remaining = 0 end
            out[4 * i - 3] = 1; out[4 * i - 2] = remaining; out[4 * i - 1] = 0; out[4 * i] = ahead
          end
        end
        if allowed then
          for i = 1, #KEYS do
            redis.call('SET', KEYS[i], string.format('%d', news[i]), 'PX', math.floor((news[i] - now) / 1000) + 1)
          end
        end
        return out
        """

    let address: SocketAddress
    let eventLoop: any EventLoop
    let timeout: TimeAmount
    /// Prefixed to every key, so several deployments can share one Redis.
    let keyPrefix: String
    private var sha: String?
    private var multiSHA: String?

    package init(address: SocketAddress, eventLoop: any EventLoop, timeout: TimeAmount, keyPrefix: String = "sluice:") {
        self.address = address
        self.eventLoop = eventLoop
        self.timeout = timeout
        self.keyPrefix = keyPrefix
    }

    /// Decides `cost` units against `perMinute` with `burst` for `key`.
    package func decide(key: String, perMinute: Int, burst: Int, cost: Int = 1) -> EventLoopFuture<GCRA.Decision> {
        eventLoop.assertInEventLoop()
        // In µs (Redis's clock), rounded up so the limit never admits more than the rate.
        let rate = max(1, perMinute)
        let interval = max(1, (60_000_000 + rate - 1) / rate)
        let arguments = [keyPrefix + key, String(interval), String(max(1, burst)), String(max(0, cost))]
        return connected().assumeIsolated()
            .flatMap { connection in self.evaluate(arguments, on: connection, reloadOnMiss: true) }
            .flatMapThrowing { value in try Self.decision(value) }
            .nonisolated()
    }

    /// Decides (or, with `adjust`, applies) `items` together in one round trip: one decision
    /// per item, in order (`multiScript`).
    func decideAll(_ items: [LimitItem], adjust: Bool = false) -> EventLoopFuture<[GCRA.Decision]> {
        eventLoop.assertInEventLoop()
        var arguments = items.map { keyPrefix + $0.key }
        arguments.append(adjust ? "adjust" : "decide")
        for item in items {
            let interval = 60_000_000 / Double(max(1, item.perMinute))
            arguments += ["\(interval)", String(max(1, item.burst)), String(item.cost)]
        }
        return connected().assumeIsolated()
            .flatMap { connection in self.evaluate(arguments, keys: items.count, multi: true, on: connection, reloadOnMiss: true) }
            .flatMapThrowing { value in try Self.decisions(value, count: items.count) }
            .nonisolated()
    }

    private func evaluate(
        _ arguments: [String], keys: Int = 1, multi: Bool = false, on connection: RedisConnection, reloadOnMiss: Bool
    ) -> EventLoopFuture<RESPValue> {
        guard let sha = multi ? multiSHA : sha else {
            return load(multi: multi, on: connection).assumeIsolated()
                .flatMap { self.evaluate(arguments, keys: keys, multi: multi, on: connection, reloadOnMiss: false) }
                .nonisolated()
        }
        return connection.send(["EVALSHA", sha, String(keys)] + arguments, timeout: timeout).assumeIsolated().flatMapError { error in
            // Redis restarted and lost its script cache: load it again, once.
            if reloadOnMiss, case RedisError.server(let message) = error, message.hasPrefix("NOSCRIPT") {
                if multi { self.multiSHA = nil } else { self.sha = nil }
                return self.evaluate(arguments, keys: keys, multi: multi, on: connection, reloadOnMiss: false)
            }
            return self.eventLoop.makeFailedFuture(error)
        }.nonisolated()
    }

    private func load(multi: Bool, on connection: RedisConnection) -> EventLoopFuture<Void> {
        connection.send(["SCRIPT", "LOAD", multi ? Self.multiScript : Self.script], timeout: timeout).assumeIsolated().flatMapThrowing { value in
            guard let sha = value.string else { throw RedisError.unexpected("SCRIPT LOAD answered \(value)") }
            if multi { self.multiSHA = sha } else { self.sha = sha }
        }.nonisolated()
    }

    /// A multi-limit answer: four numbers per limit.
    static func decisions(_ value: RESPValue, count: Int) throws -> [GCRA.Decision] {
        guard case .array(let items?) = value, items.count == 4 * count else { throw RedisError.unexpected("\(value)") }
        return try (0..<count).map { index in try decision(.array(Array(items[(4 * index)..<(4 * index + 4)]))) }
    }

    private var live: RedisConnection?
    private var connecting: EventLoopFuture<RedisConnection>?

    private func connected() -> EventLoopFuture<RedisConnection> {
        if let live, live.isActive { return eventLoop.makeSucceededFuture(live) }
        if let connecting { return connecting }
        live = nil
        let attempt = RedisConnection.connect(to: address, on: eventLoop, timeout: timeout)
        connecting = attempt
        attempt.assumeIsolated().whenComplete { result in
            self.connecting = nil
            if case .success(let connection) = result { self.live = connection }
        }
        return attempt
    }

    /// The script's answer as a decision (µs from Redis, nanoseconds here).
    static func decision(_ value: RESPValue) throws -> GCRA.Decision {
        guard case .array(let items?) = value, items.count == 4 else { throw RedisError.unexpected("\(value)") }
        let numbers = try items.map { item -> Int64 in
            guard case .integer(let number) = item else { throw RedisError.unexpected("\(value)") }
            return number
        }
        return GCRA.Decision(
            allowed: numbers[0] == 1, remaining: Int(max(0, numbers[1])),
            retryAfter: UInt64(max(0, numbers[2])) * 1_000, resetAfter: UInt64(max(0, numbers[3])) * 1_000)
    }

    package func close() {
        live?.close()
    }
}
