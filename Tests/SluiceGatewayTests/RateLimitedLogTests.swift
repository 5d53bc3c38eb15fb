import Logging
import SluiceTesting
import Testing
@testable import SluiceGateway

/// A failure that repeats on every request is logged at most once per interval, with how many
/// times it happened meanwhile.
struct RateLimitedLogTests {
    /// Keeps what is logged.
    struct Recorder: LogHandler {
        let lines: Locked<[String]>
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let extra = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            lines.withLock { $0.append("\(event.message) \(extra)") }
        }
    }

    @Test func aRepeatedWarningIsLoggedOncePerIntervalWithTheCountBetween() {
        let lines = Locked<[String]>([])
        let now = Locked<UInt64>(1_000)
        let log = RateLimitedLog(
            logger: Logger(label: "test") { _ in Recorder(lines: lines) }, interval: .seconds(10), clock: { now.value })
        #expect(log.warning("backend down"))
        for _ in 0..<5 { #expect(!log.warning("backend down")) }
        now.withLock { $0 += 10_000_000_000 - 1 }
        #expect(!log.warning("backend down"))
        now.withLock { $0 += 1 }
        #expect(log.warning("backend down"))
        #expect(lines.value == ["backend down ", "backend down since_last_warning=6"])
    }
}
