import NIOCore

/// An exchange cut short: what it leaves on the upstream side, and what becomes of the rest of
/// its request.
extension Exchange {
    /// Undoes the upstream side the state machine says the exchange was in.
    func undo(_ abandon: ExchangeStateMachine<UpstreamConnection>.Abandon, requester: any UpstreamRequester) {
        switch abandon {
        case .none: break
        case .leaveQueue(let ticket): pool?.gate?.leave(ticket)
        case .leaveBatch(let ticket, let key): pool?.batcher?.leave(ticket: ticket, key: key)
        case .cancelConnect: connectionPool?.cancel(requester)
        case .discard(let connection): connection.pool.discard(connection)
        }
    }

    /// The replica failed this exchange (closed, timed out, refused the connection): counted
    /// toward its passive ejection.
    func replicaFailed(now: NIODeadline) {
        guard let replica, let pool else { return }
        let instant = now.uptimeNanoseconds
        if replica.recordFailure(at: instant, policy: pool.configuration.ejection, mayEject: { pool.mayEject(at: instant) }) {
            pool.ejected(replica, reason: .consecutiveFailures)
        }
    }

    /// After an early answer, whether the rest of the request is better cut (close) than read and
    /// dropped: yes when its size is unknown (chunked) or over 1 MiB still to come. Reading a
    /// small rest keeps the connection, and clients that write their whole request before
    /// reading do not fail on a closed socket.
    func mustCloseUnfinished(requestEnded: Bool) -> Bool {
        guard !requestEnded else { return false }
        guard let contentLength else { return true }
        return contentLength - bodyBytes > 1 << 20
    }
}
