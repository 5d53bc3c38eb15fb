import NIOCore

/// An HTTP/2 connection's flushes, held to the end of the event loop's current round of I/O:
/// each stream's answer is flushed by its own exchange as its replica's bytes arrive, one
/// replica socket at a time, and written at once that would be one system call (and, over TLS,
/// one record) per response. Held, the responses that became ready in one round go out in one
/// write, as HAProxy's and nginx's event loops write them. A close writes what is held first.
final class FlushCoalescer: ChannelOutboundHandler {
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    private var held = false

    func flush(context: ChannelHandlerContext) {
        guard !held else { return }
        held = true
        // (Tasks run once the loop has handled every ready socket.)
        context.eventLoop.assumeIsolated().execute {
            guard self.held else { return }
            self.held = false
            context.flush()
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if held {
            held = false
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }
}
