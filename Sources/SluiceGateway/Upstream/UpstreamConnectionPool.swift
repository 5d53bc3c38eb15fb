import NIOCore
import NIOPosix
import SluiceCore

/// Waits for a connection from `UpstreamConnectionPool.acquire`.
protocol UpstreamRequester: AnyObject {
    func upstreamReady(_ connection: UpstreamConnection)
    func upstreamFailed(_ error: any Error)
}

/// Keep-alive connections to one replica, owned by one event loop (Envoy's per-worker pools):
/// a downstream connection only ever borrows connections from its own loop's pool, so every
/// operation here runs on that loop and needs no lock.
///
/// Reuse is LIFO, so a burst's extra connections go cold at the bottom of the stack and the idle
/// sweep closes them after `keepaliveIdle`. At `maxConnections` requests wait in FIFO order.
final class UpstreamConnectionPool {
    let replica: ReplicaID
    let eventLoop: any EventLoop
    let settings: UpstreamSettings
    let stats: UpstreamStats
    private let literalAddress: SocketAddress?
    private var idle: [UpstreamConnection] = []
    private(set) var openCount = 0
    private var connecting = 0
    private var waiters = CircularBuffer<any UpstreamRequester>()
    private var sweep: NIOScheduledCallback?
    /// Set by `closeIdle()` (shutdown, replica removed): connections returned afterwards are closed.
    private(set) var isClosed = false

    init(replica: ReplicaID, eventLoop: any EventLoop, settings: UpstreamSettings, stats: UpstreamStats) {
        self.replica = replica
        self.eventLoop = eventLoop
        self.settings = settings
        self.stats = stats
        self.literalAddress = try? SocketAddress(ipAddress: replica.host, port: replica.port)
    }

    /// An idle connection at once, or nil and a later `upstreamReady` / `upstreamFailed` call.
    func acquire(for requester: any UpstreamRequester) -> UpstreamConnection? {
        while let connection = idle.popLast() {
            stats.idle.wrappingSubtract(1, ordering: .relaxed)
            connection.isIdle = false
            if connection.isOpen {
                connection.useCount += 1
                return connection
            }
        }
        waiters.append(requester)
        connectIfNeeded()
        return nil
    }

    /// Removes a requester that no longer wants a connection (its client left).
    func cancel(_ requester: any UpstreamRequester) {
        if let index = waiters.firstIndex(where: { $0 === requester }) {
            waiters.remove(at: index)
        }
    }

    /// Returns a connection whose exchange ended cleanly and may carry another request.
    func release(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        guard connection.isOpen else { return }
        hand(connection)
    }

    /// Closes a connection whose state is unknown (an exchange cut short).
    func discard(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        connection.channel.close(promise: nil)
    }

    /// Called by the connection's handler when its channel goes inactive, whatever the cause.
    func connectionClosed(_ connection: UpstreamConnection) {
        openCount -= 1
        stats.open.wrappingSubtract(1, ordering: .relaxed)
        if connection.isIdle, let index = idle.firstIndex(where: { $0 === connection }) {
            idle.remove(at: index)
            connection.isIdle = false
            stats.idle.wrappingSubtract(1, ordering: .relaxed)
        }
        connectIfNeeded()
    }

    private func hand(_ connection: UpstreamConnection) {
        if let waiter = waiters.popFirst() {
            connection.useCount += 1
            waiter.upstreamReady(connection)
        } else if isClosed {
            connection.channel.close(promise: nil)
        } else {
            connection.isIdle = true
            connection.idleSince = .now()
            idle.append(connection)
            stats.idle.wrappingAdd(1, ordering: .relaxed)
            scheduleSweep()
        }
    }

    private func connectIfNeeded() {
        while connecting < waiters.count, openCount < settings.maxConnections {
            connect()
        }
    }

    private func connect() {
        openCount += 1
        connecting += 1
        stats.open.wrappingAdd(1, ordering: .relaxed)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
        let future: EventLoopFuture<any Channel>
        if let literalAddress {
            future = bootstrap.connect(to: literalAddress)
        } else {
            future = bootstrap.connect(host: replica.host, port: replica.port)
        }
        future.hop(to: eventLoop).assumeIsolated().whenComplete { result in
            self.connecting -= 1
            switch result {
            case .success(let channel):
                self.stats.connectsSucceeded.wrappingAdd(1, ordering: .relaxed)
                guard let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) else {
                    self.openCount -= 1
                    self.stats.open.wrappingSubtract(1, ordering: .relaxed)
                    channel.close(promise: nil)
                    self.connectFailed(ChannelError.ioOnClosedChannel)
                    return
                }
                if channel.isActive {
                    let connection = UpstreamConnection(channel: channel, handler: handler, pool: self)
                    handler.connection = connection
                    // A waiter gets it even when the pool is closed (shutdown, or its replica
                    // removed while this request was on its way); `hand` closes it otherwise.
                    self.hand(connection)
                } else {
                    // Closed before we saw it: its inactive event already passed without a
                    // connection to report, so account for it here.
                    self.openCount -= 1
                    self.stats.open.wrappingSubtract(1, ordering: .relaxed)
                    self.connectFailed(ChannelError.ioOnClosedChannel)
                }
            case .failure(let error):
                self.openCount -= 1
                self.stats.open.wrappingSubtract(1, ordering: .relaxed)
                self.stats.connectsFailed.wrappingAdd(1, ordering: .relaxed)
                self.connectFailed(error)
            }
        }
    }

    private func connectFailed(_ error: any Error) {
        if let waiter = waiters.popFirst() {
            waiter.upstreamFailed(error)
        }
        connectIfNeeded()
    }

    private func scheduleSweep() {
        guard sweep == nil else { return }
        // A quarter of the idle time, so no connection outlives `keepaliveIdle` by more than 25%.
        let period = TimeAmount.nanoseconds(max(settings.keepaliveIdle.nanoseconds / 4, 50_000_000))
        sweep = try? eventLoop.assumeIsolated().scheduleCallback(in: period, handler: IdleSweep(pool: self))
    }

    fileprivate func sweepIdle() {
        sweep = nil
        let cutoff = NIODeadline.now() - settings.keepaliveIdle
        // Oldest first: reuse is LIFO, so stale connections sit at the bottom.
        while let oldest = idle.first, oldest.idleSince <= cutoff {
            idle.removeFirst()
            oldest.isIdle = false
            stats.idle.wrappingSubtract(1, ordering: .relaxed)
            oldest.channel.close(promise: nil)
        }
        if !idle.isEmpty { scheduleSweep() }
    }

    /// Closes every idle connection, and any returned later (shutdown, or a removed replica).
    func closeIdle() {
        isClosed = true
        sweep?.cancel()
        sweep = nil
        let all = idle
        idle.removeAll()
        for connection in all {
            connection.isIdle = false
            stats.idle.wrappingSubtract(1, ordering: .relaxed)
            connection.channel.close(promise: nil)
        }
    }
}

private struct IdleSweep: NIOScheduledCallbackHandler {
    unowned let pool: UpstreamConnectionPool

    func handleScheduledCallback(eventLoop: some EventLoop) {
        pool.sweepIdle()
    }
}
