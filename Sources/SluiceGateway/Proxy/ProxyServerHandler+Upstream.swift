import NIOCore
import SluiceCore
import SluiceHTTP1

extension ProxyServerHandler: UpstreamDelegate {
    var downstreamIsWritable: Bool { context.channel.isWritable }

    func upstreamReceivedHead(_ head: HTTP1Head) {
        guard let exchange, let upstream = exchange.upstream, !exchange.finished else { return }
        if head.status == 101 {
            // Sluice removes `Upgrade`, so a switch of protocols is the replica misbehaving; the
            // connection now speaks something else and cannot be reused.
            exchange.upstream = nil
            exchange.connectionPool?.discard(upstream)
            let name = exchange.replica.map { "\($0.id)" } ?? "the replica"
            respond(.replicaFailed("\(name) answered 101 Switching Protocols, which Sluice does not proxy"), closeAfter: mustCloseUnfinished(exchange))
            return
        }
        let now = NIODeadline.now()
        exchange.responseStarted = true
        exchange.status = head.status
        exchange.upstreamKeepAlive = head.keepAlive
        exchange.lastActivity = now
        exchange.replica?.recordSuccess()
        exchange.pool?.metrics.recordFirstByte(nanoseconds: Int64(now.uptimeNanoseconds - exchange.start.uptimeNanoseconds))
        if let pool = exchange.pool {
            // From the head on, the replica's silence is what is timed.
            exchange.upstreamDeadline = now + .nanoseconds(pool.configuration.timeouts.idle.nanoseconds)
            armTimer(exchange)
        }
        let untilClose = upstream.handler.parser.readsUntilClose
        if exchange.requestMinorVersion == 0 {
            // HTTP/1.0 has no chunked encoding: the body ends when the connection closes.
            if head.isChunked, !untilClose, !exchange.isHEAD, head.status != 204, head.status != 304 {
                exchange.reframing = .unchunk
                exchange.keepAlive = false
            } else if untilClose {
                exchange.keepAlive = false
            }
        } else if untilClose {
            exchange.reframing = .chunk
        } else if head.isChunked, exchange.usageMeter != nil, !exchange.isHEAD, head.status >= 200, head.status != 204, head.status != 304 {
            exchange.reframing = .rechunk
        }
        // (Content-Type is read only when something needs it: token metering, or a TTFT signal.)
        if exchange.usageMeter != nil || exchange.pool?.scaling?.configuration.signal == .ttft {
            exchange.eventStream = head.isEventStream
        }
        if let meter = exchange.usageMeter {
            // Usage-only events are dropped only where the framing allows it (not under a
            // content-length).
            meter.responseStarted(
                eventStream: exchange.eventStream, mayDrop: exchange.reframing != .none || untilClose,
                allocator: context.channel.allocator)
        }
        upstream.handler.parser.passChunkFraming = exchange.reframing == .none
        let smallBody = head.contentLength.map { $0 <= Self.coalesceLimit ? $0 : 0 } ?? 0
        let out = HeaderRewriter.downstreamResponse(
            head, clientMinorVersion: exchange.requestMinorVersion, requestID: exchange.requestID ?? "",
            keepAlive: exchange.keepAlive, reframing: exchange.reframing, extraFields: exchange.limitFields,
            allocator: context.channel.allocator,
            extraCapacity: smallBody)
        stagedHead = out
    }

    /// The pool's `latency` signal (and `ttft`'s for answers that are not streams): the whole
    /// exchange, for answers below 500 (a replica failing fast is not fast service).
    func recordEndToEnd(_ exchange: Exchange) {
        guard !exchange.signalRecorded, let scaling = exchange.pool?.scaling else { return }
        switch scaling.configuration.signal {
        case .latency, .ttft:
            exchange.signalRecorded = true
            guard exchange.status < 500 else { return }
            let now = NIODeadline.now()
            scaling.record(nanoseconds: (now - exchange.start).nanoseconds, at: now)
        case .queueWait:
            return
        }
    }

    /// Writes the held response head, if any.
    func writeStagedHead() {
        guard let head = stagedHead else { return }
        stagedHead = nil
        context.write(wrapOutboundOut(head), promise: nil)
    }

    func upstreamReceivedBody(_ buffer: ByteBuffer) {
        guard let exchange, exchange.upstream != nil, !exchange.finished else { return }
        exchange.lastActivity = .now()
        // The answer has begun: its prompt is prefilled.
        if exchange.prefillReplica != nil { countPrefill(exchange, on: nil) }
        if exchange.eventStream, !exchange.signalRecorded, let scaling = exchange.pool?.scaling, scaling.configuration.signal == .ttft {
            // A stream's first token: its TTFT.
            exchange.signalRecorded = true
            if exchange.status < 500 { scaling.record(nanoseconds: (exchange.lastActivity - exchange.start).nanoseconds, at: exchange.lastActivity) }
        }
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
            context.write(wrapOutboundOut(head), promise: nil)
            return
        }
        writeStagedHead()
        if exchange.reframing.writesChunks {
            var header = context.channel.allocator.buffer(capacity: 12)
            HTTP1Writer.writeChunkHeader(length: buffer.readableBytes, into: &header)
            context.write(wrapOutboundOut(header), promise: nil)
            context.write(wrapOutboundOut(buffer), promise: nil)
            context.write(wrapOutboundOut(context.channel.allocator.buffer(staticString: HTTP1Writer.chunkEnd)), promise: nil)
        } else {
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
    }

    func upstreamReceivedEnd(reusable: Bool) {
        guard let exchange, exchange.upstream != nil, !exchange.finished else { return }
        // An event still held (its blank line never came) goes out as it is.
        let held = exchange.usageMeter?.end()
        recordEndToEnd(exchange)
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            if reusable && exchange.requestSent && exchange.upstreamKeepAlive {
                exchange.connectionPool?.release(upstream)
            } else {
                exchange.connectionPool?.discard(upstream)
            }
        }
        finish(exchange, status: exchange.status)
        writeStagedHead()
        if let held { forward(held, exchange) }
        let last = exchange.reframing.writesChunks ? context.channel.allocator.buffer(staticString: HTTP1Writer.lastChunk) : nil
        if !exchange.keepAlive || quiescing {
            mode = .closed
            let context = self.context!
            // (An empty write completes once everything before it is written.)
            let written = context.writeAndFlush(wrapOutboundOut(last ?? context.channel.allocator.buffer(capacity: 0)))
            written.assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            return
        }
        self.exchange = nil
        mode = exchange.requestEnded ? .idle : .discarding(closeAfter: false)
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
        guard let exchange, let upstream = exchange.upstream, !exchange.finished else { return }
        exchange.upstream = nil
        if !exchange.responseStarted, upstream.useCount > 1, !exchange.retriedStaleConnection, let replay = exchange.replay {
            // A reused keep-alive connection closed before any answer: most likely the replica
            // closed it while idle (the race every keep-alive proxy has). Nothing was answered,
            // so send the same bytes once more on another connection; not a replica failure.
            exchange.retriedStaleConnection = true
            exchange.replay = nil
            exchange.pending = CircularBuffer(replay)
            exchange.pendingBytes = exchange.replayBytes
            acquireUpstream(exchange)
            return
        }
        if !exchange.responseStarted {
            if let replica = exchange.replica, let pool = exchange.pool {
                replica.recordFailure(at: NIODeadline.now().uptimeNanoseconds, policy: pool.configuration.ejection)
            }
            let reused = upstream.useCount > 1 ? " (on a reused keep-alive connection)" : ""
            let detail = error.map { ": \($0)" } ?? ""
            let name = exchange.replica.map { "\($0.id)" } ?? "the replica"
            respond(.replicaFailed("\(name) closed the connection before answering\(reused)\(detail)"), closeAfter: mustCloseUnfinished(exchange))
        } else {
            abort(exchange, status: 502)
        }
    }
}

extension ProxyServerHandler: UpstreamRequester {
    func upstreamReady(_ connection: UpstreamConnection) {
        guard let exchange, case .proxying = mode, exchange.upstream == nil, !exchange.finished else {
            connection.pool.release(connection)
            return
        }
        attach(connection, to: exchange)
    }

    func upstreamFailed(_ error: any Error) {
        guard let exchange, case .proxying = mode, exchange.upstream == nil, !exchange.finished,
              let pool = exchange.pool, let replica = exchange.replica
        else { return }
        let now = NIODeadline.now()
        replica.recordFailure(at: now.uptimeNanoseconds, policy: pool.configuration.ejection)
        exchange.attempts += 1
        // Nothing has been sent yet, so one retry on another replica is always safe (the least
        // loaded of the others: a hashing policy would pick the same replica again).
        if exchange.attempts < 2, let other = pool.pickOther(than: replica, now: now), pool.start(other) {
            pool.release(replica)
            exchange.replica = other
            pool.noteDestination(of: exchange, other)
            countPrefill(exchange, on: other)
            exchange.upstreamDeadline = nil
            acquireUpstream(exchange)
            return
        }
        respond(.replicaFailed("could not connect to \(replica.id): \(error)"), closeAfter: mustCloseUnfinished(exchange))
    }
}
