import NIOCore
import SluiceCore
import SluiceHTTP1

/// The replica's side: its answer streamed to the client (reframed when the versions or the
/// usage meter need it), its connection returned or closed, and its failures.
extension ProxyServerHandler: UpstreamDelegate {
    var downstreamIsWritable: Bool { context.channel.isWritable }

    func upstreamReceivedHead(_ head: HTTP1Head) {
        guard let exchange, let connection = state.connection, !exchange.finished else { return }
        if head.status == 101 {
            return respond(.switchedProtocols(exchange.replica), closeAfter: mustCloseUnfinished(exchange))
        }
        let now = self.now
        state.responseStarted(now: now)
        exchange.replica?.recordSuccess()
        exchange.pool?.metrics.recordFirstByte(nanoseconds: Int64(now.uptimeNanoseconds - exchange.start.uptimeNanoseconds))
        exchange.trace?.firstByte(status: head.status, at: now)
        // From the head on, the replica's silence is what is timed.
        armTimer()
        let out = exchange.responseBegan(head, untilClose: connection.handler.parser.readsUntilClose, allocator: context.channel.allocator)
        writer.stage(out, untilBody: exchange.eventStream)
        connection.handler.parser.passChunkFraming = exchange.reframing == .none
    }

    func upstreamReceivedBody(_ buffer: ByteBuffer) {
        guard let exchange, state.connection != nil, !exchange.finished else { return }
        let now = self.now
        state.responseBytes(now: now)
        exchange.responseBytesArrived(now: now)
        guard let meter = exchange.usageMeter else { return writer.forward(buffer, reframing: exchange.reframing, context) }
        for part in meter.consume(buffer) { writer.forward(part, reframing: exchange.reframing, context) }
    }

    func upstreamReceivedEnd(reusable: Bool) {
        guard let exchange, let connection = state.connection, !exchange.finished else { return }
        // An event still held (its blank line never came) goes out as it is.
        let held = exchange.usageMeter?.end()
        let now = self.now
        exchange.recordEndToEnd(now: now)
        connection.pool.returned(connection, reusable: reusable && state.requestEnded && exchange.upstreamKeepAlive)
        finish(exchange, status: exchange.status)
        if let held { writer.forward(held, reframing: exchange.reframing, context) }
        self.exchange = nil
        let after = state.exchangeEnded(keepAlive: exchange.keepAlive && !quiescing, now: now)
        writer.end(reframing: exchange.reframing, close: after == .close, context)
        if after != .close { exchangeEnded() }
    }

    func upstreamReadComplete() {
        writer.burstEnded(context)
        context.flush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable { resumeReading() }
    }

    func upstreamClosed(error: (any Error)?) {
        guard let exchange, let connection = state.connection, !exchange.finished else { return }
        _ = state.abandon()  // (the connection is gone: nothing to close)
        // A stream's head held for its first event was never sent: as if nothing was answered.
        if state.responseStarted, writer.dropStaged() { state.responseUnsent() }
        guard !state.responseStarted else { return abort(exchange, status: 502, betweenChunks: connection.handler.parser.isBetweenChunks) }
        exchange.replicaFailed(now: now)
        retryOrAnswer(exchange, .replicaClosed(exchange.replica, reused: connection.useCount > 1, error: error), orSame: true)
    }

    /// Sends a failed exchange again if its pool's retry policy allows (`PoolRuntime.retry`), else answers `error`.
    private func retryOrAnswer(_ exchange: Exchange, _ error: GatewayError, orSame: Bool = false) {
        guard let pool = exchange.pool, let failed = exchange.replica,
              let delay = pool.retry(exchange, failed: failed, orSame: orSame, now: now, random: upstreams.random.next())
        else { return respond(error, closeAfter: mustCloseUnfinished(exchange)) }
        acquireUpstream(exchange, after: delay)
    }
}

extension ProxyServerHandler: UpstreamRequester {
    func upstreamReady(_ connection: UpstreamConnection) {
        guard let exchange, case .connecting = state.phase, !exchange.finished else {
            return connection.pool.release(connection)
        }
        attach(connection, to: exchange)
    }

    func upstreamFailed(_ error: any Error) {
        guard let exchange, case .connecting = state.phase, !exchange.finished, let replica = exchange.replica else { return }
        exchange.replicaFailed(now: now)
        retryOrAnswer(exchange, .replicaFailed("could not connect to \(replica.id): \(error)"))
    }
}
