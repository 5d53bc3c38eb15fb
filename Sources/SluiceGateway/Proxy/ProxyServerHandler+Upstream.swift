import NIOCore
import SluiceCore

/// The replica's side: its answer streamed to the client (reframed when the versions or the
/// usage meter need it), its connection returned or closed, and its failures.
extension ProxyServerHandler: UpstreamDelegate {
    var downstreamIsWritable: Bool { context.channel.isWritable }

    func upstreamReceivedHead(_ head: HTTP1Head) {
        guard let exchange, let connection = state.connection, !exchange.finished else { return }
        if head.status == 101 {
            // Sluice removes `Upgrade`, so a switch of protocols is the replica misbehaving; the
            // connection now speaks something else and is closed.
            let name = exchange.replica.map { "\($0.id)" } ?? "the replica"
            return respond(.replicaFailed("\(name) answered 101 Switching Protocols, which Sluice does not proxy"), closeAfter: mustCloseUnfinished(exchange))
        }
        let now = self.now
        state.responseStarted(now: now)
        exchange.replica?.recordSuccess()
        exchange.pool?.metrics.recordFirstByte(nanoseconds: Int64(now.uptimeNanoseconds - exchange.start.uptimeNanoseconds))
        // From the head on, the replica's silence is what is timed.
        armTimer()
        stagedHead = exchange.responseBegan(head, untilClose: connection.handler.parser.readsUntilClose, allocator: context.channel.allocator)
        connection.handler.parser.passChunkFraming = exchange.reframing == .none
    }

    func upstreamReceivedBody(_ buffer: ByteBuffer) {
        guard let exchange, state.connection != nil, !exchange.finished else { return }
        let now = self.now
        state.responseBytes(now: now)
        exchange.responseBytesArrived(now: now)
        if let meter = exchange.usageMeter {
            for part in meter.consume(buffer) { forward(part, exchange) }
        } else {
            forward(buffer, exchange)
        }
    }

    /// Sends response body data to the client, framed as the exchange's reframing says.
    func forward(_ buffer: ByteBuffer, _ exchange: Exchange) {
        if exchange.reframing == .none, var head = stagedHead, head.writableBytes >= buffer.readableBytes {
            stagedHead = nil
            head.writeImmutableBuffer(buffer)
            return context.write(wrapOutboundOut(head), promise: nil)
        }
        writeStagedHead()
        guard exchange.reframing.writesChunks else { return context.write(wrapOutboundOut(buffer), promise: nil) }
        var header = context.channel.allocator.buffer(capacity: 12)
        HTTP1Writer.writeChunkHeader(length: buffer.readableBytes, into: &header)
        context.write(wrapOutboundOut(header), promise: nil)
        context.write(wrapOutboundOut(buffer), promise: nil)
        context.write(wrapOutboundOut(context.channel.allocator.buffer(staticString: HTTP1Writer.chunkEnd)), promise: nil)
    }

    /// Writes the held response head, if any.
    func writeStagedHead() {
        guard let head = stagedHead else { return }
        stagedHead = nil
        context.write(wrapOutboundOut(head), promise: nil)
    }

    func upstreamReceivedEnd(reusable: Bool) {
        guard let exchange, let connection = state.connection, !exchange.finished else { return }
        // An event still held (its blank line never came) goes out as it is.
        let held = exchange.usageMeter?.end()
        exchange.recordEndToEnd(now: now)
        if reusable && state.requestEnded && exchange.upstreamKeepAlive {
            connection.pool.release(connection)
        } else {
            connection.pool.discard(connection)
        }
        finish(exchange, status: exchange.status)
        writeStagedHead()
        if let held { forward(held, exchange) }
        let last = exchange.reframing.writesChunks ? context.channel.allocator.buffer(staticString: HTTP1Writer.lastChunk) : nil
        self.exchange = nil
        if case .close = state.exchangeEnded(keepAlive: exchange.keepAlive && !quiescing, now: now) {
            let context = self.context!
            // (An empty write completes once everything before it is written.)
            context.writeAndFlush(wrapOutboundOut(last ?? context.channel.allocator.buffer(capacity: 0)))
                .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        if let last { context.write(wrapOutboundOut(last), promise: nil) }
        context.flush()
        exchangeEnded()
    }

    func upstreamReadComplete() {
        writeStagedHead()
        context.flush()
    }

    func upstreamWritabilityChanged(isWritable: Bool) {
        if isWritable { resumeReading() }
    }

    func upstreamClosed(error: (any Error)?) {
        guard let exchange, let connection = state.connection, !exchange.finished else { return }
        _ = state.abandon()  // (the connection is gone: nothing to close)
        if !state.responseStarted, connection.useCount > 1, !exchange.retriedStaleConnection, let replay = exchange.replay {
            // A reused keep-alive connection closed before any answer: most likely the replica
            // closed it while idle (the race every keep-alive proxy has). Nothing was answered,
            // so send the same bytes once more on another connection; not a replica failure.
            exchange.retriedStaleConnection = true
            exchange.replay = nil
            exchange.pending = CircularBuffer(replay)
            exchange.pendingBytes = exchange.replayBytes
            return acquireUpstream(exchange)
        }
        guard !state.responseStarted else { return abort(exchange, status: 502) }
        if let replica = exchange.replica, let pool = exchange.pool {
            replica.recordFailure(at: now.uptimeNanoseconds, policy: pool.configuration.ejection)
        }
        let reused = connection.useCount > 1 ? " (on a reused keep-alive connection)" : ""
        let detail = error.map { ": \($0)" } ?? ""
        let name = exchange.replica.map { "\($0.id)" } ?? "the replica"
        respond(.replicaFailed("\(name) closed the connection before answering\(reused)\(detail)"), closeAfter: mustCloseUnfinished(exchange))
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
        guard let exchange, case .connecting = state.phase, !exchange.finished, let pool = exchange.pool, let replica = exchange.replica
        else { return }
        let now = self.now
        replica.recordFailure(at: now.uptimeNanoseconds, policy: pool.configuration.ejection)
        exchange.attempts += 1
        // Nothing has been sent yet, so one retry on another replica is always safe (the least
        // loaded of the others: a hashing policy would pick the same replica again).
        if exchange.attempts < 2, let other = pool.pickOther(than: replica, now: now), pool.start(other) {
            pool.release(replica)
            exchange.replica = other
            pool.noteDestination(of: exchange, other)
            exchange.countPrefill(on: other)
            return acquireUpstream(exchange)
        }
        respond(.replicaFailed("could not connect to \(replica.id): \(error)"), closeAfter: mustCloseUnfinished(exchange))
    }
}
