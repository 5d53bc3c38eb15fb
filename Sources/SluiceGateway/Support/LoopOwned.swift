import NIOCore

/// A value created off its event loop but only ever used on it (per-loop connection pools are
/// built before the loops serve anything). NIO's `NIOLoopBound` insists on being created on the
/// loop, which a constructor running before the server starts cannot do.
final class LoopOwned<Value>: @unchecked Sendable {
    private let wrapped: Value
    let eventLoop: any EventLoop

    init(_ value: Value, eventLoop: any EventLoop) {
        self.wrapped = value
        self.eventLoop = eventLoop
    }

    var value: Value {
        eventLoop.assertInEventLoop()
        return wrapped
    }
}
