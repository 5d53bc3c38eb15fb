import NIOCore

/// The bookkeeping of one replica's keep-alive connections on one event loop: which are idle,
/// who waits, how many are open or being opened. Pure: every event changes the state and
/// returns what must happen next, which `UpstreamConnectionPool` then does. So no requester is
/// called while the pool is half-changed (the pattern of AsyncHTTPClient's
/// `HTTPConnectionPool.StateMachine`), and the policy is tested without sockets or clocks.
///
/// Reuse is LIFO, so a burst's extra connections go cold at the bottom of the stack and the idle
/// sweep closes them after `keepaliveIdle`. At `maxConnections`, requesters wait in FIFO order.
struct UpstreamPoolStateMachine<Connection: AnyObject, Waiter> {
    /// What the pool must do after an event.
    enum Action {
        case none
        /// Open this many new connections.
        case connect(Int)
        /// Give `connection` (already counted as in use) to `waiter`.
        case hand(Connection, to: Waiter)
        /// Tell `waiter` its connection could not be made, then open this many.
        case fail(Waiter, thenConnect: Int)
        /// Close these connections (idle ones swept or let go, or one nobody may use).
        case close([Connection])
        /// The connection is now idle; the sweep must run by `sweepBy` if none is scheduled.
        case keepIdle(sweepBy: NIODeadline)
    }

    private struct Idle {
        let connection: Connection
        let since: NIODeadline
    }

    let maxConnections: Int
    let keepaliveIdle: TimeAmount
    private var idle: [Idle] = []
    private var waiters = CircularBuffer<Waiter>()
    /// Open connections, counting those being opened.
    private(set) var openCount = 0
    private var connecting = 0
    /// Set by `closeAll()` (shutdown, replica removed): connections returned afterwards are closed.
    private(set) var isClosed = false

    init(maxConnections: Int, keepaliveIdle: TimeAmount) {
        self.maxConnections = maxConnections
        self.keepaliveIdle = keepaliveIdle
    }

    var idleCount: Int { idle.count }
    var waitingCount: Int { waiters.count }

    /// An idle connection that is still open, else the waiter queues (and connections are opened
    /// when the cap allows). `isOpen` says whether an idle connection's channel is still up.
    mutating func acquire(_ waiter: Waiter, isOpen: (Connection) -> Bool) -> (Connection?, Action) {
        while let last = idle.popLast() {
            if isOpen(last.connection) { return (last.connection, .none) }
            // Closed while idle: its `closed` event still comes and frees its place.
        }
        waiters.append(waiter)
        return (nil, connectionsNeeded())
    }

    /// A requester that no longer wants a connection (its client left, or it timed out).
    mutating func cancel(where isIt: (Waiter) -> Bool) {
        if let index = waiters.firstIndex(where: isIt) {
            waiters.remove(at: index)
        }
    }

    /// A connection whose exchange ended cleanly and may carry another request, or a new one
    /// just made: to the first waiter, else idle (or closed, once the pool is closed).
    mutating func available(_ connection: Connection, now: NIODeadline) -> Action {
        if let waiter = waiters.popFirst() { return .hand(connection, to: waiter) }
        if isClosed { return .close([connection]) }
        idle.append(Idle(connection: connection, since: now))
        return .keepIdle(sweepBy: now + sweepPeriod)
    }

    /// A new connection was made: handed out or kept as `available` says.
    mutating func connected(_ connection: Connection, now: NIODeadline) -> Action {
        connecting -= 1
        return available(connection, now: now)
    }

    /// Making a connection failed: the first waiter is told (one failed connect answers one waiter,
    /// the others wait for connections still being made or opened now).
    mutating func connectFailed() -> Action {
        connecting -= 1
        openCount -= 1
        let waiter = waiters.popFirst()
        let more = connectionsNeeded()
        guard let waiter else { return more }
        if case .connect(let count) = more { return .fail(waiter, thenConnect: count) }
        return .fail(waiter, thenConnect: 0)
    }

    /// A connection's channel closed, whatever the cause: its place is free again.
    mutating func closed(_ connection: Connection) -> Action {
        openCount -= 1
        if let index = idle.firstIndex(where: { $0.connection === connection }) {
            idle.remove(at: index)
        }
        return connectionsNeeded()
    }

    /// Closes connections idle since before `now - keepaliveIdle`; oldest first, since reuse is
    /// LIFO and stale connections sit at the bottom. Returns them and whether to sweep again.
    mutating func sweep(now: NIODeadline) -> (close: [Connection], again: NIODeadline?) {
        let cutoff = now - keepaliveIdle
        var stale: [Connection] = []
        while let oldest = idle.first, oldest.since <= cutoff {
            idle.removeFirst()
            stale.append(oldest.connection)
        }
        return (stale, idle.isEmpty ? nil : now + sweepPeriod)
    }

    /// Closes every idle connection now, and any returned later.
    mutating func closeAll() -> [Connection] {
        isClosed = true
        let all = idle.map(\.connection)
        idle.removeAll()
        return all
    }

    /// A quarter of the idle time, so no connection outlives `keepaliveIdle` by more than 25%.
    var sweepPeriod: TimeAmount {
        .nanoseconds(max(keepaliveIdle.nanoseconds / 4, 50_000_000))
    }

    private mutating func connectionsNeeded() -> Action {
        var count = 0
        while connecting < waiters.count, openCount < maxConnections {
            connecting += 1
            openCount += 1
            count += 1
        }
        return count > 0 ? .connect(count) : .none
    }
}
