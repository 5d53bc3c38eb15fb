import NIOCore
import SluiceConfig
import SluiceCore
import SluiceHTTP1

/// A request's way in: head → admit(head) → route → [read the body → admit(body)] → batch, or
/// pick → queue → connect → send. Each step either goes on at once or leaves the request in one
/// of the state machine's waits, which an event ends.
extension ProxyServerHandler {
    func receivedHead(_ head: HTTP1Head) {
        guard state.isIdle else { return }
        let now = self.now
        let exchange = Exchange(head: head, now: now)
        if quiescing { exchange.keepAlive = false }
        self.exchange = exchange
        if let tracer = runtime.tracer { exchange.trace = tracer.start(head, path: exchange.path, at: now, random: upstreams.random.next()) }
        state.requestStarted(now: now)
        runtime.metrics.requestsByProtocol[clientProtocol.rawValue].increment()
        if let length = head.contentLength, length > runtime.limits.maxBodyBytes {
            // A small rest is read and dropped (the connection stays); a large one is cut.
            return respond(.bodyTooLarge(limit: runtime.limits.maxBodyBytes), closeAfter: mustCloseUnfinished(exchange))
        }
        guard let admission = runtime.admission else { return route(exchange, head: head) }
        let pending = HeadAdmission.decide(
            head, exchange, admission: admission, now: now, limiter: { self.upstreams.redisLimiter($0) },
            stillWanted: { self.exchange === exchange && !exchange.finished && self.state.isAdmitting }
        ) { verdict, later in
            switch verdict {
            case .admitted:
                exchange.trace?.admitted(tenant: exchange.tenant.flatMap { self.runtime.admission?.tenants[$0].name }, at: self.now)
                self.route(exchange, head: head)
            case .refused(let error, let fields, let body): self.respond(error, closeAfter: self.mustCloseUnfinished(exchange), extraFields: fields, body: body)
            }
            // The body that waited for the shared backend is parsed now.
            if later { self.parseAvailable(); self.resumeReading() }
        }
        // Until the shared backend answers, the body waits unparsed (reads stop past `pendingLimit`).
        if pending { armTimer() }
    }

    /// Sends the request to its pool at once, or holds its body to read it first (`HeadRoute`).
    func route(_ exchange: Exchange, head: HTTP1Head) {
        switch HeadRoute(head, exchange, runtime: runtime) {
        case .begin(let pool, let key):
            // Forwarded as received: chunk framing included.
            parser.passChunkFraming = true
            begin(exchange, head: head, pool: pool, key: key)
        case .hold(let pool):
            // The body is held (data, framing removed) in one buffer sized for it when its length
            // is known: one copy, no regrowth, and the channel's receive buffer is not pinned
            // while the request waits (in a queue or a batch).
            exchange.keyPool = pool
            parser.passChunkFraming = false
            let body = context.channel.allocator.buffer(capacity: min(head.contentLength ?? 0, runtime.limits.maxInspectBytes))
            state.read(head.detached(context.channel.allocator), into: body)
            sendContinueIfExpected(exchange)
            armTimer()
        case .noRoute:
            respond(.noRoute(path: exchange.path, model: nil), closeAfter: false)
        }
    }

    /// `Expect: 100-continue` is answered by the gateway once it has accepted the request (the
    /// header is not forwarded: the body may have to be read before any replica is chosen).
    func sendContinueIfExpected(_ exchange: Exchange) {
        guard let line = exchange.continueLine(requestEnded: state.requestEnded, context.channel.allocator) else { return }
        context.writeAndFlush(wrapOutboundOut(line), promise: nil)
    }

    func receivedBody(_ buffer: ByteBuffer) {
        guard let exchange else { return }
        let limits = runtime.limits
        exchange.bodyBytes = parser.bodyBytes
        if exchange.bodyBytes > limits.maxBodyBytes {
            return respond(.bodyTooLarge(limit: limits.maxBodyBytes), closeAfter: true)
        }
        switch state.bodyReceived(buffer, now: now, maxReadBytes: limits.maxInspectBytes) {
        case .held, .drop: break
        case .close: close()
        case .tooLargeToRead:
            respond(.inspectTooLarge(limit: limits.maxInspectBytes), closeAfter: true)
        case .write(let connection):
            connection.handler.write(buffer)
            flush.wrote(connection)
            exchange.remember(buffer)
        case .pend:
            exchange.pend(buffer)
        }
    }

    func receivedEnd() {
        switch state.requestEndReceived(now: now) {
        case .none:
            break
        case .idle:
            exchange = nil
            exchangeEnded()
        case .decide(let head, let body):
            if let exchange { inspect(exchange, head: head, body: body) }
        case .sent(let connection):
            flush.wrote(connection)
            armTimer()
        }
    }

    /// Commits the exchange to a pool: picks a replica, takes a slot on it (or waits in the
    /// pool's queue for one, when the pool caps requests per replica) and goes on. `held` is
    /// the body read whole first (`HeadRoute.hold`); it is pended here, after the overflow
    /// decision, so a provider's name for the model can still be written into it.
    func begin(_ exchange: Exchange, head: HTTP1Head, pool: PoolRuntime, key: String?, held: ByteBuffer? = nil) {
        var (pool, held) = (pool, held)
        if let route = runtime.overflows[pool.index], route.applies(to: exchange.tenant, in: pool, now: now.uptimeNanoseconds) {
            // Saturated, and this tenant may overflow: to the hosted provider instead.
            (pool, held) = route.divert(exchange, body: held, runtime: runtime, allocator: context.channel.allocator)
        }
        if let held { exchange.pendRead(held, chunked: head.isChunked, allocator: context.channel.allocator) }
        exchange.pool = pool
        exchange.routingKey = key
        let now = self.now
        let priority = exchange.tenant.flatMap { runtime.admission?.tenants[$0].limits.priority } ?? 0
        let deliver = pool.gate == nil ? nil : exchange.callback(to: self, on: context.eventLoop) { $0.leftQueue($1, with: $2) }
        switch pool.dispatch(exchange, random: upstreams.random.next(), priority: priority, now: now, deliver: deliver) {
        case .slot(let replica):
            send(exchange, head: head, to: replica, queuedSince: nil)
        case .queued(let ticket, let timeout):
            exchange.trace?.event("queued", at: now)
            // The body gathers in `pending` meanwhile (reads stop past `pendingLimit`).
            state.queued(head.detached(context.channel.allocator), ticket: ticket, now: now, deadline: now + timeout)
            armTimer()
        case .full(let waiting):
            respond(.queueFull(pool: pool.name, waiting: waiting), closeAfter: mustCloseUnfinished(exchange),
                    extraFields: exchange.limitFields + [("retry-after", "1")])
        case .noReplica:
            respond(.noHealthyReplica(pool: pool.name), closeAfter: false)
        }
    }

    /// A queued request's slot arrived (on this loop): it goes on to that replica, unless it was
    /// answered or its client left meanwhile, in which case the slot goes back.
    func leftQueue(_ exchange: Exchange, with replica: Replica) {
        guard self.exchange === exchange, let (head, since) = state.slotArrived(now: now) else {
            return exchange.pool?.release(replica) ?? ()
        }
        exchange.trace?.event("slot", at: now)
        send(exchange, head: head, to: replica, queuedSince: since)
    }

    /// Sends the request to `replica`, whose slot (in-flight count) it now holds.
    func send(_ exchange: Exchange, head: HTTP1Head, to replica: Replica, queuedSince: NIODeadline?) {
        let traceparent = exchange.trace?.sending(exchange, to: replica, at: now)
        exchange.sending(
            head, to: replica, queuedSince: queuedSince, now: self.now, clientAddress: clientAddress, https: clientProtocol.isTLS, random: &upstreams.random,
            allocator: context.channel.allocator, traceparent: traceparent)
        sendContinueIfExpected(exchange)
        acquireUpstream(exchange)
    }

    /// Borrows a connection to the exchange's replica, or waits for one (a full pool; the TCP
    /// connect has its own timeout), after `delay` (a retry's backoff, which counts as connecting).
    func acquireUpstream(_ exchange: Exchange, after delay: TimeAmount = .zero) {
        guard let pool = exchange.pool, let replica = exchange.replica else { return }
        if delay <= .zero {
            let connectionPool = upstreams.connectionPool(for: replica.id, in: pool)
            exchange.connectionPool = connectionPool
            // (`acquire` never calls back before it returns.)
            if let connection = connectionPool.acquire(for: self) { return attach(connection, to: exchange) }
        } else {
            let resume = exchange.callback(to: self, on: context.eventLoop) { (handler: ProxyServerHandler, exchange: Exchange, _: Bool) in
                if handler.exchange === exchange, case .connecting = handler.state.phase { handler.acquireUpstream(exchange) }
            }
            context.eventLoop.scheduleTask(in: delay) { resume(true) }
        }
        state.connecting(until: now + delay + .nanoseconds(pool.configuration.timeouts.connect.nanoseconds) + .milliseconds(50))
        armTimer()
    }

    /// Sends the head and any parts that arrived while waiting.
    func attach(_ connection: UpstreamConnection, to exchange: Exchange) {
        guard let pool = exchange.pool else { return }
        _ = state.attached(connection, now: now, timeouts: pool.configuration.timeouts)
        connection.handler.delegate = self
        exchange.write(to: connection)
        flush.wrote(connection)
        armTimer()
        if connection.isWritable { resumeReading() }
    }
}
