import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceCore

/// Reads each replica's Prometheus metrics every `routing.scrape.interval` for pools whose policy
/// weighs the replicas' own queues (least-queue, cache-aware), and records
/// `vllm:num_requests_waiting` on the replica (`Replica.recordReportedQueue`), and with it
/// `vllm:num_requests_running`, from which cache-aware routing learns its slots. A replica that
/// stops answering simply stops reporting; its last report ages out after three intervals.
final class QueueScraper: Sendable {
    private let pools: [PoolRuntime]
    private let group: any EventLoopGroup
    private let tasks = RepeatedTasks()

    init(pools: [PoolRuntime], group: any EventLoopGroup) {
        self.pools = pools.filter { [.leastQueue, .cacheAware].contains($0.configuration.routing.policy) }
        self.group = group
    }

    func start() {
        var started: [RepeatedTask] = []
        for pool in pools {
            let interval = TimeAmount.nanoseconds(pool.configuration.routing.scrapeInterval.nanoseconds)
            let loop = group.next()
            started.append(loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: interval) { _ in
                Self.scrape(pool, on: loop, timeout: interval)
            })
        }
        tasks.set(started)
    }

    func stop() {
        tasks.cancelAll()
    }

    /// One round: every replica at once; completes when all answered or timed out.
    private static func scrape(_ pool: PoolRuntime, on loop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<Void> {
        let path = pool.configuration.routing.scrapePath
        let futures = pool.snapshot.replicas.map { replica in
            fetch(replica.id, path: path, on: loop, timeout: timeout).map { text -> Void in
                if let text, let waiting = waitingQueue(in: text) {
                    replica.recordReportedQueue(waiting: waiting, at: NIODeadline.now().uptimeNanoseconds)
                    if let running = gauge("vllm:num_requests_running", in: text) {
                        replica.recordReportedRunning(running, waiting: waiting)
                    }
                }
            }
        }
        return EventLoopFuture.andAllComplete(futures, on: loop)
    }

    /// The sum of `vllm:num_requests_waiting` samples (one per model), or nil if absent. The
    /// value is the field after the name and labels (a timestamp may follow); absurd values are
    /// clamped, never trusted to fit.
    static func waitingQueue(in text: String) -> Int? {
        gauge("vllm:num_requests_waiting", in: text)
    }

    /// The sum of a gauge's samples (one per model, any labels), or nil if absent.
    static func gauge(_ name: String, in text: String) -> Int? {
        var total: Double?
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            var rest = line.dropFirst(name.count)
            if rest.first == "{" {
                guard let close = rest.lastIndex(of: "}") else { continue }
                rest = rest[rest.index(after: close)...]
            } else if rest.first != " " {
                continue
            }
            guard let field = rest.split(separator: " ").first, let value = Double(field.trimmingCharacters(in: .whitespacesAndNewlines)),
                  value.isFinite
            else { continue }
            total = min((total ?? 0) + max(0, value), Double(1 << 30))
        }
        return total.map { Int($0.rounded()) }
    }

    /// A `transfer-encoding: chunked` body with its framing removed (nil if it is malformed).
    static func dechunk(_ body: Substring) -> String? {
        var out = ""
        var rest = body
        while let lineEnd = rest.range(of: "\r\n") {
            let sizeText = rest[..<lineEnd.lowerBound].split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            if size == 0 { return out }
            let dataStart = lineEnd.upperBound
            let utf8 = rest.utf8
            guard utf8.distance(from: dataStart, to: utf8.endIndex) >= size + 2 else { return nil }
            let dataEnd = utf8.index(dataStart, offsetBy: size)
            out += rest[dataStart..<dataEnd]
            rest = rest[utf8.index(dataEnd, offsetBy: 2)...]
        }
        return out
    }

    /// GET `path` on `replica`, the whole body as text; nil on any failure or after `timeout`.
    private static func fetch(_ replica: ReplicaID, path: String, on loop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<String?> {
        let promise = loop.makePromise(of: String?.self)
        let collector = BodyCollector(promise: promise)
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: replica.host, port: replica.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    let request = "GET \(path) HTTP/1.1\r\nhost: \(replica)\r\nconnection: close\r\n\r\n"
                    channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
                    channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
                case .failure:
                    promise.succeed(nil)
                }
            }
        return promise.futureResult
    }
}

/// Collects a `connection: close` response; succeeds with its body (2xx only) when the peer closes.
private final class BodyCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<String?>
    private var received = ByteBuffer()

    init(promise: EventLoopPromise<String?>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received.writeBuffer(&buffer)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let text = String(buffer: received)
        guard text.hasPrefix("HTTP/1.1 2") || text.hasPrefix("HTTP/1.0 2"), let split = text.range(of: "\r\n\r\n") else {
            promise.succeed(nil)
            return
        }
        let head = text[..<split.lowerBound].lowercased()
        let body = text[split.upperBound...]
        if head.contains("transfer-encoding: chunked") {
            promise.succeed(QueueScraper.dechunk(body))
        } else {
            promise.succeed(String(body))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
