import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceCore
import Synchronization

/// A simulated OpenAI-compatible model server. `start()` binds (port 0 allowed) and returns the
/// bound address; `stop()` closes the listener and every open connection.
public final class ReplicaServer: Sendable {
    public let configuration: ReplicaConfiguration
    private let group: any EventLoopGroup
    private let listener = Mutex<(any Channel)?>(nil)
    let running = Atomic<Int>(0)
    let served = Atomic<Int>(0)
    let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    let dropNext = Atomic<Bool>(false)
    let downloadBytesWritten = Atomic<Int>(0)
    let uploadBytesRead = Atomic<Int>(0)
    let uploadsPaused = Atomic<Bool>(false)
    let scheduler: ReplicaScheduler
    let faultState: Mutex<ReplicaFaults>
    private let random: Mutex<SplitMix64>
    private let started = ContinuousClock.now
    /// Called by `POST /admin/faults {"exit": true}` (the executable exits the process).
    let onExit: @Sendable () -> Void

    public init(configuration: ReplicaConfiguration, group: any EventLoopGroup, onExit: @escaping @Sendable () -> Void = {}) {
        self.configuration = configuration
        self.group = group
        self.scheduler = ReplicaScheduler(loop: group.next(), engine: configuration.engine, timeScale: configuration.timeScale)
        self.faultState = Mutex(configuration.faults)
        self.random = Mutex(SplitMix64(seed: configuration.seed))
        self.onExit = onExit
    }

    public var faults: ReplicaFaults {
        get { faultState.withLock { $0 } }
        set { faultState.withLock { $0 = newValue } }
    }

    /// Still in the configured slow start.
    var isStarting: Bool {
        let slowStart = faultState.withLock { $0.slowStart }
        return ContinuousClock.now - started < slowStart
    }

    /// The next draw in [0, 1) from the seeded generator.
    func draw() -> Double {
        random.withLock { Double($0.next() >> 11) / Double(1 << 53) }
    }

    /// Requests being answered now.
    public var requestsRunning: Int { running.load(ordering: .relaxed) }
    /// Requests answered (or cut off) so far.
    public var requestsServed: Int { served.load(ordering: .relaxed) }

    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> SocketAddress {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(ReplicaHandler(server: self))
                }
            }
            .bind(host: host, port: port).get()
        listener.withLock { $0 = channel }
        return channel.localAddress!
    }

    /// Bytes of `/v1/sim/download` bodies the kernel has accepted so far (a write completes only
    /// once the socket takes it), so a test can see a slow reader hold the sender back.
    public var downloadedBytes: Int { downloadBytesWritten.load(ordering: .relaxed) }

    /// Body bytes of `/v1/sim/upload` requests read so far.
    public var uploadedBytes: Int { uploadBytesRead.load(ordering: .relaxed) }

    /// Stops reading the bodies of `/v1/sim/upload` requests (as a replica busy elsewhere would),
    /// until `resumeUploads()`.
    public func pauseUploads() {
        uploadsPaused.store(true, ordering: .relaxed)
    }

    public func resumeUploads() {
        uploadsPaused.store(false, ordering: .relaxed)
        let open = connections.withLock { Array($0.values) }
        for channel in open {
            channel.pipeline.fireUserInboundEventTriggered(ReplicaHandler.ResumeReading())
        }
    }

    /// The next request is read and its connection closed without an answer: what a client sees
    /// when a server closes a keep-alive connection just as a request goes out on it.
    public func dropNextRequest() {
        dropNext.store(true, ordering: .relaxed)
    }

    public func stop() async {
        let channel = listener.withLock { value in
            defer { value = nil }
            return value
        }
        try? await channel?.close()
        let open = connections.withLock { Array($0.values) }
        for connection in open { try? await connection.close() }
    }

    func metricsText() -> String {
        let labels = "{model_name=\"\(configuration.model)\"}"
        let state = scheduler.snapshot.withLock { $0 }
        // With the fixed clock there is no engine: what runs is what is being answered.
        let running = configuration.engine == nil ? requestsRunning : state.running
        var text = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: String) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name)\(labels) \(value)\n"
        }
        metric("vllm:num_requests_running", "gauge", "Number of requests currently running.", "\(running)")
        metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", "\(state.waiting)")
        // vLLM renamed these in 0.9-0.12; both names are served so either kind of scraper works.
        metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", "\(state.kvUsage)")
        metric("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage (old name).", "\(state.kvUsage)")
        metric("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in tokens.", "\(state.prefixQueries)")
        metric("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in tokens.", "\(state.prefixHits)")
        metric("vllm:gpu_prefix_cache_queries_total", "counter", "Prefix cache queries, in tokens (old name).", "\(state.prefixQueries)")
        metric("vllm:gpu_prefix_cache_hits_total", "counter", "Prefix cache hits, in tokens (old name).", "\(state.prefixHits)")
        text += "# HELP sluice_replica_requests_served_total Requests answered by this simulated replica.\n"
        text += "# TYPE sluice_replica_requests_served_total counter\n"
        text += "sluice_replica_requests_served_total \(requestsServed)\n"
        text += "# HELP sluice_replica_batches_queued Embedding and infer batches queued or running.\n"
        text += "# TYPE sluice_replica_batches_queued gauge\n"
        text += "sluice_replica_batches_queued \(state.batchesQueued)\n"
        return text
    }
}
