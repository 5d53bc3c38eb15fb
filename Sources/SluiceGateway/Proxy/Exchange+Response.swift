import NIOCore
import SluiceHTTP1

/// The replica's answer as the exchange sees it: how it is framed for the client, what the usage
/// meter and the scaling signals read from it, and its head as the client receives it.
extension Exchange {
    /// The answer's head arrived: records what it says and returns the head to write to the
    /// client (with room for a small body behind it, so a small answer is one write).
    func responseBegan(_ head: HTTP1Head, untilClose: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        status = head.status
        upstreamKeepAlive = head.keepAlive
        let framing = ResponseFraming(head, clientMinorVersion: requestMinorVersion, untilClose: untilClose, toHEAD: isHEAD, metered: usageMeter != nil)
        reframing = framing.reframing
        if framing.mustClose { keepAlive = false }
        eventStream = head.isEventStream
        clientFraming = Self.clientFraming(reframing, upstreamChunked: head.isChunked, untilClose: untilClose)
        // Usage-only events are dropped only where the framing allows it (not under a content-length).
        usageMeter?.responseStarted(eventStream: eventStream, mayDrop: reframing != .none || untilClose, allocator: allocator)
        return HeaderRewriter.downstreamResponse(
            head, clientMinorVersion: requestMinorVersion, requestID: requestID ?? "", keepAlive: keepAlive, reframing: reframing,
            extraFields: limitFields, allocator: allocator,
            extraCapacity: head.contentLength.map { $0 <= Exchange.coalesceLimit ? $0 : 0 } ?? 0)
    }

    /// Answer bytes arrived: the prompt is prefilled, and a stream's first bytes are its TTFT.
    func responseBytesArrived(now: NIODeadline) {
        countPrefill(on: nil)
        guard eventStream, !signalRecorded, let scaling = pool?.scaling, scaling.configuration.signal == .ttft else { return }
        signalRecorded = true
        if status < 500 { scaling.record(nanoseconds: (now - start).nanoseconds, at: now) }
    }

    /// The pool's `latency` signal (and `ttft`'s for answers that are not streams): the whole
    /// exchange, for answers below 500 (a replica failing fast is not fast service).
    func recordEndToEnd(now: @autoclosure () -> NIODeadline) {
        guard !signalRecorded, let scaling = pool?.scaling, scaling.configuration.signal != .queueWait else { return }
        signalRecorded = true
        guard status < 500 else { return }
        let now = now()
        scaling.record(nanoseconds: (now - start).nanoseconds, at: now)
    }

    static func clientFraming(_ reframing: HeaderRewriter.BodyReframing, upstreamChunked: Bool, untilClose: Bool) -> ClientFraming {
        if reframing.writesChunks { return .writtenChunks }
        if reframing == .unchunk || (reframing == .none && untilClose) { return .untilClose }
        if reframing == .none && upstreamChunked { return .passedChunks }
        return .fixed
    }
}
