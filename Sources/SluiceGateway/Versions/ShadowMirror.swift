import NIOCore
import SluiceConfig
import SluiceCore
import Synchronization

/// Copies a share of a versioned model's requests to a candidate pool and records what the
/// candidate answered beside the versions (`VersionStats`), never touching the client's exchange:
/// the copy is sent after the request was inspected, through the background client, on its own
/// connection, and its answer is read and dropped. At most `maxInFlight` copies are out at once;
/// past that, and when the candidate has no available replica, a copy is skipped and counted.
final class ShadowMirror: Sendable {
    let configuration: ModelConfiguration.Shadow
    let pool: PoolRuntime
    let stats: VersionStats
    private let inFlight = Atomic<Int>(0)
    private let skippedCount = Atomic<Int>(0)

    init(_ configuration: ModelConfiguration.Shadow, model: String, pool: PoolRuntime, metrics: GatewayMetrics) {
        self.configuration = configuration
        self.pool = pool
        stats = VersionStats(model: model, pool: pool.name, metrics: metrics, role: "shadow")
    }

    var skipped: Int { skippedCount.load(ordering: .relaxed) }

    /// Whether this request is one of the share to copy.
    func draws(using random: inout some RandomNumberGenerator) -> Bool {
        configuration.share > 0 && Double.random(in: 0..<1, using: &random) < configuration.share
    }

    /// Sends a copy of a request (`path`, its JSON `body`) to a replica of the candidate pool.
    func mirror(path: String, body: ByteBuffer, client: BackgroundHTTPClient, on loop: any EventLoop) {
        let now = NIODeadline.now()
        guard let replica = pool.leastLoaded(now: now), let client = try? client.client() else { return skip() }
        guard inFlight.wrappingAdd(1, ordering: .relaxed).newValue <= configuration.maxInFlight else {
            inFlight.wrappingSubtract(1, ordering: .relaxed)
            return skip()
        }
        let timeout = TimeAmount(configuration.timeout)
        BatchUpstream.post(Array(body.readableBytesView), path: path, to: replica.id, client: client, on: loop, timeout: timeout).whenComplete { result in
            self.inFlight.wrappingSubtract(1, ordering: .relaxed)
            let nanoseconds = Int64(NIODeadline.now().uptimeNanoseconds - now.uptimeNanoseconds)
            switch result {
            case .success(let answer):
                self.stats.record(status: answer.status, nanoseconds: nanoseconds, tokens: Self.tokens(in: answer.body))
            case .failure(BatchUpstream.Failure.timedOut):
                self.stats.record(status: 504, nanoseconds: nanoseconds, tokens: nil)
            case .failure:
                self.stats.record(status: 502, nanoseconds: nanoseconds, tokens: nil)
            }
        }
    }

    private func skip() {
        skippedCount.wrappingAdd(1, ordering: .relaxed)
    }

    /// The usage an answer reports, read as the data path reads it (a JSON body or an event stream).
    static func tokens(in body: ByteBuffer) -> Int? {
        let meter = UsageMeter(strip: false)
        let eventStream = body.readableBytesView.starts(with: "data:".utf8)
        meter.responseStarted(eventStream: eventStream, mayDrop: false, allocator: ByteBufferAllocator())
        _ = meter.consume(body)
        _ = meter.end()
        return meter.usedTokens
    }
}
