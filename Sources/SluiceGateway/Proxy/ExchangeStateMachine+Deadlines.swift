import NIOCore

/// The exchange's deadlines: which runs next (for the connection's one timer) and which has
/// passed. Read only: every event that moves a deadline is in `ExchangeStateMachine`.
extension ExchangeStateMachine {
    /// What a passed deadline means.
    enum Expiry: Equatable {
        /// No complete request head within `keepalive_timeout` of the connection going idle.
        case keepalive
        /// The client went quiet mid-request for `client_timeout`.
        case client
        /// The client's body came slower than `min_body_rate` allows.
        case slowBody
        /// No slot within the queue's timeout.
        case queue(ticket: UInt64)
        /// No connection to the replica in time.
        case connect
        /// No answer head within `response_header` of the request's end.
        case responseHeader
        /// The replica went quiet mid-answer for `idle`.
        case idle
    }

    /// The earliest instant at which a deadline passes, if any is running.
    var nextDeadline: NIODeadline? {
        var upstream: NIODeadline?
        switch phase {
        case .idle(let since), .discarding(let since, _):
            return since + limits.keepaliveTimeout
        case .queued(_, _, _, let deadline):
            // (The body is not read while the request waits: the client's silence is then the
            // gateway's doing, not timed.)
            return deadline
        case .connecting(let deadline):
            upstream = deadline
        case .upstream(_, let state):
            upstream = state.lastByte.map { $0 + state.idleTimeout } ?? state.headDue
        case .admitting, .reading, .batching:
            break
        case .closed:
            return nil
        }
        guard !requestEnded, pausedSince == nil else { return upstream }
        var client = lastClientByte + limits.clientTimeout
        if limits.minBodyRate > 0 { client = min(client, bodyDue) }
        return upstream.map { min($0, client) } ?? client
    }

    /// Which deadline has passed at `now`, if any (the handler then answers or closes).
    func expired(now: NIODeadline) -> Expiry? {
        switch phase {
        case .idle(let since), .discarding(let since, _):
            return now >= since + limits.keepaliveTimeout ? .keepalive : nil
        default:
            break
        }
        if case .queued(_, let ticket, _, let deadline) = phase {
            return now >= deadline ? .queue(ticket: ticket) : nil
        }
        if !requestEnded, pausedSince == nil {
            let silent = now >= lastClientByte + limits.clientTimeout
            let slow = limits.minBodyRate > 0 && now >= bodyDue
            switch phase {
            case .admitting, .reading, .batching, .connecting, .upstream:
                if silent { return .client }
                if slow { return .slowBody }
            case .idle, .queued, .discarding, .closed: break
            }
        }
        switch phase {
        case .connecting(let deadline):
            return now >= deadline ? .connect : nil
        case .upstream(_, let state):
            if let lastByte = state.lastByte { return now >= lastByte + state.idleTimeout ? .idle : nil }
            if let due = state.headDue, now >= due { return .responseHeader }
            return nil
        default:
            return nil
        }
    }
}
