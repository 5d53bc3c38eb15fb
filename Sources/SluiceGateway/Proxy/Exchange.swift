import NIOCore
import NIOHTTP1
import SluiceCore

/// One request/response pair on a downstream connection: what was asked, where it went, and how
/// far each direction has got. Owned by the connection's `ProxyServerHandler`, on its loop.
final class Exchange {
    let start: NIODeadline
    /// The head as it will be sent upstream (rewritten once a pool is chosen).
    var head: HTTPRequestHead
    let requestVersion: HTTPVersion
    /// Whether the client wants the connection kept after this exchange.
    var keepAlive: Bool
    var requestID: String?

    var pool: PoolRuntime?
    var replica: Replica?
    var connectionPool: UpstreamConnectionPool?
    var upstream: UpstreamConnection?
    var attempts = 0

    /// Body held while routing needs the `model` field.
    var inspectBuffer: ByteBuffer?
    /// Parts received before the upstream connection was ready.
    var pending = CircularBuffer<HTTPClientRequestPart>(initialCapacity: 2)
    var pendingBytes = 0
    var bodyBytes = 0
    var wroteUpstreamSinceFlush = false

    /// The client has sent the request's end.
    var requestEnded = false
    /// The request's end has been written upstream.
    var requestSent = false
    /// A response head has been written to the client.
    var responseStarted = false
    var status = 0
    var upstreamKeepAlive = true
    /// Last byte from the replica (for the stream idle timeout).
    var lastActivity: NIODeadline
    /// Last byte from the client while its request is incomplete (for the client timeout).
    var lastClientActivity: NIODeadline
    /// When the upstream side's current phase (connection wait, response head, stream idle)
    /// times out; nil when it is not being timed.
    var upstreamDeadline: NIODeadline?
    /// What was written on a reused keep-alive connection, kept (bounded) so the request can be
    /// sent again once if the replica had closed that connection while it sat idle.
    var replay: [HTTPClientRequestPart]?
    var replayBytes = 0
    var retriedStaleConnection = false
    /// The client sent `Expect: 100-continue`; answered once the request is accepted.
    var expectsContinue = false
    /// Set once metrics and in-flight counts are settled; makes `finish` idempotent.
    var finished = false

    init(head: HTTPRequestHead, now: NIODeadline) {
        self.start = now
        self.lastActivity = now
        self.lastClientActivity = now
        self.head = head
        self.requestVersion = head.version
        self.keepAlive = head.isKeepAlive
    }

    /// The request target without its query string.
    var path: Substring {
        let uri = head.uri
        if let query = uri.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            return uri[..<query]
        }
        return uri[...]
    }
}
