import NIOCore
import NIOHTTP1

/// Completions the engine generates: tokens arrive from the scheduler on its own thread and are
/// written on the connection's loop.
extension ReplicaHandler {
    /// Streams (or collects) tokens as the engine produces them.
    func generate(_ completion: Completion, version: HTTPVersion, context: ChannelHandlerContext) {
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
}
