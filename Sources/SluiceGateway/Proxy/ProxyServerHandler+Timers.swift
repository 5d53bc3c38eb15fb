import NIOCore

/// Timeouts: one timer per connection, checked against the exchange's deadlines.
extension ProxyServerHandler {
    func startResponseTimer(_ exchange: Exchange) {
        guard let pool = exchange.pool else { return }
        exchange.upstreamDeadline = .now() + .nanoseconds(pool.configuration.timeouts.responseHeader.nanoseconds)
        armTimer(exchange)
    }

    /// The earliest instant at which something about this exchange must be checked: the client
    /// going quiet mid-request, or the upstream phase's deadline.
    func nextDeadline(_ exchange: Exchange) -> NIODeadline? {
        var deadline = exchange.upstreamDeadline
        // (While the request waits in the queue, its body is not read past a point: the
        // client's silence is then the gateway's doing, not timed.)
        if !exchange.requestEnded, exchange.queueTicket == nil {
            let client = exchange.lastClientActivity + .nanoseconds(runtime.limits.clientTimeout.nanoseconds)
            deadline = deadline.map { min($0, client) } ?? client
        }
        return deadline
    }

    /// Makes sure the connection's timer fires no later than the exchange's next deadline.
    ///
    /// The connection keeps one timer across exchanges and schedules only when none is due
    /// before that deadline; a timer that fires early re-evaluates and re-arms. So a keep-alive
    /// connection schedules about once per timeout period, not once per request, and body parts
    /// never touch the timer (they only move `lastActivity` / `lastClientActivity`).
    func armTimer(_ exchange: Exchange) {
        guard let deadline = nextDeadline(exchange) else { return }
        ensureTimer(firesBy: deadline)
    }

    private func ensureTimer(firesBy deadline: NIODeadline) {
        if timer != nil, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = try? context.eventLoop.assumeIsolated().scheduleCallback(at: deadline, handler: ConnectionTimer(handler: self))
    }

    func connectionTimerFired() {
        timer = nil
        timerDeadline = .distantFuture
        guard let exchange else {
            checkIdle()
            return
        }
        guard !exchange.finished else { return }
        evaluateTimeouts(exchange)
    }

    /// With no exchange in progress (idle, or dropping the rest of an answered request), the
    /// connection may stay `keepalive_timeout` without a complete new request head.
    func armIdleTimer() {
        guard exchange == nil, !isClosed else { return }
        ensureTimer(firesBy: idleSince + .nanoseconds(runtime.limits.keepaliveTimeout.nanoseconds))
    }

    func checkIdle() {
        guard exchange == nil, !isClosed else { return }
        if NIODeadline.now() - idleSince >= .nanoseconds(runtime.limits.keepaliveTimeout.nanoseconds) {
            mode = .closed
            context.close(promise: nil)
        } else {
            armIdleTimer()
        }
    }

    /// Checks every deadline of the exchange against now; acts on the first passed, else re-arms.
    func evaluateTimeouts(_ exchange: Exchange) {
        let now = NIODeadline.now()
        let limits = runtime.limits
        if !exchange.requestEnded, exchange.queueTicket == nil, now - exchange.lastClientActivity >= .nanoseconds(limits.clientTimeout.nanoseconds) {
            respond(.clientTimeout(after: "\(limits.clientTimeout)"), closeAfter: true)
            return
        }
        guard let pool = exchange.pool, var deadline = exchange.upstreamDeadline else {
            armTimer(exchange)
            return
        }
        let timeouts = pool.configuration.timeouts
        if exchange.responseStarted {
            deadline = exchange.lastActivity + .nanoseconds(timeouts.idle.nanoseconds)
            exchange.upstreamDeadline = deadline
        }
        guard now >= deadline else {
            armTimer(exchange)
            return
        }
        if exchange.queueTicket != nil {
            queueTimedOut(exchange)
            return
        }
        exchange.upstreamDeadline = nil
        if exchange.upstream == nil {
            exchange.connectionPool?.cancel(self)
            respond(.replicaTimeout(after: "the connect timeout (\(timeouts.connect)); the connection pool may be full"), closeAfter: mustCloseUnfinished(exchange))
        } else if !exchange.responseStarted {
            exchange.replica?.recordFailure(at: now.uptimeNanoseconds, policy: pool.configuration.ejection)
            respond(.replicaTimeout(after: "the response_header timeout (\(timeouts.responseHeader))"), closeAfter: mustCloseUnfinished(exchange))
        } else {
            abort(exchange, status: 504)
        }
    }
}

private struct ConnectionTimer: NIOScheduledCallbackHandler {
    let handler: ProxyServerHandler

    func handleScheduledCallback(eventLoop: some EventLoop) {
        handler.connectionTimerFired()
    }
}
