import NIOCore
import SluiceConfig

/// The state machine's timeouts from the configuration (the machine itself reads none).
extension ExchangeStateMachine.Limits {
    init(_ limits: LimitsConfiguration) {
        self.init(
            clientTimeout: .nanoseconds(limits.clientTimeout.nanoseconds), keepaliveTimeout: .nanoseconds(limits.keepaliveTimeout.nanoseconds),
            bodyTimeout: .nanoseconds(limits.bodyTimeout.nanoseconds), minBodyRate: limits.minBodyRate)
    }
}

extension ExchangeStateMachine {
    /// `attached` with the pool's `timeouts`.
    mutating func attached(_ connection: Connection, now: NIODeadline, timeouts: TimeoutsConfiguration) -> Bool {
        attached(
            connection, now: now, responseHeaderTimeout: .nanoseconds(timeouts.responseHeader.nanoseconds),
            idleTimeout: .nanoseconds(timeouts.idle.nanoseconds))
    }
}
