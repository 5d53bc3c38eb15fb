import NIOCore
import SluiceCore
import SluiceHTTP1

/// One request/response pair on a downstream connection: what was asked, what was decided about
/// it (tenant, pool, replica, limits) and what it holds until it is settled. Which wait it is in
/// is the connection's `ExchangeStateMachine`'s. Owned by the connection's handler, on its loop.
final class Exchange {
    /// Bodies up to this size are copied behind their head, so a small message is one write.
    static let coalesceLimit = 8 * 1024

    let start: NIODeadline
    /// The request target without its query string.
    let path: String
    /// The client's HTTP minor version (0 or 1); responses are written in it.
    let requestMinorVersion: Int
    let isHEAD: Bool
    /// Its method may be repeated (`HTTP1Head.isIdempotentMethod`).
    let idempotentMethod: Bool
    let contentLength: Int?
    /// Whether the client wants the connection kept after this exchange.
    var keepAlive: Bool
    /// The client sent `Expect: 100-continue`; answered once the request is accepted.
    var expectsContinue: Bool
    var requestID: String?
    var bodyBytes = 0

    // What was decided.
    /// The tenant admission let in (released when the exchange finishes), and the rate-limit
    /// fields for the response head with the limits they describe.
    var tenant: Int?
    var limitFields: [(String, String)] = []
    var limitWindows: [RateLimitHeaders.Window] = []
    /// The pool chosen by path when the body is read first (for a key in it, limits or batching).
    var keyPool: Int?
    /// The version of a versioned model that serves it (`ModelVersions`).
    var version: VersionStats?
    /// Set when its pool was saturated and it went to a hosted provider (`overflow:`): the
    /// tenant's overflow counters (a tenant without counters overflows uncounted: never, as
    /// only listed tenants may).
    var overflow: OverflowCounters?
    /// The tokens charged to its tenant in its pool's queue (`fairness: tokens`), until its usage is known.
    var fairnessCost: Int?
    var pool: PoolRuntime?
    var routingKey: String?
    /// The prompt's block chain, for cache-aware pools keyed on the prompt (`PromptChain`), and
    /// whether the request asked for a stream.
    var prompt: PromptChain?
    var promptStreams = false
    /// What the policy chose, from what, and why: told if the request goes elsewhere after all.
    var picked: (replica: Replica, facts: RoutingFacts)?
    var pickedReason: RoutingReason?
    /// Where the policy was last told the request went, when not `picked.replica`.
    var recordedReplica: Replica?
    /// The replica whose slot (in-flight count) the exchange holds.
    var replica: Replica?
    /// Retries made (`PoolRuntime.retry`), and whether the exchange holds one of its pool's
    /// budgeted retries (given back when it is settled).
    var retries = 0
    var retrying = false
    /// Prompt bytes the replica is not known to have cached (`RoutingChoice.uncachedBytes`),
    /// and the replica they are counted on as pending prefill until its answer starts.
    var uncachedBytes = 0
    var prefillReplica: Replica?
    /// Token accounting: what admission charged (settled with the real usage at the end), the
    /// meter reading `usage` from the answer, usage known without reading it (a batch member's
    /// share), and the body's length after the gateway rewrote it to ask for stream usage.
    var tokenCharge: TokenCharge?
    var usageMeter: UsageMeter?
    var knownUsage: Int?
    var rewrittenLength: Int?

    // The upstream side.
    var connectionPool: UpstreamConnectionPool?
    /// The head as sent upstream.
    var upstreamHead: ByteBuffer?
    /// Request bytes received before the upstream connection was ready.
    var pending = CircularBuffer<ByteBuffer>(initialCapacity: 2)
    var pendingBytes = 0
    /// Bytes of the request were written to a replica (it may have read them).
    var sent = false
    /// What was written after the head, kept (bounded) when the request may be sent again after
    /// a replica had it (`RetryPolicy`).
    var replay: [ByteBuffer]?
    var replayBytes = 0

    // The answer.
    var status = 0
    var upstreamKeepAlive = true
    var reframing = HeaderRewriter.BodyReframing.none
    /// The answer is a stream of server-sent events (its TTFT is its first body byte).
    var eventStream = false
    /// A gRPC call (`content-type: application/grpc*`): the gateway's own answers are gRPC's.
    let isGRPC: Bool
    /// How the answer reaches the client, for ending it early (`ClientWriter.endEvents`).
    enum ClientFraming {
        /// The gateway writes the chunks; the replica's chunks passed as they came; the body
        /// runs until the connection closes; a fixed length.
        case writtenChunks, passedChunks, untilClose, fixed
    }

    var clientFraming = ClientFraming.fixed
    /// The pool's scaling signal has been recorded for this exchange.
    var signalRecorded = false
    /// Set once metrics and in-flight counts are settled; makes `finish` idempotent.
    var finished = false
    /// This request's spans, when the gateway traces (`tracing:`) and the request was sampled.
    var trace: RequestTrace?

    init(head: HTTP1Head, now: NIODeadline) {
        self.start = now
        let target = head.targetString
        if let query = target.utf8.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            self.path = String(target[..<query])
        } else {
            self.path = target
        }
        self.requestMinorVersion = head.minorVersion
        self.isHEAD = head.isHEAD
        self.idempotentMethod = head.isIdempotentMethod
        self.contentLength = head.contentLength
        self.keepAlive = head.keepAlive
        self.expectsContinue = head.expectsContinue
        self.isGRPC = head.isGRPC
    }

    /// `100 Continue` (in the client's HTTP version), once, if the client waits for it and has not
    /// sent its body anyway.
    func continueLine(requestEnded: Bool, _ allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard expectsContinue, !requestEnded else { return nil }
        expectsContinue = false
        return allocator.buffer(staticString: requestMinorVersion == 0 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n")
    }

    /// Keeps a body part until the upstream connection is ready.
    func pend(_ buffer: ByteBuffer) {
        pending.append(buffer)
        pendingBytes += buffer.readableBytes
    }

    /// Queues a body read whole to be sent upstream as it came (re-chunked as one chunk when it
    /// came chunked: it was collected without its framing).
    func pendRead(_ body: ByteBuffer, chunked: Bool, allocator: ByteBufferAllocator) {
        guard chunked else {
            if body.readableBytes > 0 { pend(body) }
            return
        }
        var framed = allocator.buffer(capacity: body.readableBytes + 32)
        if body.readableBytes > 0 {
            HTTP1Writer.writeChunkHeader(length: body.readableBytes, into: &framed)
            framed.writeImmutableBuffer(body)
            framed.writeStaticString(HTTP1Writer.chunkEnd)
        }
        framed.writeStaticString(HTTP1Writer.lastChunk)
        pend(framed)
    }

    /// Keeps written body bytes for a possible resend (see `replay`), up to 64 KiB.
    func remember(_ buffer: ByteBuffer) {
        guard replay != nil else { return }
        replayBytes += buffer.readableBytes
        if replayBytes > ProxyServerHandler.pendingLimit {
            replay = nil
        } else {
            replay!.append(buffer)
        }
    }

    /// Pending prefill: counts the uncached prompt bytes on `replica` from the moment the request
    /// is sent until its streamed answer begins (moving them on a retry), or stops counting (nil),
    /// so the cache-aware policy sees the prefill work queued there (`Replica.pendingPrefillBytes`).
    func countPrefill(on replica: Replica?) {
        guard uncachedBytes > 0, prefillReplica !== replica else { return }
        prefillReplica?.addPendingPrefill(-uncachedBytes)
        prefillReplica = replica
        replica?.addPendingPrefill(uncachedBytes)
    }
}
