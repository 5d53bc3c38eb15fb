import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceCore

/// Sends a merged batch to a replica and collects the whole answer: an HTTP/1.1 POST with a
/// deadline. Batches are few and their answers are read whole anyway (they are split before
/// anyone sees them), so this stays apart from the streaming data path.
///
/// Connections are kept alive per replica and event loop, and reused for up to `idleLifetime`
/// (below uvicorn's 5 s keep-alive, so the gateway, not the replica, lets them go); a batch
/// whose reused connection turns out closed fails like any other, and its members are sent
/// alone.
enum BatchUpstream {
    struct Answer: Sendable {
        var status: Int
        var body: ByteBuffer
    }

    enum Failure: Error {
        case timedOut
        case closedEarly
    }

    static let idleLifetime = TimeAmount.seconds(3)

    private struct Key: Hashable {
        var replica: ReplicaID
        var loop: ObjectIdentifier
    }

    private struct Idle {
        var channel: any Channel
        var collector: Collector
        var since: NIODeadline
    }

    /// Idle keep-alive connections, by replica and event loop.
    nonisolated(unsafe) private static var idleConnections: [Key: [Idle]] = [:]
    private static let idleLock = NIOLock()

    static func post(_ body: [UInt8], path: String, to replica: ReplicaID, on loop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<Answer> {
        let promise = loop.makePromise(of: Answer.self)
        // Everything below runs on `loop`: the first completion wins.
        let once = Once(promise)
        let deadline = loop.scheduleTask(in: timeout) { once.complete(.failure(Failure.timedOut)) }
        promise.futureResult.whenComplete { _ in deadline.cancel() }
        let key = Key(replica: replica, loop: ObjectIdentifier(loop))
        if let idle = takeIdle(key) {
            send(body, path: path, replica: replica, on: idle.channel, collector: idle.collector, once: once, key: key)
            return promise.futureResult
        }
        let collector = Collector()
        ClientBootstrap(group: loop)
            .connectTimeout(min(timeout, .seconds(2)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: replica.host, port: replica.port)
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    once.complete(.failure(error))
                case .success(let channel):
                    send(body, path: path, replica: replica, on: channel, collector: collector, once: once, key: key)
                }
            }
        return promise.futureResult
    }

    private static func send(
        _ body: [UInt8], path: String, replica: ReplicaID, on channel: any Channel, collector: Collector, once: Once, key: Key
    ) {
        // A batch that failed (timed out, or its connection broke) leaves no connection behind.
        once.promise.futureResult.whenFailure { _ in channel.close(promise: nil) }
        collector.start(once) { reusable in
            if reusable {
                idleLock.withLock { idleConnections[key, default: []].append(Idle(channel: channel, collector: collector, since: .now())) }
            } else {
                channel.close(promise: nil)
            }
        }
        var headers = HTTPHeaders()
        headers.add(name: "host", value: replica.description)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.count))
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: body))), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// Keep-alive connections waiting for a batch now (for tests).
    static var idleCount: Int {
        idleLock.withLock { idleConnections.values.reduce(0) { $0 + $1.count } }
    }

    /// A live idle connection for `key`, if any; older ones are closed.
    private static func takeIdle(_ key: Key) -> Idle? {
        let now = NIODeadline.now()
        var stale: [any Channel] = []
        let found = idleLock.withLock { () -> Idle? in
            var list = idleConnections[key] ?? []
            defer { idleConnections[key] = list.isEmpty ? nil : list }
            while let idle = list.popLast() {
                if idle.channel.isActive, now - idle.since < idleLifetime { return idle }
                stale.append(idle.channel)
            }
            return nil
        }
        for channel in stale { channel.close(promise: nil) }
        return found
    }

    /// Completes a promise once; used on one event loop only.
    private final class Once: @unchecked Sendable {
        let promise: EventLoopPromise<Answer>
        var done = false

        init(_ promise: EventLoopPromise<Answer>) {
            self.promise = promise
        }

        func complete(_ result: Result<Answer, any Error>) {
            guard !done else { return }
            done = true
            promise.completeWith(result)
        }
    }

    /// Reads one answer per request on its connection; loop-bound.
    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        private var once: Once?
        private var finished: ((Bool) -> Void)?
        private var status = 0
        private var keepAlive = false
        private var body = ByteBuffer()

        /// Expects the next answer; `finished` says whether the connection can be reused.
        func start(_ once: Once, finished: @escaping (Bool) -> Void) {
            self.once = once
            self.finished = finished
            status = 0
            keepAlive = false
            body = ByteBuffer()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = Int(head.status.code)
                keepAlive = head.isKeepAlive
            case .body(var part):
                body.writeBuffer(&part)
            case .end:
                let once = self.once
                let finished = self.finished
                // Reusable only when the answer came in time and the replica keeps the connection.
                let reusable = keepAlive && !(once?.done ?? true)
                self.once = nil
                self.finished = nil
                once?.complete(.success(Answer(status: status, body: body)))
                finished?(reusable)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            once?.complete(.failure(Failure.closedEarly))
            once = nil
            finished = nil
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            once?.complete(.failure(error))
            once = nil
            finished = nil
            context.close(promise: nil)
        }
    }
}
