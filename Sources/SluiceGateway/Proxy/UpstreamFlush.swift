import NIOCore

/// When what the data path writes to a replica is flushed: during a read burst (between
/// `channelRead` and `channelReadComplete`) once, at its end, so a request read in one go costs
/// one upstream write syscall; outside a burst, at once.
///
/// An HTTP/2 stream's burst ends too early for that: NIO ends one at the stream's activation,
/// with only its HEADERS delivered, and its DATA, read from the same socket read, follows in a
/// second burst. So a stream's flush waits for the end of the loop's round of I/O, and head and
/// body go out in one write.
struct UpstreamFlush {
    private var inBurst = false
    private var unflushed = false
    private let toRoundEnd: Bool

    /// - Parameter toRoundEnd: hold a burst's flush to the end of the event loop's round.
    init(toRoundEnd: Bool = false) {
        self.toRoundEnd = toRoundEnd
    }

    mutating func burstBegan() {
        inBurst = true
    }

    mutating func burstEnded(_ connection: UpstreamConnection?) {
        inBurst = false
        guard unflushed, let connection else { return }
        unflushed = false
        guard toRoundEnd else { return connection.handler.flush() }
        // (Tasks run once the loop has handled every ready socket; a flush of a closed channel
        // does nothing.)
        connection.channel.eventLoop.assumeIsolated().execute { connection.handler.flush() }
    }

    /// Something was written to `connection`.
    mutating func wrote(_ connection: UpstreamConnection) {
        if inBurst {
            unflushed = true
        } else {
            unflushed = false
            connection.handler.flush()
        }
    }
}
