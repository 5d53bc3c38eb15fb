import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: health, readiness, Prometheus metrics and the `/admin/*` API, on its own
/// port so it can be firewalled apart from client traffic. Speed does not matter here, so each
/// request is read whole and answered by `AdminRoutes`.
enum AdminServer {
    /// Admin clients are few (probes, a scraper, an operator): a small cap keeps a flood of them
    /// from taking the files the data path needs.
    static let maxConnections = 128

    static func bind(host: String, port: Int, group: any EventLoopGroup, gateway: Gateway, token: String?) async throws -> any Channel {
        let routes = AdminRoutes(gateway: gateway, token: token)
        let refused = gateway.runtime.metrics.adminConnectionsRefused
        let logger = gateway.runtime.logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionCap(limit: maxConnections, refused: refused, logger: logger))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AdminDeadlines())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(routes: routes))
                }
            }
        return try await bootstrap.bind(host: host, port: port).get()
    }
}

/// Collects one admin request (body capped at 1 MiB) and writes the route's answer. A request the
/// token does not allow is answered from its head, and its body is not read.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maxBody = 1 << 20

    private let routes: AdminRoutes
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var tooLarge = false
    /// Answered from its head (refused): the rest of the request is not read; the connection closes.
    private var refused = false

    init(routes: AdminRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard !refused else { return }
            self.head = head
            body = nil
            tooLarge = false
            if let denied = routes.refusal(method: head.method, uri: head.uri, headers: head.headers, peer: context.channel.remoteAddress) {
                refused = true
                context.triggerUserOutboundEvent(AdminDeadlines.RequestArrived(), promise: nil)
                write(denied, keepAlive: false, version: head.version, context: context)
            }
        case .body(var part):
            if refused { return }
            if (body?.readableBytes ?? 0) + part.readableBytes > Self.maxBody {
                tooLarge = true
            } else if body == nil {
                body = part
            } else {
                body!.writeBuffer(&part)
            }
        case .end:
            guard let head, !refused else { return }
            self.head = nil
            context.triggerUserOutboundEvent(AdminDeadlines.RequestArrived(), promise: nil)
            let request = AdminRequest(
                method: head.method, uri: head.uri, headers: head.headers,
                body: body, peer: context.channel.remoteAddress)
            let response: AdminResponse = tooLarge ? .error(.payloadTooLarge, "request body over 1 MiB", code: "request_too_large") : routes.handle(request)
            write(response, keepAlive: head.isKeepAlive, version: head.version, context: context)
        }
    }

    private func write(_ response: AdminResponse, keepAlive: Bool, version: HTTPVersion, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.readableBytes))
        headers.add(name: "cache-control", value: "no-store")
        if !keepAlive { headers.add(name: "connection", value: "close") }
        for (name, value) in response.extraHeaders { headers.add(name: name, value: value) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            // (Lingering: a refused request's body may still be coming.)
            ClientWriter.closeLingering(after: context.writeAndFlush(wrapOutboundOut(.end(nil))), context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
