import NIOCore
import NIOHTTP1
import SluiceCore

extension ProxyServerHandler: UpstreamDelegate {
    var downstreamIsWritable: Bool { context.channel.isWritable }

    func upstreamReceived(_ part: HTTPClientResponsePart) {
        guard let exchange, exchange.upstream != nil, !exchange.finished else { return }
        switch part {
        case .head(let response):
            let now = NIODeadline.now()
            exchange.responseStarted = true
            exchange.status = Int(response.status.code)
            exchange.upstreamKeepAlive = response.isKeepAlive
            exchange.lastActivity = now
            exchange.replica?.recordSuccess()
            exchange.pool?.metrics.recordFirstByte(nanoseconds: Int64(now.uptimeNanoseconds - exchange.start.uptimeNanoseconds))
            if let pool = exchange.pool {
                // From the head on, the replica's silence is what is timed.
                exchange.upstreamDeadline = now + .nanoseconds(pool.configuration.timeouts.idle.nanoseconds)
                armTimer(exchange)
            }
            var head = response
            if exchange.requestVersion == .http1_0, !head.headers.contains(name: "content-length"), head.status.mayHaveResponseBody {
                // HTTP/1.0 has no chunked encoding: the body ends when the connection closes.
                head.headers.remove(name: "transfer-encoding")
                exchange.keepAlive = false
            }
            HeaderRewriter.downstreamResponse(
                &head, requestVersion: exchange.requestVersion, requestID: exchange.requestID ?? "",
                keepAlive: exchange.keepAlive)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            exchange.lastActivity = .now()
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            if let upstream = exchange.upstream {
                exchange.upstream = nil
                if exchange.requestSent && exchange.upstreamKeepAlive {
                    exchange.connectionPool?.release(upstream)
                } else {
                    exchange.connectionPool?.discard(upstream)
                }
            }
            finish(exchange, status: exchange.status)
            if !exchange.keepAlive || quiescing {
                mode = .closed
                let context = self.context!
                context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
                return
            }
            // State first: writing the end lets NIO's pipelining handler deliver the next
            // request synchronously, re-entering this handler.
            self.exchange = nil
            mode = exchange.requestEnded ? .idle : .discarding(closeAfter: false)
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            exchangeEnded()
        }
    }

    func upstreamReadComplete() {
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
        // Nothing has been sent yet, so one retry on another replica is always safe.
        if exchange.attempts < 2, let other = pool.pick(RoutingFacts(), now: now), other !== replica {
            replica.requestFinished()
            other.requestStarted()
            exchange.replica = other
            exchange.upstreamDeadline = nil
            acquireUpstream(exchange)
            return
        }
        respond(.replicaFailed("could not connect to \(replica.id): \(error)"), closeAfter: mustCloseUnfinished(exchange))
    }
}
