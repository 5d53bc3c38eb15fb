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
        _ head: HTTP1Head, to replica: Replica, queuedSince: NIODeadline?, now: @autoclosure () -> NIODeadline, clientAddress: String?,
        random: inout FastRandom, allocator: ByteBufferAllocator
    ) {
        self.replica = replica
        pool?.noteDestination(of: self, replica)
        countPrefill(on: replica)
        if let scaling = pool?.scaling, scaling.configuration.signal == .queueWait {
            let now = now()
            scaling.record(nanoseconds: queuedSince.map { (now - $0).nanoseconds } ?? 0, at: now)
        }
        let length = rewrittenLength ?? contentLength
        let (out, id) = HeaderRewriter.upstreamRequest(
            head, host: replica.id.description, clientAddress: clientAddress, random: &random, allocator: allocator,
            extraCapacity: length.map { $0 <= Exchange.coalesceLimit ? $0 : 0 } ?? 0, contentLength: rewrittenLength)
        requestID = id
        upstreamHead = out
    }

    /// Writes the head and the parts that arrived while waiting to a connection just borrowed;
    /// on a reused connection they are kept (bounded) for one resend.
    func write(to connection: UpstreamConnection) {
        connection.handler.expectResponse(toHEAD: isHEAD)
        replay = connection.useCount > 1 && !retriedStaleConnection ? [] : nil
        replayBytes = 0
        if let upstreamHead { connection.handler.write(upstreamHead) }
        while let buffer = pending.popFirst() {
            connection.handler.write(buffer)
            remember(buffer)
        }
        pendingBytes = 0
    }

    /// A reused connection closed before any answer: most likely the replica closed it while
    /// idle (the race every keep-alive proxy has). Nothing was answered, so the same bytes may go
    /// once more on another connection: true when they are ready to.
    func prepareResend(on connection: UpstreamConnection) -> Bool {
        guard connection.useCount > 1, !retriedStaleConnection, let replay else { return false }
        retriedStaleConnection = true
        self.replay = nil
        pending = CircularBuffer(replay)
        pendingBytes = replayBytes
        return true
    }
}
