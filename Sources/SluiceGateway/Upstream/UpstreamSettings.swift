import NIOCore
import SluiceConfig

/// How connections to one replica are made and kept, from the pool's configuration.
struct UpstreamSettings: Sendable {
    var maxConnections: Int
    var keepaliveIdle: TimeAmount
    var connectTimeout: TimeAmount

    init(_ pool: PoolConfiguration) {
        maxConnections = pool.upstream.maxConnections
        keepaliveIdle = .nanoseconds(pool.upstream.keepaliveIdle.nanoseconds)
        connectTimeout = .nanoseconds(pool.timeouts.connect.nanoseconds)
    }

    init(maxConnections: Int, keepaliveIdle: TimeAmount, connectTimeout: TimeAmount) {
        self.maxConnections = maxConnections
        self.keepaliveIdle = keepaliveIdle
        self.connectTimeout = connectTimeout
    }
}
