import NIOCore
import SluiceCore
import SluiceHTTP1

/// One request/response pair on a downstream connection: what was asked, where it went, and how
/// far each direction has got. Owned by the connection's `ProxyServerHandler`, on its loop.
final class Exchange {
    let start: NIODeadline
    /// The request target without its query string.
    let path: String
    /// The client's HTTP minor version (0 or 1); responses are written in it.
    let requestMinorVersion: Int
    let isHEAD: Bool
    let contentLength: Int?
    /// Whether the client wants the connection kept after this exchange.
    var keepAlive: Bool
    var requestID: String?
    /// The request head, kept (with its own copy of the bytes) only while the body is read to
    /// route by `model`; nil once the upstream head is written.
    var heldHead: HTTP1Head?
    /// The head as sent upstream.
    var upstreamHead: ByteBuffer?

    var pool: PoolRuntime?
    /// The pool chosen by path when its routing key is in the body (read first).
    var keyPool: Int?
    var routingKey: String?
    /// The prompt's block chain, for cache-aware pools keyed on the prompt (`PromptChain`).
    var prompt: PromptChain?
    /// What the policy chose, and from what: told if the request goes elsewhere after all.
    var picked: (replica: Replica, facts: RoutingFacts)?
    /// Where the policy was last told the request went, when not `picked.replica`.
    var recordedReplica: Replica?
    /// Prompt bytes the replica is not known to have cached (`RoutingChoice.uncachedBytes`),
    /// and the replica they are counted on as pending prefill until its answer starts.
    var uncachedBytes = 0
    var prefillReplica: Replica?
    /// Whether the request asked for a stream (read with the prompt, for cache-aware pools).
    var promptStreams = false
    /// The held body read once for routing and token limits (`ProxyServerHandler.facts`).
    var bodyFacts: Result<CompletionRequestFacts, JSONFieldScanner.Failure>?
    /// The branch the policy took for `picked`.
    var pickedReason: RoutingReason?
    /// The tenant admission let in (released when the exchange finishes).
    var tenant: Int?
    /// Rate-limit fields for the response head, and the limits they describe.
    var limitFields: [(String, String)] = []
    var limitWindows: [RateLimitHeaders.Window] = []
    /// Token accounting: what admission charged this request (estimated prompt + completion
    /// tokens) and the model it named, settled with the real `usage` when the exchange ends.
    var tokenCharge: TokenCharge?
    /// Reads `usage` from the response (and strips the usage chunk the gateway asked for).
    var usageMeter: UsageMeter?
    /// The request body's length after the gateway rewrote it (asking for stream usage).
    var rewrittenLength: Int?
    /// Set while the request waits in a batch (see `Batcher`), with the body to send alone if
    /// the batch cannot answer it.
    var batchTicket: UInt64?
    var batchKey: [UInt8]?
    var batchBody: ByteBuffer?
    /// Token usage known without reading the response (a batch member's share).
    var knownUsage: Int?
    var replica: Replica?
    /// Set while the request waits in its pool's queue for a replica slot.
    var queueTicket: UInt64?
    /// When the request started waiting for a slot (for the `queue_wait` signal).
    var queuedAt: NIODeadline?
    /// The response is a stream of server-sent events (its TTFT is its first body byte).
    var eventStream = false
    /// The pool's scaling signal has been recorded for this exchange.
    var signalRecorded = false
    var connectionPool: UpstreamConnectionPool?
    var upstream: UpstreamConnection?
    var attempts = 0

    /// Body held while routing needs the `model` field.
    var inspectBuffer: ByteBuffer?
    /// Request bytes received before the upstream connection was ready.
    var pending = CircularBuffer<ByteBuffer>(initialCapacity: 2)
    var pendingBytes = 0
    var bodyBytes = 0
    var wroteUpstreamSinceFlush = false

    /// The client has sent the request's end.
    var requestEnded = false
    /// The request's end has been written upstream.
    var requestSent = false
    /// A response head has been written to the client.
    var responseStarted = false
    var status = 0
    var upstreamKeepAlive = true
    var reframing = HeaderRewriter.BodyReframing.none
    /// Last byte from the replica (for the stream idle timeout).
    var lastActivity: NIODeadline
    /// Last byte from the client while its request is incomplete (for the client timeout).
    var lastClientActivity: NIODeadline
    /// When the upstream side's current phase (connection wait, response head, stream idle)
    /// times out; nil when it is not being timed.
    var upstreamDeadline: NIODeadline?
    /// What was written on a reused keep-alive connection after the head, kept (bounded) so the
    /// request can be sent again once if the replica had closed that connection while idle.
    var replay: [ByteBuffer]?
    var replayBytes = 0
    var retriedStaleConnection = false
    /// The client sent `Expect: 100-continue`; answered once the request is accepted.
    var expectsContinue = false
    /// Set once metrics and in-flight counts are settled; makes `finish` idempotent.
    var finished = false

    init(head: HTTP1Head, now: NIODeadline) {
        self.start = now
        self.lastActivity = now
        self.lastClientActivity = now
        let target = head.targetString
        if let query = target.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            self.path = String(target[..<query])
        } else {
            self.path = target
        }
        self.requestMinorVersion = head.minorVersion
        self.isHEAD = head.isHEAD
        self.contentLength = head.contentLength
        self.keepAlive = head.keepAlive
        self.expectsContinue = head.expectsContinue
    }
}
