import Logging
import NIOCore
import Synchronization

/// A warning logged at most once per `interval`, saying how many times it happened meanwhile: a
/// failure that repeats on every request (a limits backend down) shows in the log without
/// flooding it.
final class RateLimitedLog: Sendable {
    private let logger: Logger
    private let interval: UInt64
    private let clock: @Sendable () -> UInt64
    private let state = Mutex<(last: UInt64?, unsaid: Int)>((nil, 0))

    init(logger: Logger, interval: Duration = .seconds(10), clock: @escaping @Sendable () -> UInt64 = { NIODeadline.now().uptimeNanoseconds }) {
        self.logger = logger
        self.interval = UInt64(interval.components.seconds) * 1_000_000_000 + UInt64(interval.components.attoseconds / 1_000_000_000)
        self.clock = clock
    }

    /// Logs `message` now, or counts it toward the next one; returns whether it was logged.
    @discardableResult
    func warning(_ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata = [:]) -> Bool {
        let now = clock()
        let unsaid: Int? = state.withLock { state in
            if let last = state.last, now &- last < interval {
                state.unsaid += 1
                return nil
            }
            defer { state = (now, 0) }
            return state.unsaid
        }
        guard let unsaid else { return false }
        var metadata = metadata
        if unsaid > 0 { metadata["since_last_warning"] = "\(unsaid)" }
        logger.warning(message(), metadata: metadata)
        return true
    }
}
