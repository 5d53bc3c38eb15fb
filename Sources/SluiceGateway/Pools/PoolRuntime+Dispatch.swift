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
        let facts = RoutingFacts(key: exchange.routingKey, random: random, prompt: exchange.prompt)
        guard let choice = pick(facts, now: now) else { return .noReplica }
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
            deliver: deliver)
        switch entry {
        case .slot(let replica): return .slot(replica)
        case .queued(let ticket): return .queued(ticket: ticket, timeout: gate.timeout)
        case .full: return .full(waiting: gate.waiting)
        }
    }

    /// After a failed connect, one retry on another replica (nothing was sent, so it is always
    /// safe): the least loaded of the others, since a hashing policy would pick the same again.
    /// The exchange's slot moves there; nil when there is no other with a free slot.
    func retryElsewhere(_ exchange: Exchange, failed: Replica, now: NIODeadline) -> Replica? {
        exchange.attempts += 1
        guard exchange.attempts < 2, let other = pickOther(than: failed, now: now), start(other) else { return nil }
        release(failed)
        exchange.replica = other
        noteDestination(of: exchange, other)
        exchange.countPrefill(on: other)
        return other
    }
}
