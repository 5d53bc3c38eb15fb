/// Names a replica by the address the gateway dials. Two gateway instances configured with the
/// same replicas produce equal IDs, which is what membership-only hashing (a later policy) needs.
public struct ReplicaID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool {
        (lhs.host, lhs.port) < (rhs.host, rhs.port)
    }
}
