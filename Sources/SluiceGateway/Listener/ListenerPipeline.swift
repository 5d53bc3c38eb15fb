import NIOCore
import NIOHTTP2
import NIOSSL
import NIOTLS
import SluiceConfig

/// The handlers of one accepted data connection. Cleartext: `PrefaceSniffer` chooses HTTP/1.1
/// or h2c. TLS: the handshake's ALPN chooses `h2` or `http/1.1` (no ALPN: HTTP/1.1). HTTP/1.1
/// is one `ProxyServerHandler` on the connection; HTTP/2 is NIO's HTTP/2 handler with one
/// child channel per stream, each an `HTTP2StreamBridge` and a `ProxyServerHandler`.
struct ListenerPipeline {
    let runtime: GatewayRuntime
    /// The connection's loop's upstream pools.
    let upstreams: LoopOwned<EventLoopUpstreams>
    let http2: HTTP2Configuration
    let certificates: ListenerCertificates?

    func configure(_ channel: any Channel) throws {
        let sync = channel.pipeline.syncOperations
        guard let certificates else {
            return try sync.addHandler(PrefaceSniffer { http2 in
                try self.configure(channel, http2 ? .h2c : .http1)
            })
        }
        try sync.addHandler(NIOSSLServerHandler(context: certificates.context))
        try sync.addHandler(ApplicationProtocolNegotiationHandler { result, channel in
            channel.eventLoop.makeCompletedFuture {
                if case .negotiated("h2") = result {
                    try self.configure(channel, .h2)
                } else {
                    try self.configure(channel, .http1TLS)
                }
            }
        })
    }

    private func configure(_ channel: any Channel, _ clientProtocol: ClientProtocol) throws {
        let sync = channel.pipeline.syncOperations
        let runtime = self.runtime
        let upstreams = self.upstreams
        let clientAddress = channel.remoteAddress?.ipAddress
        guard clientProtocol.isHTTP2 else {
            // (A drain quiesces the connection: its handler finishes the exchange and closes.)
            runtime.tracker.add(channel)
            channel.closeFuture.whenComplete { _ in runtime.tracker.remove(channel) }
            return try sync.addHandler(ProxyServerHandler(runtime: runtime, upstreams: upstreams.value, clientProtocol: clientProtocol, clientAddress: clientAddress))
        }
        try sync.addHandler(FlushCoalescer())
        let management = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop,
            configuration: .init(maxIdleTime: TimeAmount(http2.idleTimeout), maxAge: nil, maxGraceTime: nil, keepalive: nil))
        _ = try sync.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connectionConfiguration, streamConfiguration: streamConfiguration
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                let sync = stream.pipeline.syncOperations
                try sync.addHandler(HTTP2StreamBridge(maxHeadBytes: runtime.limits.maxHeaderBytes + 4_096))
                try sync.addHandler(ProxyServerHandler(runtime: runtime, upstreams: upstreams.value, clientProtocol: clientProtocol, clientAddress: clientAddress))
            }
        }
        // Graceful shutdown (the gateway's drain quiesces tracked connections): GOAWAY, then
        // close once the streams in progress end; and the idle timeout.
        try sync.addHandler(management)
        try sync.addHandler(HTTP2ConnectionTracking(tracker: runtime.tracker))
    }

    var connectionConfiguration: NIOHTTP2Handler.ConnectionConfiguration {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: http2.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: http2.maxHeaderListSize ?? runtime.limits.maxHeaderBytes),
            HTTP2Setting(parameter: .initialWindowSize, value: http2.initialWindowSize),
        ]
        connection.targetWindowSize = http2.connectionWindowSize
        return connection
    }

    var streamConfiguration: NIOHTTP2Handler.StreamConfiguration {
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = http2.initialWindowSize
        stream.streamResetFrameRateLimit.maximumCount = http2.maxResets
        stream.streamResetFrameRateLimit.windowLength = TimeAmount(http2.resetWindow)
        return stream
    }
}

/// Puts an HTTP/2 connection in the gateway's `ConnectionTracker`, so a drain quiesces it (the
/// management handler answers with GOAWAY) and waits for it; its streams are tracked each. A
/// connection error (a flood, a rapid reset, a protocol violation) has had its GOAWAY from
/// NIO's handler by the time it gets here: the connection is then closed (RFC 9113 §5.4.1), so
/// an attacker cannot keep it open.
private final class HTTP2ConnectionTracking: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    private let tracker: ConnectionTracker

    init(tracker: ConnectionTracker) {
        self.tracker = tracker
    }

    func handlerAdded(context: ChannelHandlerContext) {
        tracker.add(context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        tracker.remove(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
