import Foundation
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

    static let echoedHeaders = ["x-forwarded-for", "x-forwarded-proto", "x-request-id", "traceparent", "connection", "keep-alive", "x-custom", "host"]

    private let server: ReplicaServer
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
    private var engineRequest: Int?

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

    /// `GET /admin/faults` shows the faults in force; `POST` changes any of them (JSON, snake_case
    /// keys: `error_rate`, `extra_latency_ms`, `stall`, `close_connections`, `slow_start_s`) and
    /// `{"exit": true}` ends the process.
    private func answerFaults(method: HTTPMethod, body: [UInt8], version: HTTPVersion, context: ChannelHandlerContext) {
        if method == .POST {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
                play(.json(status: 400, body: #"{"error":"body must be a JSON object"}"#, delay: .zero), version: version, context: context)
                return
            }
            let known: Set = ["error_rate", "extra_latency_ms", "stall", "close_connections", "slow_start_s", "exit"]
            if let unknown = object.keys.first(where: { !known.contains($0) }) {
                play(.json(status: 400, body: "{\"error\":\(quoted("unknown key \(unknown)"))}", delay: .zero), version: version, context: context)
                return
            }
            var faults = server.faults
            if let value = object["error_rate"] as? Double { faults.errorRate = min(1, max(0, value)) }
            if let value = object["extra_latency_ms"] as? Double { faults.extraLatency = .milliseconds(max(0, value)) }
            if let value = object["stall"] as? Bool { faults.stall = value }
            if let value = object["close_connections"] as? Bool { faults.closeConnections = value }
            if let value = object["slow_start_s"] as? Double { faults.slowStart = .milliseconds(max(0, value) * 1000) }
            server.faults = faults
            if object["exit"] as? Bool == true {
                let server = self.server
                context.eventLoop.scheduleTask(in: .milliseconds(50)) { server.onExit() }
            }
        } else if method != .GET {
            play(.json(status: 405, body: #"{"error":"GET or POST"}"#, delay: .zero), version: version, context: context)
            return
        }
        let faults = server.faults
        let text = "{\"error_rate\":\(faults.errorRate),\"extra_latency_ms\":\(Double(faults.extraLatency.nanoseconds) / 1e6),"
            + "\"stall\":\(faults.stall),\"close_connections\":\(faults.closeConnections),"
            + "\"slow_start_s\":\(Double(faults.slowStart.nanoseconds) / 1e9)}"
        play(.json(status: 200, body: text, delay: .zero), version: version, context: context)
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

    func play(_ reply: ReplicaReply, version: HTTPVersion, context: ChannelHandlerContext) {
        server.running.wrappingAdd(1, ordering: .relaxed)
        switch reply {
        case .json(let status, let body, let delay):
            let buffer = context.channel.allocator.buffer(string: body)
            var headers = responseHeaders(contentType: "application/json")
            headers.add(name: "content-length", value: String(buffer.readableBytes))
            let head = HTTPResponseHead(version: version, status: .init(statusCode: status), headers: headers)
            after(delay, context: context) {
                context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                self.done()
            }
        case .text(let status, let contentType, let body):
            let buffer = context.channel.allocator.buffer(string: body)
            var headers = responseHeaders(contentType: contentType)
            headers.add(name: "content-length", value: String(buffer.readableBytes))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .init(statusCode: status), headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            done()
        case .stream(let events, let firstDelay, let interval):
            var headers = responseHeaders(contentType: "text/event-stream")
            headers.add(name: "cache-control", value: "no-cache")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))), promise: nil)
            sendEvents(events[...], delay: firstDelay, interval: interval, context: context)
        case .echo:
            done()
        case .batch(let kind, let cost, let then):
            let bound = NIOLoopBound(HandlerContext(handler: self, context: context), eventLoop: context.eventLoop)
            server.scheduler.runBatch(kind, cost: cost).whenComplete { _ in
                bound.eventLoop.execute {
                    let (handler, context) = (bound.value.handler, bound.value.context)
                    handler.server.running.wrappingSubtract(1, ordering: .relaxed)
                    handler.play(then, version: version, context: context)
                }
            }
        case .generate(let completion):
            generate(completion, version: version, context: context)
        }
    }

    /// Streams (or collects) tokens as the engine produces them.
    private func generate(_ completion: Completion, version: HTTPVersion, context: ChannelHandlerContext) {
        if completion.stream {
            var headers = responseHeaders(contentType: "text/event-stream")
            headers.add(name: "cache-control", value: "no-cache")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))), promise: nil)
        }
        let bound = NIOLoopBound(HandlerContext(handler: self, context: context), eventLoop: context.eventLoop)
        let sink = ReplicaScheduler.TokenSink(
            token: { index in
                guard completion.stream else { return }
                bound.eventLoop.execute {
                    let (handler, context) = (bound.value.handler, bound.value.context)
                    guard handler.active else { return }
                    let buffer = context.channel.allocator.buffer(string: completion.event(index))
                    context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                }
            },
            finished: {
                bound.eventLoop.execute {
                    let (handler, context) = (bound.value.handler, bound.value.context)
                    handler.engineRequest = nil
                    guard handler.active else { return }
                    if completion.stream {
                        context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
                    } else {
                        let buffer = context.channel.allocator.buffer(string: completion.json)
                        var headers = handler.responseHeaders(contentType: "application/json")
                        headers.add(name: "content-length", value: String(buffer.readableBytes))
                        context.write(handler.wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))), promise: nil)
                        context.write(handler.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                        context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
                    }
                    handler.done()
                }
            })
        let scheduler = server.scheduler
        let request = completion.engineRequest(id: 0, blockSize: server.configuration.engine?.blockSize ?? 16)
        scheduler.submit(request, sink: sink).whenSuccess { id in
            bound.eventLoop.execute {
                let (handler, context) = (bound.value.handler, bound.value.context)
                guard let id else {
                    // Prompt plus max_tokens exceed the whole KV cache: it could never run.
                    guard handler.active else { return }
                    let body = context.channel.allocator.buffer(string: #"{"error":{"message":"prompt plus max_tokens exceed the model's KV cache","type":"invalid_request_error","code":"context_length_exceeded"}}"#)
                    if completion.stream {
                        // The SSE head went out already: end the stream with an error event.
                        var event = context.channel.allocator.buffer(string: "data: ")
                        event.writeImmutableBuffer(body)
                        event.writeString("\n\n")
                        context.write(handler.wrapOutboundOut(.body(.byteBuffer(event))), promise: nil)
                        context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
                    } else {
                        var headers = handler.responseHeaders(contentType: "application/json")
                        headers.add(name: "content-length", value: String(body.readableBytes))
                        context.write(handler.wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .badRequest, headers: headers))), promise: nil)
                        context.write(handler.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                        context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
                    }
                    handler.done()
                    return
                }
                if handler.active {
                    handler.engineRequest = id
                } else {
                    // The client left before the engine took the request.
                    scheduler.cancel(id)
                    handler.done()
                }
            }
        }
    }

    private func sendEvents(_ events: ArraySlice<String>, delay: Duration, interval: Duration, context: ChannelHandlerContext) {
        after(delay, context: context) {
            guard let event = events.first else {
                context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                self.done()
                return
            }
            let buffer = context.channel.allocator.buffer(string: "data: \(event)\n\n")
            context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            self.sendEvents(events.dropFirst(), delay: interval, interval: interval, context: context)
        }
    }

    /// Runs `body` after `delay` unless the connection has closed by then.
    private func after(_ delay: Duration, context: ChannelHandlerContext, _ body: @escaping () -> Void) {
        let run = { [self] in
            guard active else {
                done()
                return
            }
            body()
        }
        if delay <= .zero {
            run()
        } else {
            context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(delay.nanoseconds), run)
        }
    }

    func done() {
        server.running.wrappingSubtract(1, ordering: .relaxed)
        server.served.wrappingAdd(1, ordering: .relaxed)
    }
}

/// A handler and its context, carried across event-loop hops inside an `NIOLoopBound`.
private struct HandlerContext {
    let handler: ReplicaHandler
    let context: ChannelHandlerContext
}
