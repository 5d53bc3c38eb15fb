/// One replica's standing with its pool's active checks.
public struct ActiveHealth: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        /// Not checked yet: out of rotation until its first check passes (a replica just added,
        /// or every replica at start, is sent nothing it might fail).
        case pending
        case healthy
        case unhealthy
    }

    public private(set) var state: State
    private var passes = 0
    private var failures = 0

    public init(state: State = .pending) {
        self.state = state
    }

    /// Counts a check's result; returns the new state when it changed. A pending replica is
    /// healthy at its first pass; a healthy one goes after `unhealthyAfter` failures in a row,
    /// an unhealthy one comes back after `healthyAfter` passes in a row.
    public mutating func record(passed: Bool, policy: HealthCheckPolicy) -> State? {
        if passed {
            failures = 0
            passes += 1
            switch state {
            case .healthy: return nil
            case .pending: break
            case .unhealthy: guard passes >= policy.healthyAfter else { return nil }
            }
            state = .healthy
            return .healthy
        }
        passes = 0
        failures += 1
        guard state != .unhealthy, failures >= policy.unhealthyAfter else { return nil }
        state = .unhealthy
        return .unhealthy
    }
}

extension ActiveHealth.State {
    /// As kept in an atomic.
    var code: UInt8 {
        switch self {
        case .healthy: 0
        case .pending: 1
        case .unhealthy: 2
        }
    }

    init(code: UInt8) {
        self = code == 0 ? .healthy : code == 1 ? .pending : .unhealthy
    }
}
