/// How a simulated replica behaves. The latency model here is deliberately simple (a fixed time
/// to first token, then a fixed delay per token); a later issue adds continuous batching and a
/// prefix cache.
public struct ReplicaConfiguration: Sendable {
    /// Sent back as `x-replica-id` so tests and the demo can see where a request went.
    public var id: String
    public var model: String = "sim-7b"
    public var timeToFirstToken: Duration = .milliseconds(20)
    public var interTokenDelay: Duration = .milliseconds(10)
    /// Output tokens when the request gives no `max_tokens`.
    public var defaultMaxTokens = 16
    public var embeddingDimensions = 8
    /// Accept requests and never answer them (to exercise gateway timeouts).
    public var stall = false

    public init(id: String) {
        self.id = id
    }
}
