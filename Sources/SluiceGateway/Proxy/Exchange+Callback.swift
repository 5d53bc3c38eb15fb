import NIOCore

extension Exchange {
    /// A callback that runs `body` for this exchange on its connection's loop, wherever it is
    /// called from (a slot freed on another loop, a batch answered, a retry's backoff ended).
    func callback<Value: Sendable>(
        to handler: ProxyServerHandler, on loop: any EventLoop, _ body: @escaping (ProxyServerHandler, Exchange, Value) -> Void
    ) -> @Sendable (Value) -> Void {
        let bound = NIOLoopBound((handler, self, body), eventLoop: loop)
        return { value in loop.execute { bound.value.2(bound.value.0, bound.value.1, value) } }
    }
}
