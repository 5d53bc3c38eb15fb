import NIOCore
import NIOHTTP1

/// The side of an exchange that an upstream connection reports to. Implemented by the
/// downstream connection's handler; both live on the same event loop, so calls are direct.
protocol UpstreamDelegate: AnyObject {
    func upstreamReceived(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(isWritable: Bool)
    func upstreamClosed(error: (any Error)?)
    /// Whether the upstream may read more: false while the client cannot take more bytes.
    var downstreamIsWritable: Bool { get }
}

/// Last handler of an upstream connection's pipeline: passes response parts to the current
/// delegate and holds reads while the client is slow (the GlueHandler pattern, without its lock
/// because both channels share one event loop).
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    weak var delegate: (any UpstreamDelegate)?
    /// Set once the connection is handed to a pool, so its close is always accounted for, even
    /// when the exchange already dropped it (an EOF-delimited response ends on close). Strong on
    /// purpose: the cycle with `UpstreamConnection.handler` is broken in `channelInactive`.
    var connection: UpstreamConnection?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var lastError: (any Error)?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let delegate {
            delegate.upstreamReceived(part)
        } else if case .head = part {
            // A response nobody asked for (or after the client left): the connection's state is
            // unknown, so it must not be reused.
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

    func write(_ part: HTTPClientRequestPart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    /// Called by the delegate when the client can take bytes again.
    func resumeReading() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}
