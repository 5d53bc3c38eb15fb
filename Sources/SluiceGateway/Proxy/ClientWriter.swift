import NIOCore
import SluiceHTTP1

/// What the data path writes to its client, and how: a response head is held until its first
/// body bytes (or the end of the read burst) so a small answer is one write; body data is framed
/// as the exchange's reframing says; an answer that ends the connection closes only once it is
/// written, and an early answer closes "lingering" (see `closeLingering`).
struct ClientWriter {
    private var stagedHead: ByteBuffer?

    mutating func stage(_ head: ByteBuffer) {
        stagedHead = head
    }

    mutating func dropStaged() {
        stagedHead = nil
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
}
