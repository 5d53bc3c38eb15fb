import NIOCore
import NIOHTTP1
import SluiceConfig

/// Reads one request whole (the simulator is not the thing being measured) and plays its reply,
/// writing and flushing each SSE event on its own schedule.
final class ReplicaHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Sent through every connection's pipeline by `ReplicaServer.resumeUploads()`.
    struct ResumeReading: Sendable {}

    /// (`authorization` too: tests check which key a hosted provider was sent. A simulator only.)
    static let echoedHeaders = ["x-forwarded-for", "x-forwarded-proto", "x-request-id", "traceparent", "connection", "keep-alive", "x-custom", "host", "authorization"]

    let server: ReplicaServer
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var echoing = false
    private(set) var active = true
    private var downloadRemaining = 0
    /// In a `/v1/sim/upload` request: the body is counted, not kept.
    private var uploading = false
    private var uploaded = 0
    private var pendingRead = false
    /// The engine's id for the completion in progress, to cancel it if the client leaves.
    var engineRequest: Int?

    init(server: ReplicaServer) {
        self.server = server
    }

    func channelActive(context: ChannelHandlerContext) {
        server.connections.withLock { $0[ObjectIdentifier(context.channel)] = context.channel }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        if let id = engineRequest {
            engineRequest = nil
            server.scheduler.cancel(id)
            done()
        }
        server.connections.withLock { $0[ObjectIdentifier(context.channel)] = nil }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = nil
            echoing = head.uri == "/v1/echo"
            uploading = head.uri == "/v1/sim/upload"
            uploaded = 0
            if echoing {
                // Stream the body straight back, to test bodies that pass through in parts.
                var headers = responseHeaders(contentType: head.headers.first(name: "content-type") ?? "application/octet-stream")
                headers.add(name: "transfer-encoding", value: "chunked")
                // Report what arrived, so tests can check what the gateway forwarded.
                for name in Self.echoedHeaders {
                    headers.add(name: "x-seen-" + name, value: head.headers[name].joined(separator: ",").isEmpty ? "-" : head.headers[name].joined(separator: ","))
                }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            }
        case .body(var part):
            if uploading {
                uploaded += part.readableBytes
                server.uploadBytesRead.wrappingAdd(part.readableBytes, ordering: .relaxed)
            } else if echoing {
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(part))), promise: nil)
            } else if body == nil {
                body = part
            } else {
                body!.writeBuffer(&part)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            if echoing {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                server.served.wrappingAdd(1, ordering: .relaxed)
                return
            }
            if uploading {
                uploading = false
                let body = context.channel.allocator.buffer(string: #"{"received":\#(uploaded)}"#)
                var headers = responseHeaders(contentType: "application/json")
                headers.add(name: "content-length", value: String(body.readableBytes))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                server.served.wrappingAdd(1, ordering: .relaxed)
                return
            }
            let path = head.uri.firstIndex(of: "?").map { head.uri[..<$0] } ?? head.uri[...]
            let bytes = body.map { Array($0.readableBytesView) } ?? []
            if path == "/admin/faults" {
                answerFaults(method: head.method, body: bytes, version: head.version, context: context)
                return
            }
            let inference = Self.isInference(path)
            if server.isStarting, inference || path == "/health" || path.hasPrefix("/v2/health") {
                play(.json(status: 503, body: #"{"error":{"message":"starting","type":"server_error","code":"starting"}}"#, delay: .zero),
                     version: head.version, context: context)
                return
            }
            let faults = server.faults
            if faults.stall, inference { return }
            if faults.closeConnections, inference {
                context.close(promise: nil)
                return
            }
            if server.dropNext.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
                // `dropNextRequest()`: read it, close without an answer.
                context.close(promise: nil)
                return
            }
            if inference, faults.errorRate > 0, server.draw() < faults.errorRate {
                play(.json(status: 500, body: #"{"error":{"message":"injected error","type":"server_error","code":"injected_error"}}"#, delay: .zero),
                     version: head.version, context: context)
                return
            }
            if head.uri.hasPrefix("/v1/sim/download?bytes="), let total = Int(head.uri.dropFirst("/v1/sim/download?bytes=".count)) {
                // A large body written only as fast as the socket takes it (the simulator's own
                // backpressure), to test that the gateway passes a slow reader's pace upstream.
                var headers = responseHeaders(contentType: "application/octet-stream")
                headers.add(name: "content-length", value: String(total))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
                downloadRemaining = total
                server.running.wrappingAdd(1, ordering: .relaxed)
                pumpDownload(context: context)
                return
            }
            if head.uri == "/v1/sim/switch" {
                // A replica that switches protocols although nobody asked it to.
                var headers = responseHeaders(contentType: "text/plain")
                headers.add(name: "upgrade", value: "websocket")
                headers.add(name: "connection", value: "upgrade")
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))), promise: nil)
                server.served.wrappingAdd(1, ordering: .relaxed)
                return
            }
            if head.uri == "/v1/sim/eof" {
                // An HTTP/1.0-style answer: no length, the body ends when the connection closes.
                var headers = responseHeaders(contentType: "text/plain")
                headers.add(name: "connection", value: "close")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_0, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: "until close")))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
                server.served.wrappingAdd(1, ordering: .relaxed)
                return
            }
            let reply = ReplicaAPI(configuration: server.configuration).reply(
                method: head.method.rawValue, path: path, body: bytes, metrics: server.metricsText)
            if inference, faults.extraLatency > .zero {
                server.running.wrappingAdd(1, ordering: .relaxed)
                after(faults.extraLatency, context: context) {
                    self.server.running.wrappingSubtract(1, ordering: .relaxed)
                    self.play(reply, version: head.version, context: context)
                }
            } else {
                play(reply, version: head.version, context: context)
            }
        }
    }

    static func isInference(_ path: Substring) -> Bool {
        path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/embeddings"
            || (path.hasPrefix("/v2/models/") && path.hasSuffix("/infer"))
    }

    /// While uploads are paused, an upload's body is not read: the socket fills and the sender
    /// (the gateway) must hold its own client back.
    func read(context: ChannelHandlerContext) {
        if uploading, server.uploadsPaused.load(ordering: .relaxed) {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ResumeReading {
            if pendingRead {
                pendingRead = false
                context.read()
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, downloadRemaining > 0 { pumpDownload(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func pumpDownload(context: ChannelHandlerContext) {
        let server = self.server
        while downloadRemaining > 0, context.channel.isWritable, active {
            let size = min(downloadRemaining, 64 * 1024)
            var chunk = context.channel.allocator.buffer(capacity: size)
            chunk.writeRepeatingByte(UInt8(ascii: "d"), count: size)
            downloadRemaining -= size
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(chunk)))).whenSuccess {
                server.downloadBytesWritten.wrappingAdd(size, ordering: .relaxed)
            }
        }
        if downloadRemaining == 0, active {
            downloadRemaining = -1
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            done()
        }
    }

    func responseHeaders(contentType: String) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "x-replica-id", value: server.configuration.id)
        return headers
    }

    func done() {
        server.running.wrappingSubtract(1, ordering: .relaxed)
        server.served.wrappingAdd(1, ordering: .relaxed)
    }
}

extension ReplicaHandler {
    /// A handler and its context, carried across event-loop hops inside an `NIOLoopBound`.
    struct HandlerContext {
        let handler: ReplicaHandler
        let context: ChannelHandlerContext
    }
}
