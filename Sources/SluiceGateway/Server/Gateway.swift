import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceConfig
import SluiceCore
import Synchronization

/// The running gateway: the data listener, the admin listener and the shared runtime.
///
/// `start()` binds both listeners (port 0 allowed; the bound addresses are returned, so tests
/// never guess ports). What then keeps the gateway running is `services(grace:)`, run in one
/// ServiceGroup: the listeners' lifetimes, the queue scraper, the scale ticker and publisher,
/// and the shared HTTP client. The group stops them in reverse order: the data listener
/// first (it stops accepting and lets exchanges in progress finish for up to `grace`), the
/// admin listener and the HTTP client last.
public final class Gateway: Sendable {
    public struct BoundAddresses: Sendable {
        public var data: SocketAddress
        public var admin: SocketAddress
    }

    let runtime: GatewayRuntime
    let environment: [String: String]
    let group: any EventLoopGroup
    let upstreamsByLoop: [ObjectIdentifier: LoopOwned<EventLoopUpstreams>]
    let loops: [any EventLoop]
    private let adminToken: String?
    /// The config file `reload()` reads again; nil when the gateway was built without one.
    let configurationPath: String?
    /// Serializes reloads, so two at once cannot interleave their membership swaps.
    let reloadLock = Mutex(())
    private let channels = Mutex(Channels())
    /// Reads replicas' reported queues for least-queue and cache-aware pools.
    let scraper: QueueScraper
    let healthMonitor: HealthMonitor
    let discovery: DiscoveryService
    /// Placements shared with other instances, per pool with `routing.shared`.
    private let gossips: [PlacementGossip]
    /// Decides scaled pools' desired replicas every tick.
    let scaleTicker: ScaleTicker
    /// Tells the log and the webhook about changed decisions.
    let scalePublisher: ScalePublisher
    /// The listener's certificates when `tls` is set (a load failure stops `start()`).
    let certificates: Result<ListenerCertificates, ListenerCertificates.LoadError>?
    private let phase = Atomic<UInt8>(Phase.created.rawValue)

    private struct Channels: Sendable {
        var data: (any Channel)?
        var admin: (any Channel)?
    }

    enum Phase: UInt8 {
        case created, serving, draining, stopped
    }

    public var metrics: GatewayMetrics { runtime.metrics }

    /// - Parameters:
    ///   - adminToken: the bearer token for `/admin/*`, already read from the environment.
    ///   - configurationPath: the file the configuration came from, read again by `POST /admin/reload`
    ///     and SIGHUP.
    ///   - environment: where the secrets the file names by variable are read (`admin.chatops`).
    public init(
        configuration: GatewayConfiguration,
        group: any EventLoopGroup,
        adminToken: String?,
        metrics: GatewayMetrics = GatewayMetrics(),
        logger: Logger = Logger(label: "sluice"),
        configurationPath: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.configurationPath = configurationPath
        self.environment = environment
        self.runtime = GatewayRuntime(configuration: configuration, group: group, metrics: metrics, logger: logger, environment: environment)
        self.scraper = QueueScraper(pools: runtime.pools, client: runtime.httpClient)
        self.healthMonitor = HealthMonitor(pools: runtime.pools, client: runtime.httpClient, logger: logger)
        self.discovery = DiscoveryService(pools: runtime.pools, group: group, logger: logger)
        let instance = String(UInt64.random(in: 1...UInt64.max), radix: 36)
        self.gossips = runtime.pools.compactMap { pool in
            guard let address = pool.configuration.routing.shared, let policy = pool.policy as? CacheAwarePolicy else { return nil }
            let gossip = PlacementGossip(address: address, pool: pool, policy: policy, loop: group.next(), instance: instance)
            pool.gossip.withLock { $0 = gossip }
            return gossip
        }
        let publisher = ScalePublisher(
            configuration.publish, client: runtime.httpClient, logger: logger, metrics: metrics,
            notify: runtime.chatNotifier?.notify)
        self.scalePublisher = publisher
        self.scaleTicker = ScaleTicker(pools: runtime.pools, group: group, publisher: publisher, metrics: metrics)
        self.certificates = configuration.tls.map { tls in Result { () throws(ListenerCertificates.LoadError) in try ListenerCertificates(tls) } }
        self.group = group
        self.adminToken = adminToken.flatMap { $0.isEmpty ? nil : $0 }
        var upstreams: [ObjectIdentifier: LoopOwned<EventLoopUpstreams>] = [:]
        for loop in group.makeIterator() {
            upstreams[ObjectIdentifier(loop)] = LoopOwned(
                EventLoopUpstreams(eventLoop: loop, statsRegistry: runtime.upstreamStats), eventLoop: loop)
        }
        self.upstreamsByLoop = upstreams
        self.loops = Array(group.makeIterator())
    }

    var currentPhase: Phase { Phase(rawValue: phase.load(ordering: .acquiring)) ?? .created }

    /// Ready when the data listener is bound, not draining, and every pool has a replica in
    /// rotation, or scales from zero (its requests wait for one).
    var isReady: Bool {
        guard currentPhase == .serving else { return false }
        let now = NIODeadline.now().uptimeNanoseconds
        return runtime.pools.allSatisfy { pool in
            pool.configuration.scaling?.minReplicas == 0 || pool.snapshot.replicas.contains { $0.isAvailable(at: now) }
        }
    }

    @discardableResult
    public func start() async throws -> BoundAddresses {
        if let error = runtime.admissionError { throw error }
        if let error = runtime.providerError { throw error }
        if let error = runtime.tracerError { throw error }
        if case .failure(let error) = certificates { throw error }
        if let error = runtime.pools.lazy.compactMap(\.upstreamError).first { throw error }
        let configuration = runtime.configuration
        let admin = try await AdminServer.bind(
            host: configuration.admin.listen.host, port: configuration.admin.listen.port,
            group: group, gateway: self, token: adminToken)
        let data: any Channel
        do {
            data = try await bindData(host: configuration.listen.host, port: configuration.listen.port)
        } catch {
            try? await admin.close()
            throw error
        }
        channels.withLock { $0 = Channels(data: data, admin: admin) }
        for gossip in gossips { gossip.start() }
        scaleTicker.decideFirst()
        phase.store(Phase.serving.rawValue, ordering: .releasing)
        if adminToken == nil {
            runtime.logger.warning(
                "no admin token configured: /admin/* answers only loopback clients",
                metadata: ["token_env": "\(configuration.admin.tokenEnv ?? "(none)")"])
        }
        return BoundAddresses(data: data.localAddress!, admin: admin.localAddress!)
    }

    private func bindData(host: String, port: Int) async throws -> any Channel {
        let runtime = self.runtime
        let upstreams = self.upstreamsByLoop
        let certificates = try self.certificates?.get()
        let http2 = runtime.configuration.http2
        let limit = runtime.limits.maxConnections ?? ConnectionCap.defaultLimit()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionCap(limit: limit, refused: runtime.metrics.downstreamConnectionsRefused, logger: runtime.logger))
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let loopUpstreams = upstreams[ObjectIdentifier(channel.eventLoop)]!
                    try ListenerPipeline(runtime: runtime, upstreams: loopUpstreams, http2: http2, certificates: certificates).configure(channel)
                    runtime.metrics.downstreamConnectionsTotal.increment()
                }
            }
        return try await bootstrap.bind(host: host, port: port).get()
    }

    /// Stops accepting, asks open connections to finish, waits up to `grace`, then closes the
    /// rest (`GatewayService` calls it on graceful shutdown). The admin listener stays open, so
    /// `/readyz` tells the load balancer the gateway is draining.
    func drain(grace: Duration) async {
        guard phase.compareExchange(expected: Phase.serving.rawValue, desired: Phase.draining.rawValue, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        let data = channels.withLock { $0.data }
        for gossip in gossips { gossip.stop() }
        runtime.beginDraining()
        try? await data?.close()
        runtime.tracker.quiesceAll()
        let tracker = runtime.tracker
        let logger = runtime.logger
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await tracker.waitUntilEmpty()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: grace)
                return false
            }
            let drained = await group.next() ?? false
            if !drained {
                logger.warning("grace period over: closing connections still open", metadata: ["open": "\(tracker.count)"])
                tracker.closeAll()
            }
            group.cancelAll()
        }
        for loop in loops {
            let upstreams = upstreamsByLoop[ObjectIdentifier(loop)]!
            try? await loop.submit { upstreams.value.closeIdleConnections() }.get()
        }
        phase.store(Phase.stopped.rawValue, ordering: .releasing)
    }

    /// Closes the admin listener (`AdminService` calls it once the data listener has drained).
    func closeAdmin() async {
        let admin = channels.withLock { channels in
            defer { channels.admin = nil }
            return channels.admin
        }
        try? await admin?.close()
    }
}
