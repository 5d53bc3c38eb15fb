import NIOCore
import SluiceCore

/// Choosing a replica for an exchange and taking a slot on it: the policy picks (and the
/// exchange remembers what from and why, to tell the policy if the request goes elsewhere), then
/// the pool's gate gives the slot at once, queues the request, or refuses it.
extension PoolRuntime {
    enum Dispatch {
        /// A slot on this replica is taken.
        case slot(Replica)
        /// Waiting in the queue until `timeout` has passed; the slot is delivered later.
        case queued(ticket: UInt64, timeout: TimeAmount)
        case full(waiting: Int)
        case noReplica
    }

    /// A queued request's wait ran out. A replica that came back (an ejection that ran out) frees
    /// slots no one announced, so the queue is served once more first; false when a slot is on
    /// its way to the request after all.
    func queueWaitExpired(_ ticket: UInt64) -> Bool {
        guard let gate else { return false }
        gate.dispatch(snapshot)
        return gate.leave(ticket, timedOut: true)
    }

    func dispatch(
        _ exchange: Exchange, random: UInt64, priority: Int, now: NIODeadline, deliver: (@Sendable (Replica) -> Void)?
    ) -> Dispatch {
        scaling?.recordArrival()
        let cost = fairnessCost(exchange)
        let facts = RoutingFacts(key: exchange.routingKey, random: random, prompt: exchange.prompt)
        guard let choice = pick(facts, now: now) else {
            // No replica in rotation: where there is a queue (every replica out, or a pool
            // scaled to zero), the request waits for one; the scale signal counts it.
            guard let gate, let deliver else { return .noReplica }
            return entered(
                gate.enter(preferred: nil, snapshot: snapshot, tenant: exchange.tenant ?? 0, priority: priority, now: now.uptimeNanoseconds, cost: cost, deliver: deliver),
                gate)
        }
        exchange.picked = (choice.replica, facts)
        exchange.pickedReason = choice.reason
        // Pending prefill ends with the answer's first byte, which only a stream sends before
        // the whole answer is ready: other answers are not counted.
        exchange.uncachedBytes = exchange.promptStreams ? choice.uncachedBytes : 0
        guard let gate, let deliver else {
            choice.replica.requestStarted()
            return .slot(choice.replica)
        }
        let entry = gate.enter(
            preferred: choice.replica, snapshot: snapshot, tenant: exchange.tenant ?? 0, priority: priority, now: now.uptimeNanoseconds,
            cost: cost, deliver: deliver)
        return entered(entry, gate)
    }

    /// What a request is expected to cost its tenant under `queue.fairness: tokens`: its prompt's
    /// tokens, estimated from its body's bytes as the token limits do (`RoutingKeys.bytesPerToken`),
    /// corrected by the usage its replica reports when it ends (`Exchange.settle`). 1 otherwise.
    private func fairnessCost(_ exchange: Exchange) -> Int {
        guard gate?.fairness == .tokens else { return 1 }
        let cost = max(1, (exchange.contentLength ?? exchange.bodyBytes) / RoutingKeys.bytesPerToken)
        exchange.fairnessCost = cost
        if exchange.usageMeter == nil { exchange.usageMeter = UsageMeter(strip: false) }
        return cost
    }

    private func entered(_ entry: PoolGate.Entry, _ gate: PoolGate) -> Dispatch {
        switch entry {
        case .slot(let replica): .slot(replica)
        case .queued(let ticket): .queued(ticket: ticket, timeout: gate.timeout)
        case .full: .full(waiting: gate.waiting)
        }
    }

    /// After `failed` failed the exchange (no connection, or closed before answering): the wait
    /// before it goes again, or nil when it does not (`RetryPolicy`: a request a replica may
    /// have read goes again only when repeating it changes nothing; within the tries and the
    /// budget; to the least loaded other replica with a free slot, its slot moving there, or, when
    /// `orSame` (a connection closed, perhaps only the keep-alive race), to the same one if it
    /// is still in rotation).
    func retry(_ exchange: Exchange, failed: Replica, orSame: Bool, now: NIODeadline, random: UInt64) -> TimeAmount? {
        let policy = configuration.retry
        guard policy.mayRetry(tries: exchange.retries + 1, sent: exchange.sent, idempotentMethod: exchange.idempotentMethod),
              exchange.retrying || policy.withinBudget(retrying: retriesInFlight.load(ordering: .relaxed), active: poolLoad.inFlight),
              exchange.prepareRetry()
        else { return nil }
        if let other = pickOther(than: failed, now: now), start(other) {
            release(failed)
            exchange.replica = other
            noteDestination(of: exchange, other)
            exchange.countPrefill(on: other)
        } else if !orSame || !failed.isAvailable(at: now.uptimeNanoseconds) {
            return nil
        }
        exchange.replica?.requestSent()
        exchange.retries += 1
        if !exchange.retrying {
            exchange.retrying = true
            retriesInFlight.wrappingAdd(1, ordering: .relaxed)
        }
        metrics.retries.increment()
        return .nanoseconds(Int64(policy.delay(retry: exchange.retries, random: random)))
    }

    /// An exchange that held a budgeted retry was settled.
    func retryEnded() {
        retriesInFlight.wrappingSubtract(1, ordering: .relaxed)
    }
}
