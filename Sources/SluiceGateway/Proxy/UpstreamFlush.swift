/// When what the data path writes to a replica is flushed: during a read burst (between
/// `channelRead` and `channelReadComplete`) once, at its end, so a request read in one go costs
/// one upstream write syscall; outside a burst, at once.
struct UpstreamFlush {
    private var inBurst = false
    private var unflushed = false

    mutating func burstBegan() {
        inBurst = true
    }

    mutating func burstEnded(_ connection: UpstreamConnection?) {
        inBurst = false
        guard unflushed, let connection else { return }
        unflushed = false
        connection.handler.flush()
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
