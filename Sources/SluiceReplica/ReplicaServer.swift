import NIOCore
import NIOHTTP1
import NIOPosix
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

    public init(configuration: ReplicaConfiguration, group: any EventLoopGroup) {
        self.configuration = configuration
        self.group = group
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
        return """
        # HELP vllm:num_requests_running Number of requests currently running.
        # TYPE vllm:num_requests_running gauge
        vllm:num_requests_running\(labels) \(requestsRunning)
        # HELP vllm:num_requests_waiting Number of requests waiting to be processed.
        # TYPE vllm:num_requests_waiting gauge
        vllm:num_requests_waiting\(labels) 0
        # HELP sluice_replica_requests_served_total Requests answered by this simulated replica.
        # TYPE sluice_replica_requests_served_total counter
        sluice_replica_requests_served_total \(requestsServed)

        """
    }
}
