import Logging
import NIOCore
import Prometheus
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The listener's guard, on the server channel. At `limits.max_connections` it stops accepting
/// (new connections wait in the kernel's backlog, as HAProxy's `maxconn` does) and accepts again
/// as one closes; a few may be accepted in the read that reached the cap, and are closed at once,
/// so the cap holds exactly. When accepting fails (out of file descriptors) it stops reading the
/// listener for `acceptBackoff` and says so in the log, at most every 10 s. (NIO's
/// `AcceptBackoffHandler` only delays the next read request: a failed accept leaves the
/// listener registered for reading, and epoll reports the waiting connection again at once, so
/// the loop spins. Turning `autoRead` off unregisters it.)
final class ConnectionCap: ChannelDuplexHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel
    typealias OutboundIn = Never

    /// What an accept error waits before the next accept.
    static let acceptBackoff: TimeAmount = .milliseconds(250)

    private let limit: Int
    private let refused: Counter
    private let logger: Logger
    private var open = 0
    private var readPending = false
    private var lastWarning: NIODeadline?

    init(limit: Int, refused: Counter, logger: Logger) {
        self.limit = limit
        self.refused = refused
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        guard open < limit else {
            refused.increment()
            child.close(promise: nil)
            return
        }
        open += 1
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        child.closeFuture.whenComplete { _ in
            loop.execute { bound.value.0.closed(bound.value.1) }
        }
        context.fireChannelRead(data)
    }

    private func closed(_ context: ChannelHandlerContext) {
        open -= 1
        guard readPending, open < limit else { return }
        readPending = false
        context.read()
    }

    func read(context: ChannelHandlerContext) {
        if open >= limit {
            readPending = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is IOError else { return context.fireErrorCaught(error) }
        let channel = context.channel
        channel.setOption(.autoRead, value: false).whenSuccess {
            channel.eventLoop.scheduleTask(in: Self.acceptBackoff) { channel.setOption(.autoRead, value: true).whenFailure { _ in } }
        }
        let now = context.eventLoop.now
        if let lastWarning, now - lastWarning < .seconds(10) { return }
        lastWarning = now
        logger.warning(
            "cannot accept connections; waiting before accepting again",
            metadata: ["error": "\(error)", "open": "\(open)", "retry_ms": "\(Self.acceptBackoff.nanoseconds / 1_000_000)"])
    }
}

extension ConnectionCap {
    /// Without `limits.max_connections`: half of the file descriptors the process may open, less
    /// a reserve for the listeners, Redis and the replicas' health (each client connection may
    /// hold one to a replica), so the gateway runs out of connections before it runs out of files.
    static func defaultLimit() -> Int {
        var limit = rlimit()
        #if canImport(Glibc)
        let status = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        #else
        let status = getrlimit(RLIMIT_NOFILE, &limit)
        #endif
        guard status == 0 else { return 4_096 }
        let files = Int(min(limit.rlim_cur, 1 << 22))
        return max(8, (files - 64) / 2)
    }
}

