import NIOCore
import NIOHTTP1

/// Playing a reply the API decided: written at once, after a delay, as SSE events on their own
/// schedule, or after a simulated batch.
extension ReplicaHandler {
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
    func after(_ delay: Duration, context: ChannelHandlerContext, _ body: @escaping () -> Void) {
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
}
