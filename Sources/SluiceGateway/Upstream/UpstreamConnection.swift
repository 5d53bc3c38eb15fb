import NIOCore

/// One keep-alive HTTP/1.1 connection to a replica, or one HTTP/2 stream to it (seen as an
/// HTTP/1.1 connection through `HTTP2UpstreamBridge`), owned by its event loop's pool.
final class UpstreamConnection {
    let channel: any Channel
    let handler: UpstreamHandler
    unowned let pool: UpstreamConnectionPool
    /// Whether it has served a request before (a reused connection may have been closed by the
    /// replica while idle; the error text says so).
    var useCount = 0
    /// False once its channel went inactive (cheaper to read than `channel.isActive`).
    var isOpen = true
    /// An HTTP/2 stream: it carries one exchange, then closes.
    var singleUse = false

    init(channel: any Channel, handler: UpstreamHandler, pool: UpstreamConnectionPool) {
        self.channel = channel
        self.handler = handler
        self.pool = pool
    }

    var isWritable: Bool { channel.isWritable }
}
