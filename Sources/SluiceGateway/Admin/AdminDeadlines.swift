import NIOCore

/// The admin listener's two deadlines, on the raw bytes in front of the HTTP decoder: a request
/// (head and body) must arrive whole within `request` of its first byte, and a kept-alive
/// connection may wait `idle` for its next one. So a client dripping a head, or holding a
/// connection open with nothing to ask, is closed. `AdminHandler` says when a request has
/// arrived whole (`AdminRequestArrived`, an outbound user event).
final class AdminDeadlines: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = Any

    static let request: TimeAmount = .seconds(10)
    static let idle: TimeAmount = .seconds(60)

    /// Sent by `AdminHandler` when a request's end has arrived.
    struct RequestArrived {}

    private var inRequest = false
    private var timer: Scheduled<Void>?

    func channelActive(context: ChannelHandlerContext) {
        arm(Self.idle, context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !inRequest {
            inRequest = true
            arm(Self.request, context)
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is RequestArrived else { return context.triggerUserOutboundEvent(event, promise: promise) }
        // (Bytes already read belong to a pipelined request: its time started with them.)
        inRequest = false
        arm(Self.idle, context)
        promise?.succeed()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    private func arm(_ after: TimeAmount, _ context: ChannelHandlerContext) {
        timer?.cancel()
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: after) { channel.close(promise: nil) }
    }
}
