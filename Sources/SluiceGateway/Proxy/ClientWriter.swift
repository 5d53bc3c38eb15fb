import NIOCore
import SluiceHTTP1

/// What the data path writes to its client, and how: a response head is held until its first
/// body bytes (or the end of the read burst) so a small answer is one write; body data is framed
/// as the exchange's reframing says; an answer that ends the connection closes only once it is
/// written, and an early answer closes "lingering" (see `closeLingering`).
struct ClientWriter {
    private var stagedHead: ByteBuffer?
    /// The staged head waits for the first body bytes, not the end of the read burst (a stream
    /// of events: a replica that fails before its first event has then sent the client nothing).
    private var holdUntilBody = false

    mutating func stage(_ head: ByteBuffer, untilBody: Bool = false) {
        stagedHead = head
        holdUntilBody = untilBody
    }

    /// Drops the held head; returns whether there was one (then the client has seen nothing).
    @discardableResult
    mutating func dropStaged() -> Bool {
        defer { stagedHead = nil }
        return stagedHead != nil
    }

    /// Writes the held response head at the end of a read burst, unless it waits for body bytes.
    mutating func burstEnded(_ context: ChannelHandlerContext) {
        if !holdUntilBody { writeStaged(context) }
    }

    /// Writes the held response head, if any.
    mutating func writeStaged(_ context: ChannelHandlerContext) {
        guard let head = stagedHead else { return }
        stagedHead = nil
        context.write(NIOAny(head), promise: nil)
    }

    /// Writes response body data, behind the held head when it fits there.
    mutating func forward(_ buffer: ByteBuffer, reframing: HeaderRewriter.BodyReframing, _ context: ChannelHandlerContext) {
        if reframing == .none, var head = stagedHead, head.writableBytes >= buffer.readableBytes {
            stagedHead = nil
            head.writeImmutableBuffer(buffer)
            return context.write(NIOAny(head), promise: nil)
        }
        writeStaged(context)
        guard reframing.writesChunks else { return context.write(NIOAny(buffer), promise: nil) }
        var header = context.channel.allocator.buffer(capacity: 12)
        HTTP1Writer.writeChunkHeader(length: buffer.readableBytes, into: &header)
        context.write(NIOAny(header), promise: nil)
        context.write(NIOAny(buffer), promise: nil)
        context.write(NIOAny(context.channel.allocator.buffer(staticString: HTTP1Writer.chunkEnd)), promise: nil)
    }

    /// Ends the answer (the last chunk when it is chunked) and flushes; closes once it is all
    /// written when `close`.
    mutating func end(reframing: HeaderRewriter.BodyReframing, close: Bool, _ context: ChannelHandlerContext) {
        writeStaged(context)
        let last = reframing.writesChunks ? context.channel.allocator.buffer(staticString: HTTP1Writer.lastChunk) : nil
        guard close else {
            if let last { context.write(NIOAny(last), promise: nil) }
            return context.flush()
        }
        // (An empty write completes once everything before it is written.)
        context.writeAndFlush(NIOAny(last ?? context.channel.allocator.buffer(capacity: 0)))
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    /// Closes after an answer that may have come before the client finished sending (413, 431,
    /// 408): first only our sending side, then reads and drops what the client still sends for
    /// up to 2 s. Closing at once with unread bytes makes the kernel send a reset, and many
    /// clients then report "connection reset" instead of the answer (nginx's lingering close).
    static func closeLingering(after written: EventLoopFuture<Void>, _ context: ChannelHandlerContext) {
        written.assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) {
                context.close(promise: nil)
            }
        }
    }

    /// Ends a stream of server-sent events that cannot go on (its replica failed or went quiet)
    /// with an `error` event carrying `error`'s JSON (what OpenAI's clients raise from) and the
    /// stream's proper end, then closes, instead of a cut that clients report as a broken
    /// connection. Possible where the gateway writes the chunks, where it passes the replica's
    /// and the cut fell between two (`betweenChunks`), or where the body runs until close.
    /// Returns false, having written nothing, otherwise.
    mutating func endEvents(with error: GatewayError, _ framing: Exchange.ClientFraming, betweenChunks: Bool, _ context: ChannelHandlerContext) -> Bool {
        let event = "event: error\ndata: \(error.jsonBody())\n\n"
        var out = context.channel.allocator.buffer(capacity: event.utf8.count + 32)
        let chunked = framing == .writtenChunks || (framing == .passedChunks && betweenChunks)
        switch framing {
        case .writtenChunks, .passedChunks:
            guard chunked else { return false }
            HTTP1Writer.writeChunkHeader(length: event.utf8.count, into: &out)
            out.writeString(event)
            out.writeStaticString(HTTP1Writer.chunkEnd)
            out.writeStaticString(HTTP1Writer.lastChunk)
        case .untilClose:
            out.writeString(event)
        default:
            return false
        }
        writeStaged(context)
        context.writeAndFlush(NIOAny(out)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        return true
    }
}
