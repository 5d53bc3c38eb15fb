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
/// operation here runs on that loop and needs no lock. The decisions are
/// `UpstreamPoolStateMachine`'s; this class makes the sockets and runs what it returns, after
/// the state has changed (so a requester called back may at once call the pool again).
final class UpstreamConnectionPool {
    let replica: ReplicaID
    let eventLoop: any EventLoop
    let settings: UpstreamSettings
    let stats: UpstreamStats
    private let literalAddress: SocketAddress?
    private var state: UpstreamPoolStateMachine<UpstreamConnection, any UpstreamRequester>
    private var sweep: NIOScheduledCallback?

    /// The replica's HTTP/2 connections, when the pool speaks HTTP/2 to it.
    private let sessions: HTTP2Sessions?

    init(replica: ReplicaID, eventLoop: any EventLoop, settings: UpstreamSettings, stats: UpstreamStats) {
        self.sessions = settings.isHTTP2 ? HTTP2Sessions(replica: replica, eventLoop: eventLoop, settings: settings) : nil
        self.replica = replica
        self.eventLoop = eventLoop
        self.settings = settings
        self.stats = stats
        self.literalAddress = try? SocketAddress(ipAddress: replica.host, port: replica.port)
        self.state = UpstreamPoolStateMachine(maxConnections: settings.maxConnections, keepaliveIdle: settings.keepaliveIdle)
    }

    var openCount: Int { state.openCount }

    /// An idle connection at once, or nil and a later `upstreamReady` / `upstreamFailed` call
    /// (never from inside this call).
    func acquire(for requester: any UpstreamRequester) -> UpstreamConnection? {
        let (connection, action) = state.acquire(requester, isOpen: { $0.isOpen })
        if let connection { connection.useCount += 1 }
        acquiring = true
        run(action)
        acquiring = false
        return connection
    }

    /// Removes a requester that no longer wants a connection (its client left).
    func cancel(_ requester: any UpstreamRequester) {
        state.cancel(where: { $0 === requester })
    }

    /// Returns a connection whose exchange ended cleanly and may carry another request.
    func release(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        guard connection.isOpen else { return }
        if connection.singleUse { return connection.channel.close(promise: nil) }
        run(state.available(connection, now: eventLoop.now))
    }

    /// A connection whose answer ended: kept for the next request, or closed when it cannot carry one.
    func returned(_ connection: UpstreamConnection, reusable: Bool) {
        if reusable { release(connection) } else { discard(connection) }
    }

    /// Closes a connection whose state is unknown (an exchange cut short).
    func discard(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        connection.channel.close(promise: nil)
    }

    /// Called by the connection's handler when its channel goes inactive, whatever the cause.
    func connectionClosed(_ connection: UpstreamConnection) {
        run(state.closed(connection))
    }

    /// Closes every idle connection, and any returned later (shutdown, or a removed replica).
    func closeIdle() {
        sessions?.closeWhenIdle()
        sweep?.cancel()
        sweep = nil
        run(.close(state.closeAll()))
    }

    private func run(_ action: UpstreamPoolStateMachine<UpstreamConnection, any UpstreamRequester>.Action) {
        stats.open.store(state.openCount, ordering: .relaxed)
        stats.idle.store(state.idleCount, ordering: .relaxed)
        switch action {
        case .none:
            break
        case .connect(let count):
            for _ in 0..<count { connect() }
        case .hand(let connection, let waiter):
            connection.useCount += 1
            waiter.upstreamReady(connection)
        case .fail(let waiter, let count):
            for _ in 0..<count { connect() }
            let error = lastConnectError ?? ChannelError.ioOnClosedChannel
            if acquiring {
                // A connect that failed at once: reported after `acquire` has returned.
                eventLoop.assumeIsolated().execute { waiter.upstreamFailed(error) }
            } else {
                waiter.upstreamFailed(error)
            }
        case .close(let connections):
            for connection in connections { connection.channel.close(promise: nil) }
        case .keepIdle(let sweepBy):
            if sweep == nil {
                sweep = try? eventLoop.assumeIsolated().scheduleCallback(at: sweepBy, handler: IdleSweep(pool: self))
            }
        }
    }

    private var lastConnectError: (any Error)?
    private var acquiring = false

    private func connect() {
        let settings = self.settings
        let replica = self.replica
        let future: EventLoopFuture<any Channel>
        if let sessions {
            future = sessions.openStream { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2UpstreamBridge(tls: settings.tls != nil))
                    try stream.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
            return connected(future, singleUse: true)
        }
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = settings.tls {
                        try channel.pipeline.syncOperations.addHandler(UpstreamTLS.handler(tls, host: replica.host, serverName: settings.serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
        if let literalAddress {
            future = bootstrap.connect(to: literalAddress)
        } else {
            future = bootstrap.connect(host: replica.host, port: replica.port)
        }
        connected(future, singleUse: false)
    }

    private func connected(_ future: EventLoopFuture<any Channel>, singleUse: Bool) {
        future.hop(to: eventLoop).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                self.stats.connectsSucceeded.wrappingAdd(1, ordering: .relaxed)
                if channel.isActive, let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) {
                    let connection = UpstreamConnection(channel: channel, handler: handler, pool: self)
                    connection.singleUse = singleUse
                    handler.connection = connection
                    // A waiter gets it even when the pool is closed (shutdown, or its replica
                    // removed while this request was on its way); it is closed otherwise.
                    self.run(self.state.connected(connection, now: self.eventLoop.now))
                } else {
                    // Closed before we saw it: its inactive event passed without a connection
                    // to report, so it is accounted for here.
                    channel.close(promise: nil)
                    self.connectFailed(ChannelError.ioOnClosedChannel)
                }
            case .failure(let error):
                self.stats.connectsFailed.wrappingAdd(1, ordering: .relaxed)
                self.connectFailed(error)
            }
        }
    }

    private func connectFailed(_ error: any Error) {
        lastConnectError = error
        run(state.connectFailed())
        lastConnectError = nil
    }

    fileprivate func sweepIdle() {
        sweep = nil
        let (stale, again) = state.sweep(now: eventLoop.now)
        run(.close(stale))
        if let again {
            sweep = try? eventLoop.assumeIsolated().scheduleCallback(at: again, handler: IdleSweep(pool: self))
        }
    }
}

private struct IdleSweep: NIOScheduledCallbackHandler {
    unowned let pool: UpstreamConnectionPool

    func handleScheduledCallback(eventLoop: some EventLoop) {
        pool.sweepIdle()
    }
}
