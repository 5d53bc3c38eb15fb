import NIOCore
import SluiceHTTP1

/// The side of an exchange that an upstream connection reports to. Implemented by the
/// downstream connection's handler; both live on the same event loop, so calls are direct.
protocol UpstreamDelegate: AnyObject {
    func upstreamReceivedHead(_ head: HTTP1Head)
    func upstreamReceivedBody(_ buffer: ByteBuffer)
    /// The response ended; `reusable` is false when the connection must not carry another
    /// request (the body ran until close, or bytes followed the response).
    func upstreamReceivedEnd(reusable: Bool)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    func upstreamClosed(error: (any Error)?)
    /// Whether the upstream may read more: false while the client cannot take more bytes.
    var downstreamIsWritable: Bool { get }
}

/// The only handler of an upstream connection's pipeline: parses responses (`HTTP1Parser`),
/// passes them to the current delegate, writes the request bytes the delegate gives it, and
/// holds reads while the client is slow (the GlueHandler pattern, without its lock because both
/// channels share one event loop).
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Responses from replicas may carry larger heads than Sluice accepts from clients.
    static let maxResponseHeadBytes = 64 * 1024

    weak var delegate: (any UpstreamDelegate)?
    /// Set once the connection is handed to a pool, so its close is always accounted for, even
    /// when the exchange already dropped it (an EOF-delimited response ends on close). Strong on
    /// purpose: the cycle with `UpstreamConnection.handler` is broken in `channelInactive`.
    var connection: UpstreamConnection?
    var parser = HTTP1Parser(role: .response, maxHeadBytes: UpstreamHandler.maxResponseHeadBytes)
    private var unparsed: ByteBuffer?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var lastError: (any Error)?
    /// Bytes written but held until `flush()`: a small body is copied behind its head so a
    /// request costs one `write` system call and one buffer in NIO's queue instead of two.
    private var staged: ByteBuffer?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Called before a request is written: how to read its response.
    func expectResponse(toHEAD: Bool) {
        parser.requestWasHEAD = toHEAD
        parser.passChunkFraming = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        unparsed = .unparsed(unparsed, then: unwrapInboundIn(data), allocator: context.channel.allocator)
        while let delegate {
            let event: HTTP1Parser.Event?
            do {
                event = try parser.next(&unparsed!)
            } catch {
                lastError = error
                context.close(promise: nil)
                return
            }
            guard let event else { break }
            switch event {
            case .head(let head):
                delegate.upstreamReceivedHead(head)
            case .body(let body):
                delegate.upstreamReceivedBody(body)
            case .end:
                delegate.upstreamReceivedEnd(reusable: unparsed!.readableBytes == 0)
            }
        }
        if unparsed!.readableBytes == 0 {
            unparsed = nil
        } else if delegate == nil {
            // A response nobody asked for (or bytes after one, or after the client left): the
            // connection's state is unknown, so it must not be reused.
            unparsed = nil
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(isWritable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        lastError = error
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let delegate, lastError == nil, parser.finishAtClose() != nil {
            // A body delimited by the connection's close has ended (a reset is not an end: it
            // goes to `upstreamClosed` below, which cuts the client's response).
            delegate.upstreamReceivedEnd(reusable: false)
        }
        let delegate = self.delegate
        self.delegate = nil
        if let connection {
            self.connection = nil
            connection.isOpen = false
            connection.pool.connectionClosed(connection)
        }
        delegate?.upstreamClosed(error: lastError)
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        if let delegate, !delegate.downstreamIsWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func write(_ buffer: ByteBuffer) {
        guard var held = staged else {
            staged = buffer
            return
        }
        staged = nil  // (so the append below does not copy the held bytes)
        if held.writableBytes >= buffer.readableBytes {
            held.writeImmutableBuffer(buffer)
            staged = held
        } else {
            context?.write(wrapOutboundOut(held), promise: nil)
            staged = buffer
        }
    }

    func flush() {
        if let held = staged {
            staged = nil
            context?.write(wrapOutboundOut(held), promise: nil)
        }
        context?.flush()
    }

    /// Called by the delegate when the client can take bytes again.
    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}
