import NIOCore
import SluiceCore
import SluiceHTTP1

/// The request as the replica receives it: its head rewritten for that replica, then written
/// with what the client sent meanwhile.
extension Exchange {
    /// The exchange now holds a slot on `replica`: the policy and the prefill count follow it, the
    /// `queue_wait` signal records the wait, and the head for that replica is rendered (with room
    /// for a small body behind it: the upstream handler copies it there, one write).
    func sending(
        _ head: HTTP1Head, to replica: Replica, queuedSince: NIODeadline?, now: @autoclosure () -> NIODeadline, clientAddress: String?, https: Bool = false,
        random: inout FastRandom, allocator: ByteBufferAllocator, traceparent: String? = nil
    ) {
        self.replica = replica
        replica.requestSent()
        pool?.noteDestination(of: self, replica)
        countPrefill(on: replica)
        if let scaling = pool?.scaling, scaling.configuration.signal == .queueWait {
            let now = now()
            scaling.record(nanoseconds: queuedSince.map { (now - $0).nanoseconds } ?? 0, at: now)
        }
        let length = rewrittenLength ?? contentLength
        let provider = pool?.provider.map { (host: $0.host, authorization: $0.authorization) }
        let (out, id) = HeaderRewriter.upstreamRequest(
            head, host: replica.id.description, clientAddress: clientAddress, https: https, random: &random, allocator: allocator,
            extraCapacity: length.map { $0 <= Exchange.coalesceLimit ? $0 : 0 } ?? 0, contentLength: rewrittenLength, provider: provider,
            traceparent: traceparent)
        requestID = id
        upstreamHead = out
    }

    /// Writes the head and the parts that arrived while waiting to a connection just borrowed;
    /// when the pool's retry policy would send the request again after this, they are kept
    /// (bounded) for it.
    func write(to connection: UpstreamConnection) {
        connection.handler.expectResponse(toHEAD: isHEAD)
        let resendable = pool.map { $0.configuration.retry.mayRetry(tries: retries + 1, sent: true, idempotentMethod: idempotentMethod) } ?? false
        replay = resendable ? [] : nil
        replayBytes = 0
        sent = true
        if let upstreamHead { connection.handler.write(upstreamHead) }
        while let buffer = pending.popFirst() {
            connection.handler.write(buffer)
            remember(buffer)
        }
        pendingBytes = 0
    }

    /// Readies the request to go again: a request never sent still has all it received pending;
    /// one sent goes again from what was kept. False when what was sent was not kept (over the
    /// bound, or its retry was never possible).
    func prepareRetry() -> Bool {
        guard sent else { return true }
        guard let replay else { return false }
        self.replay = nil
        pending = CircularBuffer(replay)
        pendingBytes = replayBytes
        return true
    }
}
