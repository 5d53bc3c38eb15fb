import NIOCore
import NIOHTTP1
import SluiceHTTP1

/// The answers Sluice gives itself (errors), and ending a connection when it must.
extension ProxyServerHandler {
    /// Answers the client with a gateway error, if no response has started, and settles the exchange.
    /// - Parameter body: `error`'s JSON body when already rendered.
    func respond(_ error: GatewayError, closeAfter requested: Bool, extraFields: [(String, String)] = [], body rendered: String? = nil) {
        answer(status: error.status, body: rendered ?? error.jsonBody(), closeAfter: requested, extraFields: extraFields)
    }

    /// Answers the client with a JSON body the gateway made (an error, or a batch member's part
    /// of its batch's answer), if no response has started, and settles the exchange.
    func answer(status httpStatus: HTTPResponseStatus, body: String, closeAfter requested: Bool, extraFields: [(String, String)] = []) {
        let exchange = self.exchange
        if let exchange {
            if exchange.responseStarted {
                abort(exchange, status: Int(httpStatus.code))
                return
            }
            abandonUpstream(exchange)
        }
        let closeAfter = requested || !(exchange?.keepAlive ?? false) || quiescing
        var fields = [("content-type", "application/json"), ("content-length", String(body.utf8.count))]
        if let requestID = exchange?.requestID {
            fields.append(("x-request-id", requestID))
        }
        fields += extraFields.isEmpty ? (exchange?.limitFields ?? []) : extraFields
        let minorVersion = exchange?.requestMinorVersion ?? 1
        if closeAfter {
            fields.append(("connection", "close"))
        } else if minorVersion == 0 {
            fields.append(("connection", "keep-alive"))
        }
        var out = context.channel.allocator.buffer(capacity: 256 + body.utf8.count)
        HTTP1Writer.writeResponseHead(
            status: Int(httpStatus.code), reason: httpStatus.reasonPhrase, minorVersion: minorVersion,
            fields: fields, into: &out)
        out.writeString(body)
        let status = Int(httpStatus.code)
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
            closeLingering(after: context.writeAndFlush(wrapOutboundOut(out)))
            return
        }
        self.exchange = nil
        mode = (exchange?.requestEnded ?? true) ? .idle : .discarding(closeAfter: false)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        exchangeEnded()
    }

    /// After an early answer, whether the rest of the request is better cut (close) than read and
    /// dropped: yes when its size is unknown (chunked) or over 1 MiB still to come. Reading a
    /// small rest keeps the connection, and clients that write their whole request before
    /// reading do not fail on a closed socket.
    func mustCloseUnfinished(_ exchange: Exchange) -> Bool {
        guard !exchange.requestEnded else { return false }
        guard let length = exchange.contentLength else { return true }
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
        stagedHead = nil
        mode = .closed
        context.close(promise: nil)
    }
}
