import NIOCore
import NIOHTTP2
import NIOPosix
import SluiceCore

/// The HTTP/2 connections of one replica's pool on one event loop: each carries up to
/// `maxConcurrentStreams` exchanges at once, one stream each; a stream asked for when every
/// connection is full (or being dialled for as many as it will carry) dials another. The pool
/// sees each stream as a single-use connection (`UpstreamConnection.singleUse`).
final class HTTP2Sessions {
    private final class Session {
        /// Nil while it connects.
        var channel: (any Channel)?
        var multiplexer: NIOHTTP2Handler.StreamMultiplexer?
        /// Streams open or promised to waiters while it connects.
        var streams = 0
        var waiters: [(EventLoopPromise<any Channel>, NIOChannelInitializer)] = []
        /// The replica sent GOAWAY (a restart, a connection age limit): streams open on it finish,
        /// new ones go to another connection.
        var goingAway = false
        /// When its last stream ended (nil while streams are open).
        var idleSince: NIODeadline?

        var isUsable: Bool { !goingAway && (channel?.isActive ?? true) }
    }

    private let replica: ReplicaID
    private let eventLoop: any EventLoop
    private let settings: UpstreamSettings
    private var sessions: [Session] = []
    /// Closes connections idle for `keepaliveIdle` (as the HTTP/1.1 pool does); one at a time.
    private var sweep: Scheduled<Void>?

    init(replica: ReplicaID, eventLoop: any EventLoop, settings: UpstreamSettings) {
        self.replica = replica
        self.eventLoop = eventLoop
        self.settings = settings
    }

    /// A new stream whose pipeline `initializer` sets up, on a connection with room for it.
    func openStream(_ initializer: @escaping NIOChannelInitializer) -> EventLoopFuture<any Channel> {
        let session = sessions.first { $0.streams < settings.maxConcurrentStreams && $0.isUsable } ?? dial()
        session.streams += 1
        session.idleSince = nil
        guard let multiplexer = session.multiplexer else {
            let promise = eventLoop.makePromise(of: (any Channel).self)
            session.waiters.append((promise, initializer))
            return promise.futureResult
        }
        return create(on: session, multiplexer, initializer)
    }

    private func create(
        on session: Session, _ multiplexer: NIOHTTP2Handler.StreamMultiplexer, _ initializer: @escaping NIOChannelInitializer
    ) -> EventLoopFuture<any Channel> {
        let promise = eventLoop.makePromise(of: (any Channel).self)
        multiplexer.createStreamChannel(promise: promise, initializer)
        promise.futureResult.assumeIsolated().whenComplete { result in
            guard case .success(let stream) = result else { return self.streamEnded(on: session) }
            stream.closeFuture.assumeIsolated().whenComplete { _ in self.streamEnded(on: session) }
        }
        return promise.futureResult
    }

    private func dial() -> Session {
        let settings = self.settings
        let replica = self.replica
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = settings.tls {
                        try channel.pipeline.syncOperations.addHandler(UpstreamTLS.handler(tls, host: replica.host, serverName: settings.serverName))
                    }
                }
            }
        // (Listed at once: the streams promised to it count while it connects.)
        let session = Session()
        sessions.append(session)
        let loop = eventLoop
        bootstrap.connect(host: replica.host, port: replica.port).flatMap { channel in
            channel.eventLoop.makeCompletedFuture {
                let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                ) { $0.eventLoop.makeSucceededVoidFuture() }
                let marked = NIOLoopBound(session, eventLoop: loop)
                try channel.pipeline.syncOperations.addHandler(GoAwayWatch { marked.value.goingAway = true })
                return multiplexer
            }.map { (channel, $0) }
        }.hop(to: eventLoop).assumeIsolated().whenComplete { result in
            let waiters = session.waiters
            session.waiters = []
            switch result {
            case .success(let (channel, multiplexer)):
                session.channel = channel
                session.multiplexer = multiplexer
                channel.closeFuture.assumeIsolated().whenComplete { _ in self.sessions.removeAll { $0 === session } }
                // (Each waiter's stream was counted when it was promised.)
                for (promise, initializer) in waiters {
                    self.create(on: session, multiplexer, initializer).cascade(to: promise)
                }
            case .failure(let error):
                self.sessions.removeAll { $0 === session }
                for (promise, _) in waiters { promise.fail(error) }
            }
        }
        return session
    }

    /// A connection whose last stream ended closes now if it is going away, else once it has
    /// been idle for `keepaliveIdle`.
    private func streamEnded(on session: Session) {
        session.streams -= 1
        guard session.streams == 0 else { return }
        if session.goingAway { return session.channel?.close(promise: nil) ?? () }
        session.idleSince = eventLoop.now
        scheduleSweep()
    }

    private func scheduleSweep() {
        guard sweep == nil else { return }
        sweep = eventLoop.assumeIsolated().scheduleTask(in: settings.keepaliveIdle) {
            self.sweep = nil
            let now = self.eventLoop.now
            var stillIdle = false
            for session in self.sessions {
                guard let since = session.idleSince, session.streams == 0 else { continue }
                if now - since >= self.settings.keepaliveIdle { session.channel?.close(promise: nil) } else { stillIdle = true }
            }
            if stillIdle { self.scheduleSweep() }
        }
    }

    /// The replica left the pool, or the gateway stops: idle connections close now, busy ones
    /// when their last stream ends.
    func closeWhenIdle() {
        for session in sessions {
            session.goingAway = true
            if session.streams == 0 { session.channel?.close(promise: nil) }
        }
    }
}

/// Tells its session when the replica sends GOAWAY.
private final class GoAwayWatch: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    private let received: () -> Void

    init(_ received: @escaping () -> Void) {
        self.received = received
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload { received() }
        context.fireChannelRead(data)
    }
}
