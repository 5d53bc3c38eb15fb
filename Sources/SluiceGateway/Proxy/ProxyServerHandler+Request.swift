import NIOCore
import SluiceConfig
import SluiceCore
import SluiceHTTP1

/// Reading a request, choosing its pool and replica, and sending it upstream.
extension ProxyServerHandler {
    func receivedHead(_ head: HTTP1Head) {
        guard case .idle = mode else { return }
        let exchange = Exchange(head: head, now: .now())
        if quiescing { exchange.keepAlive = false }
        self.exchange = exchange
        let limits = runtime.limits
        if let length = head.contentLength, length > limits.maxBodyBytes {
            // A small rest is read and dropped (the connection stays); a large one is cut.
            respond(.bodyTooLarge(limit: limits.maxBodyBytes), closeAfter: mustCloseUnfinished(exchange))
            return
        }
        if let admission = runtime.admission {
            let tenant = admission.tenant(for: head)
            if admission.decidesShared(tenant), let shared = admission.shared {
                // The body waits unparsed (reads stop past `pendingLimit`) until Redis answers.
                mode = .admitting
                let limiter = upstreams.redisLimiter(shared)
                admission.admitShared(tenant: tenant, now: exchange.start.uptimeNanoseconds, limiter: limiter)
                    .assumeIsolated().whenSuccess { outcome in self.decided(outcome, for: exchange, head: head) }
                return
            }
            guard admitted(admission.admit(tenant: tenant, now: exchange.start.uptimeNanoseconds), exchange) else { return }
        }
        route(exchange, head: head)
    }

    /// Applies an admission outcome; false when the request was refused (and answered).
    func admitted(_ outcome: Admission.Outcome, _ exchange: Exchange) -> Bool {
        switch outcome {
        case .admitted(let tenant, let windows):
            exchange.tenant = tenant
            exchange.limitWindows = windows
            exchange.limitFields = windows.isEmpty ? [] : RateLimitHeaders.fields(windows)
            return true
        case .refused(let refusal, let fields):
            // Decided on the head alone: no pool, replica or body is touched.
            respond(refusal.error, closeAfter: mustCloseUnfinished(exchange), extraFields: fields, body: refusal.body)
            return false
        }
    }

    /// The shared backend's answer, on this loop: the request goes on (or is refused), then
    /// the body that waited is parsed.
    func decided(_ outcome: Admission.Outcome, for exchange: Exchange, head: HTTP1Head) {
        guard self.exchange === exchange, !exchange.finished, case .admitting = mode else {
            // The client left meanwhile: give back what admission took.
            if case .admitted(let tenant, _) = outcome { runtime.admission?.release(tenant: tenant) }
            return
        }
        mode = .idle
        if admitted(outcome, exchange) { route(exchange, head: head) }
        parseAvailable()
        resumeReading()
    }

    /// Chooses the pool (by path, or by the body's model) and goes on from there.
    func route(_ exchange: Exchange, head: HTTP1Head) {
        let limits = runtime.limits
        switch runtime.routeTable.route(path: exchange.path[...]) {
        case .pool(let index):
            let pool = runtime.pools[index]
            if admissionNeedsBody(exchange, head: head) || batchingNeedsBody(exchange, head: head, pool: pool) {
                // Token and per-model limits, and batching, read the body (capped) before it goes on.
                exchange.keyPool = index
                inspect(exchange, head: head)
                return
            }
            switch RoutingKeys.fromHead(head, sources: pool.configuration.routing.key) {
            case .key(let key):
                // Forwarded as received: chunk framing included.
                parser.passChunkFraming = true
                begin(exchange, head: head, pool: pool, key: key)
            case .needsBody:
                if let length = head.contentLength, length > limits.maxInspectBytes {
                    // Too large to hold for a key: routed without one (the policy's no-key
                    // branch), streamed as any other body.
                    parser.passChunkFraming = true
                    begin(exchange, head: head, pool: pool, key: nil)
                } else {
                    // The key is in the body: read it (capped) first, as for model routing.
                    exchange.keyPool = index
                    inspect(exchange, head: head)
                }
            }
        case .needsModel:
            inspect(exchange, head: head)
        case .noRoute:
            respond(.noRoute(path: exchange.path, model: nil), closeAfter: false)
        }
    }

    /// `Expect: 100-continue` is answered by the gateway once it has accepted the request (the
    /// header is not forwarded: the body may have to be read before any replica is chosen).
    func sendContinueIfExpected(_ exchange: Exchange) {
        guard exchange.expectsContinue, !exchange.requestEnded else { return }
        exchange.expectsContinue = false
        var out = context.channel.allocator.buffer(capacity: 32)
        out.writeStaticString(exchange.requestMinorVersion == 0 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n")
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    func receivedBody(_ buffer: ByteBuffer) {
        guard let exchange else { return }
        switch mode {
        case .proxying, .inspecting: break
        case .idle, .admitting, .batching, .discarding, .closed: return
        }
        let limits = runtime.limits
        exchange.bodyBytes = parser.bodyBytes
        exchange.lastClientActivity = .now()
        if exchange.bodyBytes > limits.maxBodyBytes {
            respond(.bodyTooLarge(limit: limits.maxBodyBytes), closeAfter: true)
            return
        }
        if case .inspecting = mode {
            if exchange.bodyBytes > limits.maxInspectBytes {
                respond(.inspectTooLarge(limit: limits.maxInspectBytes), closeAfter: true)
            } else {
                var buffer = buffer
                exchange.inspectBuffer?.writeBuffer(&buffer)
            }
            return
        }
        if let upstream = exchange.upstream {
            upstream.handler.write(buffer)
            exchange.wroteUpstreamSinceFlush = true
            remember(buffer, in: exchange)
        } else {
            exchange.pending.append(buffer)
            exchange.pendingBytes += buffer.readableBytes
        }
    }

    func receivedEnd() {
        switch mode {
        case .discarding(let closeAfter):
            exchange = nil
            if closeAfter {
                mode = .closed
                context.close(promise: nil)
            } else {
                mode = .idle
                exchangeEnded()
            }
        case .inspecting:
            guard let exchange else { return }
            exchange.requestEnded = true
            routeByModel(exchange)
        case .proxying:
            guard let exchange else { return }
            exchange.requestEnded = true
            if let upstream = exchange.upstream {
                flushUpstream(upstream, exchange)
                exchange.requestSent = true
                if !exchange.responseStarted { startResponseTimer(exchange) } else { armTimer(exchange) }
            }
        case .idle, .admitting, .batching, .closed:
            break
        }
    }

    /// Commits the exchange to a pool: picks a replica, takes a slot on it (or waits in the
    /// pool's queue for one, when the pool caps requests per replica) and goes on.
    func begin(_ exchange: Exchange, head: HTTP1Head, pool: PoolRuntime, key: String? = nil) {
        exchange.pool = pool
        exchange.routingKey = key
        let now = NIODeadline.now()
        pool.scaling?.recordArrival()
        let facts = RoutingFacts(key: key, random: upstreams.random.next(), prompt: exchange.prompt)
        guard let choice = pool.pick(facts, now: now) else {
            respond(.noHealthyReplica(pool: pool.name), closeAfter: false)
            return
        }
        let picked = choice.replica
        exchange.picked = (picked, facts)
        exchange.pickedReason = choice.reason
        // Pending prefill ends with the answer's first byte, which only a stream sends before
        // the whole answer is ready: other answers are not counted.
        exchange.uncachedBytes = exchange.promptStreams ? choice.uncachedBytes : 0
        guard let gate = pool.gate else {
            picked.requestStarted()
            send(exchange, head: head, to: picked)
            return
        }
        let tenant = exchange.tenant ?? 0
        let priority = exchange.tenant.flatMap { runtime.admission?.tenants[$0].limits.priority } ?? 0
        let bound = NIOLoopBound((self, exchange), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let entry = gate.enter(
            preferred: picked, snapshot: pool.snapshot, tenant: tenant, priority: priority, now: now.uptimeNanoseconds,
            deliver: { replica in loop.execute { bound.value.0.leftQueue(bound.value.1, with: replica) } })
        switch entry {
        case .slot(let replica):
            send(exchange, head: head, to: replica)
        case .queued(let ticket):
            // The body gathers in `pending` meanwhile (reads stop past `pendingLimit`).
            exchange.queueTicket = ticket
            exchange.queuedAt = now
            var held = head
            held.bytes = context.channel.allocator.buffer(buffer: head.bytes)
            exchange.heldHead = held
            mode = .proxying
            exchange.upstreamDeadline = now + gate.timeout
            armTimer(exchange)
        case .full:
            respond(.queueFull(pool: pool.name, waiting: gate.waiting), closeAfter: mustCloseUnfinished(exchange),
                    extraFields: exchange.limitFields + [("retry-after", "1")])
        }
    }

    /// A queued request's slot arrived (on this loop): it goes on to that replica, unless it was
    /// answered or its client left meanwhile, in which case the slot goes back.
    func leftQueue(_ exchange: Exchange, with replica: Replica) {
        guard self.exchange === exchange, !exchange.finished, exchange.queueTicket != nil, let head = exchange.heldHead else {
            exchange.pool?.release(replica)
            return
        }
        exchange.queueTicket = nil
        exchange.heldHead = nil
        exchange.upstreamDeadline = nil
        // The client's silence is timed again from here (not while it waited on the gateway).
        exchange.lastClientActivity = .now()
        send(exchange, head: head, to: replica)
    }

    /// A queued request's deadline passed: 503, unless its slot is already on the way.
    func queueTimedOut(_ exchange: Exchange) {
        guard let ticket = exchange.queueTicket, let pool = exchange.pool, let gate = pool.gate else { return }
        // A replica that came back (an ejection that ran out) frees slots no one announced:
        // look once more before giving up.
        gate.dispatch(pool.snapshot)
        guard gate.leave(ticket, timedOut: true) else { return }
        exchange.queueTicket = nil
        respond(.queueTimeout(pool: pool.name, after: "\(pool.configuration.queue.timeout)"), closeAfter: mustCloseUnfinished(exchange),
                extraFields: exchange.limitFields + [("retry-after", "1")])
    }

    /// Sends the request to `replica`, whose slot (in-flight count) it now holds.
    func send(_ exchange: Exchange, head: HTTP1Head, to replica: Replica) {
        exchange.replica = replica
        exchange.pool?.noteDestination(of: exchange, replica)
        countPrefill(exchange, on: replica)
        if let scaling = exchange.pool?.scaling, scaling.configuration.signal == .queueWait {
            let now = NIODeadline.now()
            scaling.record(nanoseconds: exchange.queuedAt.map { (now - $0).nanoseconds } ?? 0, at: now)
        }
        // Room for a small body too: the upstream handler copies it behind the head (one write).
        let length = exchange.rewrittenLength ?? exchange.contentLength
        let smallBody = length.map { $0 <= Self.coalesceLimit ? $0 : 0 } ?? 0
        let (out, requestID) = HeaderRewriter.upstreamRequest(
            head, host: replica.id.description, clientAddress: clientAddress, random: &upstreams.random,
            allocator: context.channel.allocator, extraCapacity: smallBody, contentLength: exchange.rewrittenLength)
        exchange.requestID = requestID
        exchange.upstreamHead = out
        mode = .proxying
        sendContinueIfExpected(exchange)
        acquireUpstream(exchange)
    }

    func acquireUpstream(_ exchange: Exchange) {
        guard let pool = exchange.pool, let replica = exchange.replica else { return }
        let connectionPool = upstreams.connectionPool(for: replica.id, in: pool)
        exchange.connectionPool = connectionPool
        if let connection = connectionPool.acquire(for: self) {
            attach(connection, to: exchange)
        } else if self.exchange === exchange, !exchange.finished, exchange.upstream == nil {
            // (A connect that fails at once is reported inside `acquire`, which may already have
            // answered or retried this exchange: hence the checks.) The wait covers a full pool;
            // the TCP connect has its own timeout.
            let wait = TimeAmount.nanoseconds(pool.configuration.timeouts.connect.nanoseconds) + .milliseconds(50)
            exchange.upstreamDeadline = .now() + wait
            armTimer(exchange)
        }
    }

    /// Sends the head and any parts that arrived while waiting.
    func attach(_ connection: UpstreamConnection, to exchange: Exchange) {
        exchange.upstreamDeadline = nil
        exchange.upstream = connection
        exchange.requestSent = false
        connection.handler.delegate = self
        connection.handler.expectResponse(toHEAD: exchange.isHEAD)
        let reused = connection.useCount > 1 && !exchange.retriedStaleConnection
        exchange.replay = reused ? [] : nil
        exchange.replayBytes = 0
        if let head = exchange.upstreamHead { connection.handler.write(head) }
        while let buffer = exchange.pending.popFirst() {
            connection.handler.write(buffer)
            remember(buffer, in: exchange)
        }
        exchange.pendingBytes = 0
        flushUpstream(connection, exchange)
        if exchange.requestEnded {
            exchange.requestSent = true
            startResponseTimer(exchange)
        } else {
            armTimer(exchange)
        }
        if connection.isWritable { resumeReading() }
    }

    /// Keeps written body bytes for a possible resend (see `Exchange.replay`), up to 64 KiB.
    func remember(_ buffer: ByteBuffer, in exchange: Exchange) {
        guard exchange.replay != nil else { return }
        exchange.replayBytes += buffer.readableBytes
        if exchange.replayBytes > Self.pendingLimit {
            exchange.replay = nil
        } else {
            exchange.replay!.append(buffer)
        }
    }

    /// Flushes now, or at the end of the current read burst when inside one.
    func flushUpstream(_ connection: UpstreamConnection, _ exchange: Exchange) {
        if inReadBurst {
            exchange.wroteUpstreamSinceFlush = true
        } else {
            exchange.wroteUpstreamSinceFlush = false
            connection.handler.flush()
        }
    }

    /// Closes the exchange's upstream side, if any, without answering the client.
    func abandonUpstream(_ exchange: Exchange) {
        exchange.upstreamDeadline = nil
        leaveBatch(exchange)
        if let ticket = exchange.queueTicket {
            // Still waiting for a slot: out of the queue (or, if the slot is on its way, it is
            // given back when it arrives).
            exchange.queueTicket = nil
            exchange.pool?.gate?.leave(ticket)
            return
        }
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            exchange.connectionPool?.discard(upstream)
        } else if case .proxying = mode, let connectionPool = exchange.connectionPool {
            connectionPool.cancel(self)
        }
    }

    /// Settles in-flight counts and metrics exactly once per exchange.
    func finish(_ exchange: Exchange, status: Int) {
        guard !exchange.finished else { return }
        exchange.finished = true
        countPrefill(exchange, on: nil)
        exchange.upstreamDeadline = nil
        if let replica = exchange.replica {
            exchange.replica = nil
            if let pool = exchange.pool { pool.release(replica) } else { replica.requestFinished() }
        }
        settleTokens(exchange, status: status)
        if let tenant = exchange.tenant {
            exchange.tenant = nil
            runtime.admission?.release(tenant: tenant)
        }
        let metrics = exchange.pool?.metrics ?? runtime.metrics.unrouted
        metrics.recordResponse(status: status, nanoseconds: Int64(NIODeadline.now().uptimeNanoseconds - exchange.start.uptimeNanoseconds))
    }
}
