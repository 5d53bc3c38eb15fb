import NIOCore
import NIOHTTP1

/// The answers Sluice gives itself (errors), and ending a connection when it must.
extension ProxyServerHandler {
    /// Answers the client with a gateway error, if no response has started, and settles the exchange.
    func respond(_ error: GatewayError, closeAfter requested: Bool) {
        let exchange = self.exchange
        if let exchange {
            if exchange.responseStarted {
                abort(exchange, status: Int(error.status.code))
                return
            }
            abandonUpstream(exchange)
        }
        let closeAfter = requested || !(exchange?.keepAlive ?? false) || quiescing
        let body = context.channel.allocator.buffer(string: error.jsonBody())
        var headers = HTTPHeaders()
        headers.reserveCapacity(4)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.readableBytes))
        if let requestID = exchange?.requestID {
            headers.add(name: "x-request-id", value: requestID)
        }
        if closeAfter {
            headers.add(name: "connection", value: "close")
        }
        let head = HTTPResponseHead(version: exchange?.requestVersion ?? .http1_1, status: error.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let status = Int(error.status.code)
        if let exchange {
            exchange.responseStarted = true
            exchange.status = status
            finish(exchange, status: status)
        } else {
            runtime.metrics.unrouted.recordResponse(status: status, nanoseconds: 0)
        }
        if closeAfter {
            mode = .closed
            self.exchange = nil
            closeLingering(after: context.writeAndFlush(wrapOutboundOut(.end(nil))))
            return
        }
        // State first, as in `upstreamReceived(.end)`: the write may deliver the next request.
        self.exchange = nil
        mode = (exchange?.requestEnded ?? true) ? .idle : .discarding(closeAfter: false)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        exchangeEnded()
    }

    /// After an early answer, whether the rest of the request is better cut (close) than read and
    /// dropped: yes when its size is unknown (chunked) or over 1 MiB still to come. Reading a
    /// small rest keeps the connection, and clients that write their whole request before
    /// reading do not fail on a closed socket.
    func mustCloseUnfinished(_ exchange: Exchange) -> Bool {
        guard !exchange.requestEnded else { return false }
        guard let length = exchange.head.headers.first(name: "content-length").flatMap({ Int($0) }) else { return true }
        return length - exchange.bodyBytes > 1 << 20
    }

    /// Closes after an answer that may have come before the client finished sending (413, 431,
    /// 408): first only our sending side, then reads and drops what the client still sends for
    /// up to 2 s. Closing at once with unread bytes makes the kernel send a reset, and many
    /// clients then report "connection reset" instead of the answer (nginx's lingering close).
    func closeLingering(after written: EventLoopFuture<Void>) {
        let context = self.context!
        written.assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) {
                context.close(promise: nil)
            }
        }
    }

    /// Ends an exchange whose response has started: HTTP/1.1 can only signal that by closing.
    func abort(_ exchange: Exchange, status: Int) {
        abandonUpstream(exchange)
        finish(exchange, status: status)
        self.exchange = nil
        mode = .closed
        context.close(promise: nil)
    }
}
